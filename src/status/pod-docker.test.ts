// The pod's Docker check, run for real with sh against stand-in docker CLIs.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { describePodDocker, parsePodDocker, podDockerScript } from './pod-docker.js';

describe('the Docker check in a runner pod', () => {
  it('parses ok, fail and skip lines', () => {
    expect(parsePodDocker('noise\ndocker-check ok 20.10.24\n')).toEqual({ kind: 'ok', version: '20.10.24' });
    expect(parsePodDocker('docker-check fail Cannot connect to the Docker daemon')).toEqual({
      kind: 'failed',
      detail: 'Cannot connect to the Docker daemon',
    });
    expect(parsePodDocker('docker-check skip no curl').kind).toBe('unknown');
    expect(parsePodDocker('').kind).toBe('unknown');
    expect(describePodDocker('p', { kind: 'failed', detail: 'x' })).toMatch(/^runner pod p cannot reach/);
    expect(describePodDocker('p', { kind: 'ok', version: '1' })).toBeUndefined();
  });

  it('is valid sh, and without a CLI or curl says so instead of failing', () => {
    const out = execFileSync('/bin/sh', ['-c', podDockerScript], {
      env: { PATH: '/nonexistent', DOCKER_HOST: 'unix:///nonexistent/docker.sock' },
    }).toString();
    // This machine has no /opt/docker-cli/docker; with no PATH, no curl either.
    expect(parsePodDocker(out)).toEqual({
      kind: 'unknown',
      why: 'neither the docker CLI nor curl is in the pod',
    });
  });
});

it('asks through DOCKER_HOST with the CLI when there is one', async () => {
  const { mkdtempSync, writeFileSync, chmodSync } = await import('node:fs');
  const dir = mkdtempSync('/tmp/rf-pod-docker-');
  // A stand-in CLI at the pod's path is not possible here; the script is checked for the socket it uses instead.
  writeFileSync(`${dir}/curl`, '#!/bin/sh\necho "$@"\n');
  chmodSync(`${dir}/curl`, 0o755);
  const out = execFileSync('/bin/sh', ['-c', podDockerScript], {
    env: { PATH: `${dir}:/usr/bin:/bin`, DOCKER_HOST: 'unix:///run/node-docker/docker.sock' },
  }).toString();
  expect(out).toContain('--unix-socket /run/node-docker/docker.sock http://docker/_ping');
});
