// The CPU the fleet's nodes spend serving a run (sshd, sudo, the gather script, docker info, dockerd's side of it),
// measured exactly however loaded the machine is: every process of every node goes into one cpuacct cgroup of the
// benchmark's own, and whatever they fork later (each SSH session, sudo, docker) is born in it. bench/node-cost.ts
// takes the whole machine's busy time instead, which other work on a shared machine swamps.
// Not counted: the kernel's network work in softirq (charged to whatever it interrupted).
import { mkdirSync, readFileSync, readdirSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getNode, type FleetInfo } from '#testbed';

const CPUACCT = '/sys/fs/cgroup/cpuacct';

export interface NodeCpuMeter {
  /** CPU ms the nodes used since the meter was made */
  usedMs(): number;
  /** the nodes' CPU ms per second while nothing ran (dockerd and containerd housekeeping) */
  idlePerS: number;
  close(): void;
}

/** The processes whose mount namespace is one of `namespaces` (`mnt:[…]`). */
function processesIn(namespaces: Set<string>): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (namespaces.has(readlinkSync(`/proc/${e}/ns/mnt`))) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function move(pids: number[], group: string): void {
  for (const pid of pids) {
    try {
      writeFileSync(join(group, 'cgroup.procs'), `${pid}\n`);
    } catch {
      // exited meanwhile
    }
  }
}

const usageNs = (group: string) => Number(readFileSync(join(group, 'cpuacct.usage'), 'utf8').trim());

/** Undefined where there is no cgroup v1 cpuacct hierarchy to use (the rows then say "not measured"). */
export async function nodeCpuMeter(info: FleetInfo): Promise<NodeCpuMeter | undefined> {
  const group = join(CPUACCT, `runner-fleet-bench-${process.pid}`);
  try {
    mkdirSync(group, { recursive: true });
  } catch {
    return undefined;
  }
  const namespaces = new Set(info.nodes.map((n) => getNode(n.name).mntns));
  move(processesIn(namespaces), group);
  const base = usageNs(group);
  await new Promise((res) => setTimeout(res, 1000));
  const idlePerS = (usageNs(group) - base) / 1e6;
  const start = usageNs(group);
  return {
    idlePerS,
    usedMs: () => (usageNs(group) - start) / 1e6,
    close() {
      move(
        readFileSync(join(group, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number),
        CPUACCT,
      );
      try {
        rmdirSync(group);
      } catch {
        // a process still leaving; the fleet's teardown ends it, the empty group stays (harmless)
      }
    },
  };
}
