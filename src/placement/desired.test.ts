// What the cluster phase checks before GitLab changes anything, so a bad cluster object never leaves runners behind.
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../inventory/schema.js';
import { clusterPreflight } from './desired.js';
import { describeUnfit } from './reasons.js';

const inv = parseInventory(
  `
gitlab:
  url: https://gitlab.lan
  registry: gitlab.lan:5050
  accessToken: env:GITLAB_TOKEN
nodes:
  - { name: pi-1, host: 10.0.0.11 }
  - { name: pi-2, host: 10.0.0.12 }
  - { name: rv-1, host: 10.0.0.13 }
`,
  '/tmp/fleet.yaml',
);
const arch = (node: string) => (node === 'rv-1' ? 'riscv64' : node === 'pi-2' ? 'amd64' : 'arm64');

describe('clusterPreflight', () => {
  it('names a node whose architecture no runner pod runs on, and lets the others go on', () => {
    for (const executor of ['dood', 'dind', 'shell'] as const) {
      const r = clusterPreflight(inv, executor, arch);
      expect(r.error).toBeUndefined();
      expect([...r.unfit.keys()]).toEqual(['rv-1']);
      expect(describeUnfit(r.unfit.get('rv-1')!)).toMatch(
        /node architecture "riscv64": runner pods run on arm64 and amd64 only/,
      );
    }
  });

  it('renders every config.toml and object with stand-in records, so a value that cannot be rendered fails before any change', () => {
    const ok = clusterPreflight(inv, 'dood', () => 'arm64');
    expect(ok.error).toBeUndefined();
    expect(ok.objects?.map((o) => o.kind)).toEqual(['Namespace', 'ServiceAccount', 'Secret', 'DaemonSet']);
    const broken = { ...inv, runners: { ...inv.runners, description: 'half \ud800 {node}' } };
    expect(clusterPreflight(broken, 'dood', () => 'arm64').error).toMatch(/lone UTF-16 surrogate/);
  });
});
