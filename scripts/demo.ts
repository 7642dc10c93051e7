// `npm run demo`: start the local test fleet, then provision it exactly as a user would (dood executor).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { up } from './testbed/fleet.js';

const repo = join(import.meta.dirname, '..');
const executor = process.argv[2] ?? 'dood';
const fleet = await up({ log: (m) => process.stderr.write(`[testbed] ${m}\n`) });
process.stderr.write(`\n$ npx tsx provision.ts --inventory ${fleet.inventory} --executor ${executor}\n`);
const run = spawnSync(join(repo, 'node_modules', '.bin', 'tsx'), [join(repo, 'provision.ts'), '--inventory', fleet.inventory, '--executor', executor], { stdio: 'inherit' });
process.stderr.write(`
The test fleet is still running. Try:
  npx tsx provision.ts --inventory ${fleet.inventory} plan        # a rerun: nothing to change
  npx tsx scripts/testbed.ts status
  npx tsx scripts/testbed.ts exec pi1 -- docker info
  npx tsx scripts/testbed.ts down
`);
process.exit(run.status ?? 1);
