// Setup file of the parallel end-to-end project: each vitest worker gets its own test fleet slot (its own bridge,
// 198.18.<slot>.0/24, namespaces and state directory), so two suites run side by side without sharing a node.
// Runs before the test file's imports, so scripts/testbed/paths.ts (and registry.ts, which reads the slot at import)
// see it, and so does every provision.ts or testbed.ts the suite starts.
const MAX_SLOT = 9;

// The slot the user chose (or 0) is the first; worker n (VITEST_POOL_ID, from 1) takes the base + n - 1.
process.env.RUNNER_FLEET_TESTBED_SLOT_BASE ??= process.env.RUNNER_FLEET_TESTBED_SLOT ?? '0';
const base = Number(process.env.RUNNER_FLEET_TESTBED_SLOT_BASE);
const worker = Number(process.env.VITEST_POOL_ID ?? '1');
const slot = base + worker - 1;
if (!Number.isInteger(slot) || slot < 0 || slot > MAX_SLOT)
  throw new Error(
    `test fleet slot ${slot} (RUNNER_FLEET_TESTBED_SLOT ${base} + worker ${worker} - 1) is outside 0-${MAX_SLOT}: lower RUNNER_FLEET_TESTBED_SLOT or the e2e workers`,
  );
process.env.RUNNER_FLEET_TESTBED_SLOT = String(slot);
