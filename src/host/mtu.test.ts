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
});
