// The suite's proof does not depend on this machine's net.ipv4.ip_forward. One fleet with it at 0
// (a fresh machine) and one with it at 1 (a machine that once ran Docker): each is provisioned and runs a job, with
// no rule added by the test. It changes a machine-wide sysctl, so it runs in the e2e-alone project.
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

describe.runIf(canRun).each(['0', '1'])("this machine's net.ipv4.ip_forward at %s", (machineValue) => {
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
