// The test images end to end: built (or taken from the cache), pushed to a throwaway registry over the HTTP API,
// pulled by a throwaway dockerd and run: the runner, helper, docker CLI and a privileged dind in both TLS modes.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureTestImages,
  IMAGE_NAMES,
  type ImageName,
  isAlive,
  pushTestImages,
  sh,
  spawnDaemon,
  terminate,
  type TestImages,
  waitFor,
} from '#testbed';
import { retry } from 'zx';
import { requireRoot } from './support/requireRoot.js';

const canRun = requireRoot('the test images suite (test/images.test.ts)');
const RUNC_BOUNDED = join(import.meta.dirname, 'support', 'runc-bounded.sh');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

describe.runIf(canRun)('test images', () => {
  let work: string;
  let images: TestImages;
  let registry: string;
  let refs: Record<ImageName, string>;
  const pids: number[] = [];
  let sock: string;
  const docker = (...args: string[]) => sh({ nothrow: true })`docker -H ${`unix://${sock}`} ${args}`;
  /** Until `docker …args` exits 0 (every `everyMs`, about `ms` in all); false if it never does. */
  const dockerUntilOk = (ms: number, everyMs: number, ...args: string[]) =>
    retry(Math.ceil(ms / everyMs), everyMs, () => sh`docker -H ${`unix://${sock}`} ${args}`).then(
      () => true,
      () => false,
    );
  const inImage = async (name: ImageName, ...cmd: string[]) =>
    (await docker('run', '--rm', '--network', 'none', refs[name], ...cmd)).stdout.trim();

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'rf-images-e2e-'));
    images = await ensureTestImages();
    registry = `127.0.0.1:${await freePort()}`;
    writeFileSync(
      join(work, 'registry.yml'),
      `version: 0.1\nlog: { level: warn }\nstorage: { filesystem: { rootdirectory: ${join(work, 'registry')} } }\nhttp: { addr: ${registry} }\n`,
    );
    pids.push(
      spawnDaemon('docker-registry', ['serve', join(work, 'registry.yml')], {
        log: join(work, 'registry.log'),
      }),
    );
    sock = join(work, 'docker.sock');
    writeFileSync(join(work, 'daemon.json'), '{}');
    // Its own everything; no bridge, iptables or forwarding (the machine's network stays untouched: without
    // --ip-forward=false dockerd turns this machine's net.ipv4.ip_forward on even with --bridge=none, and every later
    // suite would run on a machine that no longer looks fresh). 127.0.0.1 registries are trusted without
    // configuration. runc-bounded: --privileged needs it in this sandbox.
    pids.push(
      spawnDaemon(
        'dockerd',
        [
          '--config-file',
          join(work, 'daemon.json'),
          '--data-root',
          join(work, 'docker'),
          '--exec-root',
          join(work, 'exec'),
          '-H',
          `unix://${sock}`,
          '--pidfile',
          join(work, 'docker.pid'),
          '--bridge=none',
          '--iptables=false',
          '--ip-forward=false',
          '--storage-driver=vfs',
          '--add-runtime',
          `runc-bounded=${RUNC_BOUNDED}`,
          '--default-runtime',
          'runc-bounded',
        ],
        { log: join(work, 'dockerd.log') },
      ),
    );
    const registryUp = await waitFor(
      async () => (await fetch(`http://${registry}/v2/`).catch(() => undefined))?.status === 200,
      20_000,
    );
    expect(registryUp, readFileSync(join(work, 'registry.log'), 'utf8')).toBe(true);
    const dockerUp = await dockerUntilOk(60_000, 250, 'version');
    expect(dockerUp, readFileSync(join(work, 'dockerd.log'), 'utf8').slice(-2000)).toBe(true);
    refs = await pushTestImages(registry, images);
  });

  afterAll(async () => {
    if (!work) return;
    if (sock) await docker('rm', '-f', 'rf-dind-plain', 'rf-dind-tls');
    await terminate(pids.filter(isAlive), 20_000);
    // Anything dockerd left mounted below the work folder (it unmounts on a clean stop) would make rm fail.
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1])
      .filter((m) => m?.startsWith(work));
    for (const m of mounts.reverse()) await sh({ nothrow: true })`umount -l ${m}`;
    rmSync(work, { recursive: true, force: true });
  });

  it('pushes every image under its ref with the digest that was built', async () => {
    expect(Object.keys(refs).sort()).toEqual([...IMAGE_NAMES].sort());
    expect(refs['gitlab-runner']).toBe(`${registry}/runner-fleet/gitlab-runner:17.9.3`);
    expect(refs['gitlab-runner-helper']).toBe(`${registry}/runner-fleet/gitlab-runner-helper:x86_64-v17.9.3`);
    expect(refs['docker-cli']).toBe(`${registry}/runner-fleet/docker:27-cli`);
    expect(refs['docker-dind']).toBe(`${registry}/runner-fleet/docker:27-dind`);
    expect(refs.base).toBe(`${registry}/runner-fleet/base:1`);
    for (const name of IMAGE_NAMES) {
      const { repository, tag, manifest } = images.images[name];
      const res = await fetch(`http://${registry}/v2/${repository}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { Accept: manifest.mediaType },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('docker-content-digest')).toBe(manifest.digest);
    }
    // A second push finds every blob and only rewrites the manifests.
    expect(await pushTestImages(registry, images)).toEqual(refs);
  });

  it('pulls them all with dockerd', async () => {
    for (const name of IMAGE_NAMES) {
      const r = await docker('pull', '-q', refs[name]);
      expect(r.exitCode, r.stderr).toBe(0);
      const id = (await docker('image', 'inspect', '--format', '{{.RepoDigests}}', refs[name])).stdout;
      expect(id).toContain(images.images[name].manifest.digest);
    }
  });

  it('runs gitlab-runner, git and the helper', async () => {
    expect(await inImage('gitlab-runner', 'gitlab-runner', '--version')).toMatch(/^Version:\s+17\.9\.3$/m);
    expect(await inImage('gitlab-runner', 'git', '--version')).toMatch(/^git version 2\./);
    expect(await inImage('gitlab-runner-helper', 'git', '--version')).toMatch(/^git version 2\./);
    expect(await inImage('gitlab-runner-helper', 'gitlab-runner-helper', '--version')).toMatch(
      /^Version:\s+17\.9\.3$/m,
    );
    // git's https transport is a helper program with its own libraries (libcurl): it must load.
    expect(
      await inImage('gitlab-runner-helper', 'sh', '-c', 'git ls-remote https://127.0.0.1:1/x 2>&1 || true'),
    ).toMatch(/Failed to connect|Connection refused|Could not connect/);
    // What the docker executor does: the stage script on stdin of gitlab-runner-build, with umask 0000.
    const stage = await sh({
      nothrow: true,
      stdio: 'pipe',
      input: 'echo "stage ran in $(pwd)"; umask\n',
    })`docker -H ${`unix://${sock}`} run --rm -i --network none ${refs['gitlab-runner-helper']} gitlab-runner-build`;
    expect(stage.stdout).toContain('stage ran in /');
    expect(stage.stdout).toContain('0000');
  });

  it('runs the docker CLI and the base image', async () => {
    // `docker version` exits 1 without a daemon; the client half is printed all the same.
    expect(await inImage('docker-cli', 'docker', 'version', '--format', '{{.Client.Version}}')).toMatch(
      /^\d+\.\d+\.\d+/,
    );
    expect(await inImage('base', 'sh', '-c', 'echo base; ls /bin/sh')).toBe('base\n/bin/sh');
  });

  it('runs dind privileged: plain TCP 2375 when DOCKER_TLS_CERTDIR is empty, extra args reach dockerd', async () => {
    const r = await docker(
      'run',
      '-d',
      '--name',
      'rf-dind-plain',
      '--privileged',
      '--network',
      'none',
      '-e',
      'DOCKER_TLS_CERTDIR=',
      refs['docker-dind'],
      '--insecure-registry=198.18.9.2:5000',
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const up = await dockerUntilOk(
      60_000,
      500,
      'exec',
      'rf-dind-plain',
      'docker',
      '-H',
      'tcp://127.0.0.1:2375',
      'version',
    );
    expect(up, (await docker('logs', 'rf-dind-plain')).stderr.slice(-2000)).toBe(true);
    const info = await docker(
      'exec',
      'rf-dind-plain',
      'docker',
      'info',
      '--format',
      '{{.Driver}} {{json .RegistryConfig.IndexConfigs}}',
    );
    expect(info.stdout).toMatch(/^vfs /);
    expect(info.stdout).toContain('"198.18.9.2:5000"');
    const cfg = JSON.parse((await docker('image', 'inspect', refs['docker-dind'])).stdout)[0].Config;
    expect(Object.keys(cfg.ExposedPorts).sort()).toEqual(['2375/tcp', '2376/tcp']);
    expect(Object.keys(cfg.Volumes)).toEqual(['/var/lib/docker']);
  });

  it('runs dind with TLS on 2376 by default, client certs in /certs/client', async () => {
    const r = await docker(
      'run',
      '-d',
      '--name',
      'rf-dind-tls',
      '--privileged',
      '--network',
      'none',
      '-v',
      '/certs/client',
      refs['docker-dind'],
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const tls = [
      'exec',
      '-e',
      'DOCKER_HOST=tcp://127.0.0.1:2376',
      '-e',
      'DOCKER_TLS_VERIFY=1',
      '-e',
      'DOCKER_CERT_PATH=/certs/client',
      'rf-dind-tls',
    ];
    const up = await dockerUntilOk(60_000, 500, ...tls, 'docker', 'version');
    expect(up, (await docker('logs', 'rf-dind-tls')).stderr.slice(-2000)).toBe(true);
    expect(
      (await docker('exec', 'rf-dind-tls', 'ls', '/certs/client')).stdout.trim().split('\n').sort(),
    ).toEqual(['ca.pem', 'cert.pem', 'key.pem']);
    // Without client certificates the daemon refuses.
    expect(
      (await docker('exec', 'rf-dind-tls', 'docker', '-H', 'tcp://127.0.0.1:2376', 'version')).exitCode,
    ).not.toBe(0);
  });
});
