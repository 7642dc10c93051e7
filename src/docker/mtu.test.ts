// The MTU a node's job networks carry: the gather's lines in, the value config.toml gets out.
import { describe, expect, it } from 'vitest';
import { splitGatherOutput } from './facts.js';
import { jobMtu, mtuGatherScript, mtuValue, parseMtuSection } from './mtu.js';

const gathered = (lines: string[]) => ({
  gathered: splitGatherOutput(['@@rf-mtu', ...lines, '@@end'].join('\n')),
});

describe('jobMtu', () => {
  it.each([
    [
      ['uplink eth0 1500', 'pod vxlan.calico 1450', 'docker docker0 1500'],
      { kind: 'detected', mtu: 1450, device: 'vxlan.calico' },
    ],
    [['uplink wg0 1420', 'pod cni0 1500'], { kind: 'detected', mtu: 1420, device: 'wg0' }],
    [['uplink eth0 1500', 'pod cni0 1500', 'docker docker0 1500'], { kind: 'default' }],
    // daemon.json mtu: 1400 after docker0 was made (no container on it): the device says 1500, Docker's network 1400.
    [
      ['uplink eth0 1500', 'docker docker0 1500', 'docker docker-bridge-network 1400'],
      { kind: 'detected', mtu: 1400, device: 'docker-bridge-network' },
    ],
    [['uplink eth0 9000'], { kind: 'default' }],
    [[], { kind: 'default' }],
    [['garbage', 'pod cni0 0'], { kind: 'default' }],
  ])('%j → %j', (lines, expected) => {
    expect(jobMtu({}, gathered(lines))).toEqual(expected);
  });

  it('nodes[].mtu wins over what the node shows; no facts (render) means Docker default', () => {
    expect(jobMtu({ mtu: 1380 }, gathered(['uplink eth0 1450']))).toEqual({ kind: 'inventory', mtu: 1380 });
    expect(mtuValue(jobMtu({}, undefined))).toBeUndefined();
    expect(mtuValue(jobMtu({}, gathered(['pod flannel.1 1450'])))).toBe(1450);
  });

  it('the gather lines come from a real sh on this machine', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync('sh', ['-c', mtuGatherScript()], { encoding: 'utf8' });
    const found = parseMtuSection(splitGatherOutput(`${out}\n@@end`).sections);
    for (const i of found) expect(i.mtu).toBeGreaterThan(0);
    expect(out.split('\n').filter((l) => l && !l.startsWith('@@'))).toHaveLength(found.length);
  });

  it("reads Docker's default network MTU from docker network inspect (a stand-in docker on PATH)", async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'rf-mtu-'));
    try {
      const docker = join(dir, 'docker');
      writeFileSync(docker, '#!/bin/sh\n[ "$1 $2 $3" = "network inspect bridge" ] && echo 1400\n', {
        mode: 0o755,
      });
      const run = (path: string) =>
        execFileSync('sh', ['-c', mtuGatherScript()], {
          encoding: 'utf8',
          env: { ...process.env, PATH: path },
        });
      expect(run(`${dir}:${process.env.PATH}`)).toContain('docker docker-bridge-network 1400\n');
      writeFileSync(docker, '#!/bin/sh\necho "Cannot connect to the Docker daemon" >&2; exit 1\n');
      expect(run(`${dir}:${process.env.PATH}`)).not.toContain('docker-bridge-network');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
