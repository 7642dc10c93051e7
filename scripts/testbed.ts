// CLI for the local test fleet: up, down, status, exec. The work is in scripts/testbed/fleet.ts.
import { EXECUTORS, type Executor } from '../src/inventory/types.js';
import {
  down,
  fleetInfo,
  type FleetStatus,
  getNode,
  NODE_KINDS,
  nodeCommand,
  type NodeKind,
  resultOf,
  runCiJob,
  servicesNamed,
  status,
  up,
} from '#testbed';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { $ } from 'zx';

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

/** The flags of one command, parsed with node:util's parseArgs; any mistake is a UsageError (exit 2, usage shown). */
function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: false }>({
      args,
      options,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
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
        nodes: { type: 'string' },
        kinds: { type: 'string' },
        services: { type: 'string' },
        microk8s: { type: 'string' },
        json: { type: 'boolean' },
        force: { type: 'boolean' },
      });
      let nodes: number | undefined;
      if (f.nodes !== undefined) {
        nodes = Number(f.nodes);
        if (!Number.isInteger(nodes) || nodes < 1)
          throw new UsageError(`--nodes: expected a positive integer, got ${f.nodes}`);
      }
      const kinds = f.kinds !== undefined ? parseKinds(f.kinds) : undefined;
      let services;
      try {
        services =
          f.services !== undefined ? servicesNamed(f.services.split(',').map((x) => x.trim())) : undefined;
      } catch (err) {
        throw new UsageError(`--services: ${(err as Error).message}`);
      }
      const m = f.microk8s;
      const microk8s =
        typeof m === 'string'
          ? m === 'all'
            ? true
            : m
                .split(',')
                .map((x) => x.trim())
                .filter(Boolean)
          : undefined;
      const force = f.force === true;
      const fleet = await up({ nodes, kinds, services, microk8s, force, log: stderrLog });
      if (f.json)
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
      const f = parseFlags(rest, { force: { type: 'boolean' } });
      await down({ force: f.force === true, log: stderrLog });
      return 0;
    }
    case 'status': {
      const f = parseFlags(rest, { json: { type: 'boolean' } });
      const s = status();
      if (f.json) console.log(JSON.stringify(s));
      else printStatus(s);
      return 0;
    }
    case 'exec': {
      // `--` ends the flags (parseArgs's option terminator); it must come right after the node's name.
      let parsed;
      try {
        parsed = parseArgs({ args: rest, options: {}, strict: true, allowPositionals: true, tokens: true });
      } catch {
        throw new UsageError('exec: expected NODE -- CMD...');
      }
      const sep = parsed.tokens.findIndex((t) => t.kind === 'option-terminator');
      const name = parsed.positionals[0];
      if (!name || sep !== 1 || parsed.positionals.length < 2)
        throw new UsageError('exec: expected NODE -- CMD...');
      const env: Record<string, string> = process.env.TERM ? { TERM: process.env.TERM } : {};
      const [cmd, args] = nodeCommand(getNode(name), rest.slice(2), env);
      return resultOf(await $({ cwd: '/', stdio: 'inherit', nothrow: true })`${cmd} ${args}`).code;
    }
    case 'job': {
      const f = parseFlags(rest, {
        executor: { type: 'string' },
        node: { type: 'string' },
        json: { type: 'boolean' },
        timeout: { type: 'string' },
      });
      const executor = f.executor;
      if (typeof executor !== 'string' || !EXECUTORS.includes(executor as Executor)) {
        throw new UsageError(
          `job: --executor: expected ${EXECUTORS.join(' | ')}, got ${String(executor ?? 'nothing')}`,
        );
      }
      const timeout = f.timeout === undefined ? 300 : Number(f.timeout);
      if (!Number.isInteger(timeout) || timeout < 1)
        throw new UsageError(`job: --timeout: expected seconds, got ${f.timeout}`);
      const json = f.json === true;
      const result = await runCiJob({
        inventoryPath: fleetInfo().inventory,
        executor: executor as Executor,
        node: f.node,
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
