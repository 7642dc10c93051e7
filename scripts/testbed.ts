// CLI for the local test fleet: up, down, status, exec. The work is in scripts/testbed/fleet.ts.
import { EXECUTORS, type Executor } from '../src/inventory/types.js';
import {
  NODE_KINDS,
  down,
  fleetInfo,
  getNode,
  status,
  up,
  type FleetStatus,
  type NodeKind,
} from './testbed/fleet.js';
import { runCiJob } from './testbed/job.js';
import { nodeCommand } from './testbed/node.js';
import { servicesNamed } from './testbed/services.js';
import { $ } from 'zx';
import { resultOf } from './testbed/procs.js';

const USAGE = `usage: npx tsx scripts/testbed.ts <command>
  up [--nodes N] [--kinds apt,snap,none] [--services registry,gitlab,cluster[,sealed-secrets][,flux]] [--microk8s all|NODE,...] [--json]
     [--force]                                        start the fleet (tears down a running one first)
  down [--force]                                      stop everything and remove the state directory
                                                      (--force: even when another live process owns the slot)
  status [--json]                                     what runs, and its memory per node
  exec NODE -- CMD...                                 run CMD as root inside NODE
  job --executor shell|dind|dood [--node NAME] [--json] [--timeout S]
                                                      queue the ci-snippet job on the GitLab stand-in, wait for a
                                                      runner to take it, stream its log; exit 0 when it succeeded
                                                      and the registry lists the pushed image
State directory: $RUNNER_FLEET_TESTBED or /var/tmp/runner-fleet-testbed[-SLOT]; RUNNER_FLEET_TESTBED_SLOT=0-9 runs
fleets side by side; RUNNER_FLEET_TESTBED_KWOK=all makes kwok play every node instead of real kubelets`;

class UsageError extends Error {}

const stderrLog = (msg: string) => process.stderr.write(`[testbed] ${msg}\n`);

function parseFlags(
  args: string[],
  allowed: Record<string, 'flag' | 'value'>,
): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].split(/=(.*)/s, 2);
    const kind = allowed[name];
    if (!kind) throw new UsageError(`unknown argument ${args[i]}`);
    if (kind === 'flag') out[name] = true;
    else {
      const value = inline ?? args[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      out[name] = value;
    }
  }
  return out;
}

function parseKinds(text: string): NodeKind[] {
  const kinds = text
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const bad = kinds.filter((k) => !NODE_KINDS.includes(k as NodeKind));
  if (kinds.length === 0 || bad.length > 0)
    throw new UsageError(`--kinds: expected a list of ${NODE_KINDS.join(', ')}, got ${text}`);
  return kinds as NodeKind[];
}

const mib = (kb: number) => (kb / 1024).toFixed(1);

