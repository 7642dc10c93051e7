// Pre-flight end to end: each pre-flight condition made real on pi1 in turn; plan names it, apply refuses pi1
// only (exit 1, nothing changed on it) and the other nodes converge. One fleet for every case.
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { down, execOnNode, type FleetInfo, nodeFile, up } from '#testbed';
import {
  readInventory,
  standinControl,
  writeVariant,
  type InventoryDoc,
  withoutPrepull,
} from '../support/fleet.js';
import { runProvision, type ProvisionRun } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('pre-flight end to end');

const APT_JSON = '/etc/docker/daemon.json';
/** Stand-ins on pi1's PATH: its /usr/local/sbin is its own and first on sudo's secure_path. */
const STANDIN_DIR = '/usr/local/sbin';

/** A stand-in for `tool` that answers `args` with `answer` and runs the real tool otherwise. */
const wrapper = (tool: string, args: string, answer: string) =>
  `#!/bin/sh\nif [ "$*" = ${JSON.stringify(args)} ]; then ${answer}; exit 0; fi\nexec /usr/bin/${tool} "$@"\n`;

interface Condition {
  name: string;
  /** makes it real on pi1 */
  make(): Promise<void>;
  /** takes it back */
  undo(): Promise<void>;
  /** what pi1's error must say */
  says: string[];
  /** with runners (the clock is compared with GitLab's only when runners are in play) */
  runners?: boolean;
}

