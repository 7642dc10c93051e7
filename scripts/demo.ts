// `npm run demo`: start the local test fleet, provision it exactly as a user would, then run a real CI job through it.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { $ } from 'zx';
import { EXECUTORS, type Executor } from '../src/inventory/types.js';
import { clusterService, DEFAULT_SERVICES, makeClusterService, runCiJob, up } from '#testbed';

const repo = join(import.meta.dirname, '..');
const USAGE = `usage: npm run demo [-- ${EXECUTORS.join('|')}]\n`;
let args;
try {
  args = parseArgs({
    options: { help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (args.values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const executor = (args.positionals[0] ?? 'dood') as Executor;
if (!EXECUTORS.includes(executor) || args.positionals.length > 1) {
  process.stderr.write(USAGE);
  process.exit(2);
}
// The demo's cluster is the inventory's nodes alone: no extra node, so no kwok to play it, and a cold machine does not
// compile kwok (~280 CPU-seconds) for the demo.
const services = DEFAULT_SERVICES.map((s) =>
  s.name === clusterService.name ? makeClusterService({ extraNodes: [] }) : s,
);
const fleet = await up({ services, log: (m) => process.stderr.write(`[testbed] ${m}\n`) });
process.stderr.write(`\n$ npx tsx provision.ts --inventory ${fleet.inventory} --executor ${executor}\n`);
const tsx = join(repo, 'node_modules', '.bin', 'tsx');
const provision = await $({
  cwd: repo,
  stdio: 'inherit',
  nothrow: true,
})`${tsx} provision.ts --inventory ${fleet.inventory} --executor ${executor}`;
let code = provision.exitCode ?? 1;
if (code === 0) {
  process.stderr.write(`\n$ npx tsx scripts/testbed.ts job --executor ${executor}\n`);
  const job = await runCiJob({
    inventoryPath: fleet.inventory,
    executor,
    onTrace: (t) => process.stderr.write(t),
  });
  process.stderr.write(`\njob ${job.id}: ${job.status} on ${job.node ?? `runner ${job.runner}`}\n`);
  if (job.pushed)
    process.stderr.write(
      `pushed ${job.image}: curl http://${job.registry}/v2/${job.image.slice(job.registry.length + 1).split(':')[0]}/tags/list\n`,
    );
  code = job.status === 'success' && job.pushed ? 0 : 1;
}
// The testbed commands name the fleet by its slot: say it when it is not the default one.
const slotEnv = process.env.RUNNER_FLEET_TESTBED_SLOT
  ? `RUNNER_FLEET_TESTBED_SLOT=${process.env.RUNNER_FLEET_TESTBED_SLOT} `
  : '';
process.stderr.write(`
The test fleet is still running. Try:
  npx tsx provision.ts --inventory ${fleet.inventory} plan        # a rerun: nothing to change
  npx tsx provision.ts --inventory ${fleet.inventory} status      # every runner online, by its own polling
  ${slotEnv}npx tsx scripts/testbed.ts job --executor ${executor}            # one more CI job through the fleet
  ${slotEnv}npx tsx scripts/testbed.ts status
  ${slotEnv}npx tsx scripts/testbed.ts down
`);
process.exit(code);