function printStatus(s: FleetStatus): void {
  if (s.nodes.length === 0) {
    console.log(`test fleet is down (${s.stateRoot})`);
    return;
  }
  console.log(`test fleet ${s.up ? 'up' : 'partly down'}: ${s.stateRoot}`);
  console.log(
    `inventory ${s.inventory}; registry ${s.registry || '-'}; services ${s.services.join(', ') || '-'}`,
  );
  const rows = [
    ['NODE', 'ADDRESS', 'STARTED AS', 'INSTALLED', 'SSHD', 'DOCKERD', 'PROCS', 'RSS MiB', 'PSS MiB'],
    ...s.nodes.map((n) => [
      n.name,
      `${n.host}:${n.port}`,
      n.docker,
      n.installed,
      String(n.sshdPid ?? '-'),
      String(n.dockerdPid ?? '-'),
      String(n.processes),
      mib(n.rssKb),
      mib(n.pssKb),
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows)
    console.log(
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    );
  const n = s.nodes.length;
  console.log(
    `total RSS ${mib(s.total.rssKb)} MiB, PSS ${mib(s.total.pssKb)} MiB; per node RSS ${mib(s.total.rssKb / n)} MiB, PSS ${mib(s.total.pssKb / n)} MiB`,
  );
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up': {
      const f = parseFlags(rest, {
        '--nodes': 'value',
        '--kinds': 'value',
        '--services': 'value',
        '--microk8s': 'value',
        '--json': 'flag',
        '--force': 'flag',
      });
      let nodes: number | undefined;
      if (f['--nodes'] !== undefined) {
        nodes = Number(f['--nodes']);
        if (!Number.isInteger(nodes) || nodes < 1)
          throw new UsageError(`--nodes: expected a positive integer, got ${f['--nodes']}`);
      }
      const kinds = typeof f['--kinds'] === 'string' ? parseKinds(f['--kinds']) : undefined;
      let services;
      try {
        services =
          typeof f['--services'] === 'string'
            ? servicesNamed(f['--services'].split(',').map((x) => x.trim()))
            : undefined;
      } catch (err) {
        throw new UsageError(`--services: ${(err as Error).message}`);
      }
      const m = f['--microk8s'];
      const microk8s =
        typeof m === 'string'
          ? m === 'all'
            ? true
            : m
                .split(',')
                .map((x) => x.trim())
                .filter(Boolean)
          : undefined;
      const force = f['--force'] === true;
      const fleet = await up({ nodes, kinds, services, microk8s, force, log: stderrLog });
      if (f['--json'])
        console.log(
          JSON.stringify({ inventory: fleet.inventory, registry: fleet.registry, nodes: fleet.nodes }),
        );
      else {
        for (const n of fleet.nodes) console.log(`${n.name}  ${n.host}:${n.port}  docker=${n.docker}`);
        console.log(`registry ${fleet.registry}\ninventory ${fleet.inventory}`);
      }
      return 0;
    }
    case 'down': {
      const f = parseFlags(rest, { '--force': 'flag' });
      await down({ force: f['--force'] === true, log: stderrLog });
      return 0;
    }
    case 'status': {
      const f = parseFlags(rest, { '--json': 'flag' });
      const s = status();
      if (f['--json']) console.log(JSON.stringify(s));
      else printStatus(s);
      return 0;
    }
    case 'exec': {
      const sep = rest.indexOf('--');
      const name = rest[0];
      if (!name || name === '--' || sep !== 1 || rest.length < 3)
        throw new UsageError('exec: expected NODE -- CMD...');
      const env: Record<string, string> = process.env.TERM ? { TERM: process.env.TERM } : {};
      const [cmd, args] = nodeCommand(getNode(name), rest.slice(2), env);
      return resultOf(await $({ cwd: '/', stdio: 'inherit', nothrow: true })`${cmd} ${args}`).code;
    }
    case 'job': {
      const f = parseFlags(rest, {
        '--executor': 'value',
        '--node': 'value',
        '--json': 'flag',
        '--timeout': 'value',
      });
      const executor = f['--executor'];
      if (typeof executor !== 'string' || !EXECUTORS.includes(executor as Executor)) {
        throw new UsageError(
          `job: --executor: expected ${EXECUTORS.join(' | ')}, got ${String(executor ?? 'nothing')}`,
        );
      }
      const timeout = f['--timeout'] === undefined ? 300 : Number(f['--timeout']);
      if (!Number.isInteger(timeout) || timeout < 1)
        throw new UsageError(`job: --timeout: expected seconds, got ${String(f['--timeout'])}`);
      const json = f['--json'] === true;
      const result = await runCiJob({
        inventoryPath: fleetInfo().inventory,
        executor: executor as Executor,
        node: typeof f['--node'] === 'string' ? f['--node'] : undefined,
        timeout,
        onTrace: (chunk) => process.stderr.write(chunk),
      });
      if (json) {
        const { id, status, runner, node, registry, image, trace } = result;
        console.log(JSON.stringify({ id, status, runner, node, registry, image, trace }));
      } else {
        console.log(
          `job ${result.id}: ${result.status}${result.failureReason ? ` (${result.failureReason})` : ''} on ${result.node ?? `runner ${result.runner ?? '?'}`}`,
        );
        console.log(
          result.pushed
            ? `pushed ${result.image} (http://${result.registry}/v2/${result.image.slice(result.registry.length + 1).split(':')[0]}/tags/list)`
            : `the registry does not list ${result.image}`,
        );
      }
      return result.status === 'success' && result.pushed ? 0 : 1;
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`testbed: ${err.message}`);
    process.exit(1);
  },
);
