// Node-side cost of a no-op rerun: the CPU the test fleet's nodes spend serving one `plan`, and its parts.
// On the test fleet every node's sshd, sudo and dockerd run on the tool's own cores, so this is what bounds the
// large-fleet and high-RTT rows of bench/RESULTS.md. Needs a fleet up (`testbed.ts up`) and `npm run build`.
//
//   npx tsx bench/node-cost.ts [--runs 5]        (RUNNER_FLEET_TESTBED_SLOT picks the fleet, as for testbed.ts)
//
// How: the whole machine's busy CPU time (/proc/stat: user, system, irq, softirq) while the same remote command
// runs on every node, minus the client's own CPU (its rusage, through /usr/bin/time) and minus what the idle
// machine used in the same time (measured before). Machine-wide on purpose: sshd's per-connection processes are
// reaped by whoever holds PID 1 here (they outlive their parent), and the network stack works in softirq; a
// per-process count misses both (it did: 32 ms per node, against ~80 here).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { $ } from 'zx';
import { DOCKER_INFO, FILE_FN } from '../src/docker/facts.js';
import { mapPool } from '../src/pool.js';
import { files, type NodeRecord, stateRoot } from '#testbed';
import { REPO } from './lib/runner-fleet.js';

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** Busy time of all CPUs together, ms: user, nice, system, irq, softirq, steal. */
function machineBusyMs(): number {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = f.map(Number);
  return (user + nice + system + irq + softirq + steal) * TICK_MS;
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

interface Part {
  name: string;
  /** runs the client(s) once over every node; `time` wraps each client process to count its CPU */
  run: (time: string[]) => Promise<void>;
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
  const dir = mkdtempSync(join(tmpdir(), 'rf-node-cost-'));
  const clientLog = join(dir, 'client-times');
  // %U %S of every client process, appended: their sum is the client side of a round.
  const time = ['/usr/bin/time', '-a', '-o', clientLog, '-f', '%U %S'];
  const clientMs = (): number =>
    readFileSync(clientLog, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .reduce((sum, l) => sum + l.split(' ').reduce((a, x) => a + Number(x) * 1000, 0), 0);
  const ssh = (t: string[], n: NodeRecord, cmd: string) =>
    $({
      quiet: true,
    })`${t} ssh -i ${files.identity(root)} -o UserKnownHostsFile=${files.knownHosts(root)} -o BatchMode=yes -p ${n.port} ${user}@${n.host} ${cmd}`;
  // Ten at a time, as runner-fleet's default concurrency.
  const everywhere = (cmd: string) => async (t: string[]) => {
    await mapPool(state.nodes, 10, (n) => ssh(t, n, cmd));
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
      run: async (t) => {
        await $({
          quiet: true,
          cwd: REPO,
        })`${t} node dist/provision.js plan --inventory ${state.inventory} --quiet`;
      },
    },
  ];
  try {
    // What the idle fleet costs per ms (daemons' housekeeping, the sandbox's own agent).
    const b0 = machineBusyMs();
    const t0 = performance.now();
    await sleep(3000);
    const idlePerMs = (machineBusyMs() - b0) / (performance.now() - t0);
    const rows: string[] = [];
    for (const part of parts) {
      await part.run([]); // warm-up: page cache, sudo's timestamp dir, dockerd's first info
      let nodeSide = 0;
      let client = 0;
      let wall = 0;
      for (let r = 0; r < runs; r++) {
        rmSync(clientLog, { force: true });
        const busy0 = machineBusyMs();
        const start = performance.now();
        await part.run(time);
        const elapsed = performance.now() - start;
        // Processes the connection left (sshd reaping, PID 1 collecting zombies) finish within this.
        await sleep(300);
        const busy = machineBusyMs() - busy0 - idlePerMs * (elapsed + 300);
        const c = clientMs();
        client += c;
        nodeSide += busy - c;
        wall += elapsed;
      }
      const per = (ms: number) => (ms / (runs * state.nodes.length)).toFixed(1);
      rows.push(`| ${part.name} | ${per(nodeSide)} | ${per(client)} | ${(wall / runs).toFixed(0)} |`);
    }
    process.stdout.write(
      [
        `${state.nodes.length} nodes, ${runs} runs each; idle machine: ${(idlePerMs * 1000).toFixed(0)} ms of CPU per second.`,
        '',
        '| remote work, every node, 10 at a time | node side, CPU ms per node | client, CPU ms per node | wall ms per round |',
        '| --- | --- | --- | --- |',
        ...rows,
        '',
      ].join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`node-cost: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
