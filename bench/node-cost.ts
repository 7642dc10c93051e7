// Node-side cost of a no-op rerun (issue 14): the CPU each test node spends serving one `plan`, and its parts.
// On the test fleet every node's sshd, sudo and dockerd run on the tool's own cores, so this is what bounds the
// large-fleet and high-RTT rows of bench/RESULTS.md. Needs a fleet up (`testbed.ts up`) and `npm run build`.
//
//   npx tsx bench/node-cost.ts [--runs 10]        (RUNNER_FLEET_TESTBED_SLOT picks the fleet, as for testbed.ts)
//
// How: the CPU (user + system, the process and every child it reaped) of each node's listening sshd and of its
// dockerd, from /proc/<pid>/stat, before and after the same remote command; the difference over all nodes and
// runs, per node and run. sshd's share holds the connection, the session, sudo and what the session ran; dockerd's
// holds the API calls `docker info` makes and the programs dockerd runs for it (runc and docker-init --version).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { $ } from 'zx';
import { DOCKER_INFO, FILE_FN } from '../src/host/facts.js';
import { files, stateRoot } from '../scripts/testbed/paths.js';
import { listProcesses } from '../scripts/testbed/procs.js';
import { sshdPid, type NodeRecord } from '../scripts/testbed/node.js';
import { REPO } from './lib/runner-fleet.js';

const TICK_MS = 10; // USER_HZ is 100 on Linux

function cpuTicks(pid: number): number {
  // After the `(comm)` field: state is field 3; utime, stime, cutime, cstime are fields 14–17.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i]), 0);
}

interface Watched {
  node: string;
  sshd: number;
  dockerd?: number;
}

function watched(nodes: NodeRecord[], root: string): Watched[] {
  const procs = listProcesses();
  return nodes.map((n) => {
    const sshd = sshdPid(n, root);
    if (sshd === undefined) throw new Error(`${n.name}: no sshd running`);
    const dockerd = procs.find((p) => p.comm === 'dockerd' && p.mntns === n.mntns)?.pid;
    return { node: n.name, sshd, dockerd };
  });
}

function snapshot(w: Watched[]): { sshd: number; dockerd: number } {
  let sshd = 0;
  let dockerd = 0;
  for (const n of w) {
    sshd += cpuTicks(n.sshd);
    if (n.dockerd) dockerd += cpuTicks(n.dockerd);
  }
  return { sshd, dockerd };
}

interface Part {
  name: string;
  /** runs once per round: over SSH on every node (remote), or the tool itself (local) */
  run: (nodes: NodeRecord[]) => Promise<void>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' } } });
  const runs = Number(values.runs);
  const root = stateRoot();
  const state = JSON.parse(readFileSync(files.state(root), 'utf8')) as {
    nodes: NodeRecord[];
    inventory: string;
  };
  const inventory = parseYaml(readFileSync(state.inventory, 'utf8')) as {
    ssh: { user: string };
    gitlab: { registry?: string | string[] };
  };
  const user = inventory.ssh.user;
  const ssh = (n: NodeRecord, cmd: string) =>
    $({
      quiet: true,
    })`ssh -i ${files.identity(root)} -o UserKnownHostsFile=${files.knownHosts(root)} -o BatchMode=yes -p ${n.port} ${user}@${n.host} ${cmd}`;
  const everywhere = (cmd: string) => async (nodes: NodeRecord[]) => {
    // Ten at a time, as runner-fleet's default concurrency.
    const queue = [...nodes];
    await Promise.all(
      Array.from({ length: Math.min(10, nodes.length) }, async () => {
        for (let n = queue.shift(); n; n = queue.shift()) await ssh(n, cmd);
      }),
    );
  };
  const readFiles = `${FILE_FN}; emit_file /etc/docker/daemon.json; emit_file /etc/os-release`;
  const parts: Part[] = [
    { name: 'ssh: connect, auth, session (`true`)', run: everywhere('true') },
    { name: 'ssh + `sudo -n true`', run: everywhere('sudo -n true') },
    { name: 'ssh + sudo + sh + two files base64', run: everywhere(`sudo -n sh -c '${readFiles}'`) },
    { name: 'ssh + sudo + `dpkg-query -W docker.io`', run: everywhere('sudo -n dpkg-query -W docker.io') },
    { name: 'ssh + sudo + `docker info --format …`', run: everywhere(`sudo -n sh -c "${DOCKER_INFO}"`) },
    {
      name: 'the whole no-op: `node dist/provision.js plan`',
      run: async () => {
        await $({
          quiet: true,
          cwd: REPO,
        })`node dist/provision.js plan --inventory ${state.inventory} --quiet`;
      },
    },
  ];
  const w = watched(state.nodes, root);
  const rows: string[] = [];
  for (const part of parts) {
    await part.run(state.nodes); // warm-up: page cache, sudo's timestamp dir, dockerd's first info
    let sshd = 0;
    let dockerd = 0;
    for (let r = 0; r < runs; r++) {
      const a = snapshot(w);
      await part.run(state.nodes);
      // The listener reaps a connection's sshd a moment after the client sees the exit.
      await new Promise((res) => setTimeout(res, 200));
      const b = snapshot(w);
      sshd += b.sshd - a.sshd;
      dockerd += b.dockerd - a.dockerd;
    }
    const per = (ticks: number) => (ticks * TICK_MS) / (runs * state.nodes.length);
    rows.push(
      `| ${part.name} | ${per(sshd).toFixed(1)} | ${per(dockerd).toFixed(1)} | ${per(sshd + dockerd).toFixed(1)} |`,
    );
  }
  process.stdout.write(
    [
      `${state.nodes.length} nodes, ${runs} runs each; CPU ms per node and run (sshd tree / dockerd tree / both):`,
      '',
      '| remote work | sshd tree | dockerd tree | node total |',
      '| --- | --- | --- | --- |',
      ...rows,
      '',
    ].join('\n'),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`node-cost: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
