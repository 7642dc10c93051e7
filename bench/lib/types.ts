// The benchmark's result records (bench/RESULTS.json), shared by the run (converge.ts) and the report (lib/results.ts).
import type { SshCounts } from './fleet.js';
import type { FullNoop } from './full-noop.js';
import type { Profile } from './profile.js';

export type ToolName =
  | 'runner-fleet'
  | 'runner-fleet-compiled'
  | 'ansible-default'
  | 'ansible-tuned'
  | 'ansible-fastest'
  | 'ansible-mitogen'
  | 'pyinfra';

/** One run of one tool on one fresh fleet: its first converge, then its no-op reruns. */
export interface ToolRun {
  first: RunSample;
  noops: NoopRun[];
}

export interface NoopRun {
  sample: RunSample;
  /** per node, from the nodes' sshd logs during this rerun */
  ssh: Record<string, SshCounts>;
  /** CPU ms all nodes together spent on this rerun (sshd, sudo, scripts, dockerd), less their idle rate */
  nodeCpuMs?: number;
  /** what provision.ts itself reported (runner-fleet only), over all nodes */
  selfReported?: { connections: number; roundTrips: number };
}

export interface RunSample {
  wallMs: number;
  ok: boolean;
  changed: number;
  maxRssKb: number;
  cpuS: number;
  load1: number;
  treePeakPssKb: number;
  treePeakRssKb: number;
  error?: string;
}

export interface SizeResult {
  nodes: number;
  /** round-trip time added between the tools and every node (bench/lib/latency.ts); absent or 0: loopback */
  rttMs?: number;
  runs: Partial<Record<ToolName, ToolRun[]>>;
  /** the fleet itself (sshd, dockerd, containerd per node) after runner-fleet's first converge */
  fleetMemory?: { pssKb: number; rssKb: number; processes: number };
  upMs: number[];
}

export interface BenchResult {
  date: string;
  machine: {
    nproc: number;
    memoryGiB: number;
    kernel: string;
    cpu: string;
    node: string;
    openssh: string;
    docker: string;
    ansibleCore?: string;
    pyinfra?: string;
    toxiproxy?: string;
  };
  settings: {
    command: string;
    sizes: number[];
    rtts?: number[];
    runs: number;
    ansibleRuns: number;
    noops: number;
    ansibleNoops: number;
    concurrency: number;
    ansible: boolean;
    peers?: boolean;
    tools?: ToolName[];
    variants: { name: string; describe: string }[];
  };
  sizes: SizeResult[];
  profile?: Profile;
  /** the user's whole no-op (host phase, GitLab, cluster) on the full 3-node test fleet */
  fullNoop?: FullNoop;
  totalMs: number;
}
