// The suite's proof does not depend on this machine's net.ipv4.ip_forward. Every other end-to-end suite runs under the
// machine's own value; this one sets the other (1 on a fresh machine, 0 on one that once ran Docker), brings a fleet
// up, provisions it and runs a job on each node, with no rule added by the test, so one `npm test` covers both. It
// changes a machine-wide sysctl, so it runs in the e2e-alone project.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clusterService,
  DEFAULT_SERVICES,
  down,
  execOnNode,
  type FleetInfo,
  makeClusterService,
  runCiJob,
  up,
} from '#testbed';
import { runProvision } from './support/provision.js';
import { requireRoot } from './support/requireRoot.js';

const canRun = requireRoot('fleets on a machine with forwarding off and on');
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';
// As the demo: the inventory's nodes alone, no kwok-played extra node.
const services = DEFAULT_SERVICES.map((s) =>
  s.name === clusterService.name ? makeClusterService({ extraNodes: [] }) : s,
);

/** The value the other suites did not run under. */
const OTHER_VALUE = canRun && readFileSync(IP_FORWARD, 'utf8').trim() === '1' ? '0' : '1';

describe.runIf(canRun).each([OTHER_VALUE])("this machine's net.ipv4.ip_forward at %s", (machineValue) => {
  let original = '';
  let fleet: FleetInfo;

  beforeAll(async () => {
    original = readFileSync(IP_FORWARD, 'utf8').trim();
    writeFileSync(IP_FORWARD, machineValue);
    // apt: dockerd already runs when runner-fleet comes (it turned forwarding on itself and set FORWARD to DROP);
    // none: runner-fleet installs Docker.
    fleet = await up({ nodes: 2, kinds: ['apt', 'none'], services });
  });

  afterAll(async () => {
    try {
      if (fleet) await down();
    } finally {
      writeFileSync(IP_FORWARD, original);
    }
  });

  it("a node's namespace starts with forwarding off, as a fresh Pi, whatever this machine has", async () => {
    // pi2 has no Docker yet: nothing in it has touched the value since the namespace was made.
    const r = await execOnNode('pi2', ['cat', IP_FORWARD]);
    expect(r.stdout.trim(), r.stderr).toBe('0');
  });

  it('provision converges and a job runs on each node, with no rule added by the test', async () => {
    const applied = await runProvision(['--inventory', fleet.inventory, '--executor', 'dood']);
    expect(applied.code, `${applied.stderr}\n${applied.stdout}`).toBe(0);
    for (const node of fleet.nodes.map((n) => n.name)) {
      const job = await runCiJob({ inventoryPath: fleet.inventory, executor: 'dood', node, timeout: 240 });
      expect(job.status, `${node}: ${job.failureReason}\n${job.trace}`).toBe('success');
      expect(job.pushed, `${node}: the registry does not list ${job.image}\n${job.trace}`).toBe(true);
    }
  }, 600_000);
});