describe.runIf(canRun)('pre-flight refuses only the node that cannot work', () => {
  let fleet: FleetInfo;
  let full: string;
  let hostsOnly: string;
  const standins: string[] = [];
  const sh = async (script: string) => {
    const r = await execOnNode('pi1', ['sh', '-c', script]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  const standin = (tool: string, text: string) => {
    const path = nodeFile('pi1', `${STANDIN_DIR}/${tool}`);
    writeFileSync(path, text);
    chmodSync(path, 0o755);
    standins.push(path);
  };
  const pi1DaemonJson = () =>
    existsSync(nodeFile('pi1', APT_JSON)) ? readFileSync(nodeFile('pi1', APT_JSON), 'utf8') : undefined;

  beforeAll(async () => {
    fleet = await up({ nodes: 3 });
    withoutPrepull(fleet.inventory);
    const base: InventoryDoc = readInventory(fleet.inventory);
    full = writeVariant(fleet.inventory, base, () => {});
    hostsOnly = writeVariant(fleet.inventory, base, (inv) => {
      delete inv.kubernetes;
      for (const k of ['accessToken', 'runnerToken', 'registrationToken']) delete inv.gitlab[k];
    });
  });

  afterEach(() => {
    for (const path of standins.splice(0)) rmSync(path, { force: true });
  });

  afterAll(async () => {
    if (canRun) await down();
  });

  const CONDITIONS: Condition[] = [
    {
      name: 'memory cgroup not enabled',
      make: async () => {
        // A copy of /proc/cgroups with memory's `enabled` at 0, bound over the real one in pi1's namespace only.
        writeFileSync(
          nodeFile('pi1', '/tmp/cgroups'),
          readFileSync('/proc/cgroups', 'utf8').replace(/^(memory\t\d+\t\d+\t)1$/m, (_, head) => `${head}0`),
        );
        await sh('mount --bind /tmp/cgroups /proc/cgroups');
        expect(await sh(`awk '$1 == "memory" { print $4 }' /proc/cgroups`)).toBe('0\n');
      },
      undo: async () => void (await sh('umount /proc/cgroups')),
      says: [
        'the memory cgroup is not enabled',
        'cgroup_enable=memory cgroup_memory=1',
        '/cmdline.txt && sudo reboot',
      ],
    },
    {
      name: '32-bit userland on a 64-bit kernel',
      make: async () => {
        standin('dpkg', wrapper('dpkg', '--print-architecture', 'echo armhf'));
        standin('uname', wrapper('uname', '-m', 'echo aarch64'));
      },
      undo: async () => {},
      says: [
        '32-bit userland (dpkg architecture armhf) on a 64-bit kernel (aarch64)',
        'Raspberry Pi OS (64-bit)',
      ],
    },
    {
      name: '16K-page kernel',
      make: async () => standin('getconf', wrapper('getconf', 'PAGESIZE', 'echo 16384')),
      undo: async () => {},
      says: ['16K pages', 'echo kernel=kernel8.img | sudo tee -a', 'config.txt && sudo reboot'],
    },
    {
      name: "clock far from GitLab's",
      // pi1's own clock, one hour ahead as its `date +%s` reports it (the nodes share this machine's clock).
      make: async () => standin('date', wrapper('date', '+%s', 'echo $(( $(/usr/bin/date +%s) + 3600 ))')),
      undo: async () => {},
      says: ['s ahead of GitLab', 'sudo timedatectl set-ntp true'],
      runners: true,
    },
    {
      name: 'less than 2 GiB free under the data root',
      // A small tmpfs over pi1's /var/lib/docker (its dockerd's DockerRootDir): 64 MiB free.
      make: async () => void (await sh('mount -t tmpfs -o size=64m rf-preflight /var/lib/docker')),
      undo: async () => void (await sh('umount -l /var/lib/docker')),
      says: ["free under Docker's data root /var/lib/docker", 'docker system prune'],
    },
  ];

  const pi1Refused = (r: ProvisionRun, says: string[]) => {
    expect(r.code, r.stderr).toBe(1);
    const pi1 = r.report!.nodes.find((n) => n.name === 'pi1')!;
    expect(pi1.ok).toBe(false);
    expect(pi1.changes).toEqual([]);
    expect(pi1.error).toContain('pre-flight refused pi1, nothing was changed on it: pi1: ');
    for (const text of says) expect(pi1.error).toContain(text);
  };

  for (const c of CONDITIONS) {
    it(`${c.name}: plan names it, apply refuses pi1 only and the others converge`, async () => {
      const inventory = c.runners ? full : hostsOnly;
      const before = pi1DaemonJson();
      await c.make();
      try {
        const plan = await runProvision(['plan', '--inventory', inventory, '--json']);
        pi1Refused(plan, c.says);
        const apply = await runProvision(['apply', '--inventory', inventory, '--json']);
        pi1Refused(apply, c.says);
        for (const name of ['pi2', 'pi3'])
          expect(
            apply.report!.nodes.find((n) => n.name === name),
            apply.stderr,
          ).toMatchObject({ ok: true });
        expect(pi1DaemonJson()).toBe(before);
        // status names it on pi1's row, read-only.
        const status = await runProvision(['status', '--inventory', inventory, '--json']);
        expect(status.code, status.stderr).toBe(1);
        const row = (
          status.report as unknown as { nodes: { node: string; problems: string[] }[] }
        ).nodes.find((n) => n.node === 'pi1')!;
        expect(row.problems.filter((p) => p.startsWith('pre-flight: ')).join('\n')).toContain(c.says[0]);
        // The others' host steps took: their dockerd lists the registry as insecure.
        for (const name of ['pi2', 'pi3']) {
          const r = await execOnNode(name, [
            'docker',
            'info',
            '--format',
            '{{json .RegistryConfig.IndexConfigs}}',
          ]);
          expect(r.stdout).toContain(`"${fleet.registry}"`);
        }
      } finally {
        await c.undo();
      }
    });
  }

  it("GitLab's clock moved: plan names every node's skew (the nodes share one clock)", async () => {
    await standinControl(readInventory(full).gitlab.url, 'clock', 'POST', { offsetSeconds: -7200 });
    try {
      const plan = await runProvision(['plan', '--inventory', full, '--json']);
      expect(plan.code, plan.stderr).toBe(1);
      for (const n of plan.report!.nodes) {
        expect(n.ok).toBe(false);
        // Both clocks are read to the second: 7200 s, give or take one.
        expect(n.error).toMatch(new RegExp(`${n.name}: the clock is (7199|7200|7201) s ahead of GitLab's`));
      }
    } finally {
      await standinControl(readInventory(full).gitlab.url, 'clock', 'POST', { offsetSeconds: 0 });
    }
  });

  it('every secret reference is read once, before anything is contacted: an unset cache key is exit 2 with no node touched; a token piped on file:/dev/stdin serves the whole run', async () => {
    const base = readInventory(full);
    const daemonJsons = () =>
      fleet.nodes.map(
        (n) => existsSync(nodeFile(n.name, APT_JSON)) && readFileSync(nodeFile(n.name, APT_JSON), 'utf8'),
      );
    const before = daemonJsons();
    const unset = writeVariant(fleet.inventory, readInventory(hostsOnly), (inv) => {
      inv.runners = {
        ...(inv.runners ?? {}),
        cache: {
          serverAddress: 'minio.lan:9000',
          bucketName: 'cache',
          accessKey: 'env:RF_E2E_UNSET_AK',
          secretKey: 'env:RF_E2E_UNSET_SK',
        },
      };
    });
    const refused = await runProvision(['apply', '--inventory', unset]);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(
      'runners.cache.accessKey: environment variable RF_E2E_UNSET_AK is not set',
    );
    expect(refused.stderr).toContain(
      'runners.cache.secretKey: environment variable RF_E2E_UNSET_SK is not set',
    );
    expect(daemonJsons()).toEqual(before);

    // The token read from stdin once: the GitLab phase of plan uses the same value (a second read would find stdin empty).
    const ref = String(base.gitlab.accessToken ?? base.gitlab.runnerToken ?? base.gitlab.registrationToken);
    const token = ref.startsWith('file:') ? readFileSync(ref.slice(5), 'utf8') : process.env[ref.slice(4)]!;
    const piped = writeVariant(fleet.inventory, base, (inv) => {
      for (const k of ['accessToken', 'runnerToken', 'registrationToken'])
        if (inv.gitlab[k]) inv.gitlab[k] = 'file:/dev/stdin';
    });
    const plan = await runProvision(['plan', '--inventory', piped, '--json'], {}, { input: token });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.report!.gitlab).toMatchObject({ ok: true });
    expect(daemonJsons()).toEqual(before);
  });

  it('with every condition taken back, pi1 converges like the others', async () => {
    const r = await runProvision(['apply', '--inventory', hostsOnly, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.nodes.every((n) => n.ok)).toBe(true);
  });
});
