// The user's whole no-op rerun: not only the host phase the peers also do, but GitLab (runner records) and the
// cluster (DaemonSet, config Secret, node labels) too, on the slot's full 3-node test fleet (`testbed up` with its
// default services: registry, GitLab stand-in, a real kube-apiserver and kubelets). Runs outside the benchmark's
// network namespace, as the end-to-end tests do; the fleet is torn down after.
import { join } from 'node:path';
import { down, up } from '#testbed';
import { measure, type Measured } from './measure.js';
import { REPO, runProvision } from './runner-fleet.js';

export interface FullNoopSample {
  wallMs: number;
  cpuS: number;
  load1: number;
  ok: boolean;
  changed: number;
}

export interface FullNoop {
  nodes: number;
  /** the converge before the reruns */
  first: FullNoopSample;
  compiled: FullNoopSample[];
  tsx: FullNoopSample[];
  /** `npx --no-install tsx --version` and `node_modules/.bin/tsx --version`: what npm's exec adds before the tool */
  npx: FullNoopSample[];
  tsxBin: FullNoopSample[];
}

const NODES = 3;

const sampleOf = (m: Measured, ok: boolean, changed: number): FullNoopSample => ({
  wallMs: m.wallMs,
  cpuS: m.cpuS,
  load1: m.load1,
  ok,
  changed,
});

export async function measureFullNoop(
  runs: number,
  concurrency: number,
  log: (msg: string) => void,
): Promise<FullNoop> {
  log(`the whole no-op: full ${NODES}-node test fleet (GitLab stand-in, cluster)`);
  const info = await up({ nodes: NODES, log: () => {} });
  try {
    const once = async (compiled: boolean) => {
      const r = await runProvision(info.inventory, concurrency, { compiled });
      if (!r.ok) log(`  ${compiled ? 'compiled' : 'npx tsx'}: FAILED: ${r.error}`);
      return sampleOf(r.measured, r.ok, r.changed);
    };
    const first = await once(true);
    const out: FullNoop = { nodes: NODES, first, compiled: [], tsx: [], npx: [], tsxBin: [] };
    // Alternating, so that a change in the machine's load hits both entries alike.
    for (let i = 0; i < runs; i++) {
      out.compiled.push(await once(true));
      out.tsx.push(await once(false));
      const npx = await measure(['npx', '--no-install', 'tsx', '--version'], { cwd: REPO });
      out.npx.push(sampleOf(npx, npx.code === 0, 0));
      const bin = await measure([join(REPO, 'node_modules', '.bin', 'tsx'), '--version'], { cwd: REPO });
      out.tsxBin.push(sampleOf(bin, bin.code === 0, 0));
      log(
        `  no-op ${i + 1}: compiled ${(out.compiled[i].wallMs / 1000).toFixed(2)} s, npx tsx ${(out.tsx[i].wallMs / 1000).toFixed(2)} s (load ${out.tsx[i].load1})`,
      );
    }
    return out;
  } finally {
    await down({ log: () => {} }).catch((err: Error) => log(`full no-op fleet down: ${err.message}`));
  }
}
