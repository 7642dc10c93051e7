// destroy on a node: identity dirs always, registry entries only with --purge-registry-config and only ours.
import { describe, expect, it } from 'vitest';
import { TEST_REGISTRY, fileFact, hostFacts, testNode } from './facts.fixture.js';
import { IDENTITY_SECTION, identityGatherScript, planHostCleanup } from './cleanup-plan.js';
import { APT_DAEMON_JSON, SNAP_DAEMON_JSON, type HostFacts } from './facts.js';
import { renderHostsToml } from './docker-plan.js';
import { FORWARDING_SYSCTL_CONTENT, FORWARDING_SYSCTL_FILE, podRules, ruleLine } from './forwarding.js';
import { cleanupStepScript } from './cleanup.js';
import { PRUNE_SERVICE_FILE, PRUNE_TIMER_FILE } from './prune.js';
import { SNAP_HOLDS_STATE } from './snap-holds.js';

const node = testNode;
const REG = TEST_REGISTRY;
const file = fileFact;
const OPTS = { namespace: 'gitlab-runner', systemIds: ['s_000000000001'] };

function facts(over: Partial<HostFacts> = {}, identity: string[] = []): HostFacts {
  return hostFacts({
    aptDaemonJson: file(
      APT_DAEMON_JSON,
      JSON.stringify({ 'log-level': 'warn', 'insecure-registries': ['10.9.9.9:5000', REG] }),
    ),
    microk8s: true,
    hostsToml: {
      [REG]: file(`/var/snap/microk8s/current/args/certs.d/${REG}/hosts.toml`, renderHostsToml(REG)),
    },
    gathered: { sections: new Map([[IDENTITY_SECTION, identity]]), files: new Map() },
    ...over,
  });
}

describe('planHostCleanup', () => {
  it('without purge: removes the runner identity dirs only and says the registry configuration stays', () => {
    const plan = planHostCleanup(
      node,
      [REG],
      facts({}, ['dir /var/lib/runner-fleet/namespaces/gitlab-runner/dood', 'dir /etc/passwd']),
      { ...OPTS, purgeRegistryConfig: false },
    );
    expect(plan.steps).toEqual([
      {
        kind: 'remove-dir',
        path: '/var/lib/runner-fleet/namespaces/gitlab-runner/dood',
        detail: expect.any(String),
      },
    ]);
    expect(plan.kept[0]).toMatch(
      /registry configuration stays \(198\.18\.0\.2:5000 in \/etc\/docker\/daemon\.json; .*hosts\.toml\): --purge-registry-config/,
    );
  });

  it('with purge: our registry leaves daemon.json (other keys and entries stay), dockerd reloads, our hosts.toml goes', () => {
    const plan = planHostCleanup(node, [REG], facts(), { ...OPTS, purgeRegistryConfig: true });
    expect(plan.steps.map((s) => s.kind)).toEqual(['write-file', 'reload-docker', 'remove-file']);
    const write = plan.steps[0] as Extract<(typeof plan.steps)[number], { kind: 'write-file' }>;
    expect(JSON.parse(write.content)).toEqual({
      'log-level': 'warn',
      'insecure-registries': ['10.9.9.9:5000'],
    });
    expect(write.expectSha256).toBe(facts().aptDaemonJson.sha256);
    expect(plan.steps[1]).toMatchObject({ action: 'reload', flavour: 'apt' });
  });

  it("with purge: runner-fleet's registry mirrors and log settings go too (a replaced value comes back), its state file last", () => {
    const daemon = {
      'log-level': 'warn',
      'insecure-registries': [REG],
      'registry-mirrors': ['http://mine.lan:5000', 'http://mirror.lan:5000'],
      'log-driver': 'local',
      'log-opts': { 'max-size': '10m', 'max-file': '3' },
    };
    const state = {
      'insecure-registries-added': [REG],
      'registry-mirrors-added': ['http://mirror.lan:5000'],
      'settings-set': {
        'log-driver': { value: 'local', previous: 'json-file' },
        'log-opts.max-size': { value: '10m', previous: null },
        'log-opts.max-file': { value: '3', previous: null },
      },
    };
    const f = facts({
      aptDaemonJson: file(APT_DAEMON_JSON, JSON.stringify(daemon)),
      registryState: {
        [APT_DAEMON_JSON]: file(`${APT_DAEMON_JSON}.runner-fleet.json`, JSON.stringify(state)),
      },
    });
    const kept = planHostCleanup(node, [REG], f, { ...OPTS, purgeRegistryConfig: false });
    expect(kept.steps).toEqual([]);
    expect(kept.kept[0]).toMatch(
      /runner-fleet's registry-mirrors, log-driver, log-opts in \/etc\/docker\/daemon\.json/,
    );

    const plan = planHostCleanup(node, [REG], f, { ...OPTS, purgeRegistryConfig: true });
    expect(plan.steps.map((s) => s.kind)).toEqual([
      'write-file',
      'reload-docker',
      'remove-file',
      'remove-file',
    ]);
    const write = plan.steps[0] as Extract<(typeof plan.steps)[number], { kind: 'write-file' }>;
    expect(JSON.parse(write.content)).toEqual({
      'log-level': 'warn',
      'insecure-registries': [],
      'registry-mirrors': ['http://mine.lan:5000'],
      'log-driver': 'json-file',
    });
    expect(write.detail).toMatch(
      /remove 198\.18\.0\.2:5000 from insecure-registries; remove http:\/\/mirror\.lan:5000 from registry-mirrors/,
    );
    expect(write.detail).toContain('put log-driver back to json-file');
    expect(plan.steps[1]).toMatchObject({ action: 'reload' });
    expect(plan.steps[2]).toMatchObject({
      path: `${APT_DAEMON_JSON}.runner-fleet.json`,
      expectSha256: f.registryState![APT_DAEMON_JSON].sha256,
    });
    expect(plan.kept.join('\n')).toMatch(
      /log-driver and log-opts are back as before in \/etc\/docker\/daemon\.json; dockerd reads them when it next starts/,
    );
  });

  it('snap Docker reloads (SIGHUP to its dockerd); a stopped dockerd is not started', () => {
    const snap = facts({
      aptDocker: false,
      snapDocker: true,
      aptDaemonJson: file(APT_DAEMON_JSON),
      snapDaemonJson: file(SNAP_DAEMON_JSON, `{"insecure-registries":["${REG}"]}`),
    });
    expect(planHostCleanup(node, [REG], snap, { ...OPTS, purgeRegistryConfig: true }).steps[1]).toMatchObject(
      {
        action: 'reload',
        flavour: 'snap',
      },
    );
    const stopped = facts({ dockerd: undefined, docker: undefined });
    expect(
      planHostCleanup(node, [REG], stopped, { ...OPTS, purgeRegistryConfig: true }).steps.map((s) => s.kind),
    ).toEqual(['write-file', 'remove-file']);
  });

  it('a hosts.toml someone edited stays; nothing of ours means nothing to do', () => {
    const edited = facts({
      hostsToml: { [REG]: file('/x/hosts.toml', 'server = "https://elsewhere"\n') },
      aptDaemonJson: file(APT_DAEMON_JSON, '{}'),
    });
    const plan = planHostCleanup(node, [REG], edited, { ...OPTS, purgeRegistryConfig: true });
    expect(plan.steps).toEqual([]);
    expect(plan.kept).toEqual([
      '/x/hosts.toml stays: its content is not what runner-fleet wrote (edited by someone)',
    ]);
    expect(
      planHostCleanup(node, [REG], facts({ hostsToml: {}, aptDaemonJson: file(APT_DAEMON_JSON) }), {
        ...OPTS,
        purgeRegistryConfig: true,
      }),
    ).toEqual({ steps: [], kept: [] });
  });

  it('refuses a daemon.json that is not JSON', () => {
    expect(() =>
      planHostCleanup(node, [REG], facts({ aptDaemonJson: file(APT_DAEMON_JSON, '{"insecure') }), {
        ...OPTS,
        purgeRegistryConfig: true,
      }),
    ).toThrow(/not valid JSON/);
  });
});

describe('planHostCleanup: forwarding', () => {
  it("removes runner-fleet's sysctl file and its tagged DOCKER-USER rules, with or without purge, and nothing else", () => {
    const forwarding = {
      ipForward: true,
      sysctlFile: file(FORWARDING_SYSCTL_FILE, FORWARDING_SYSCTL_CONTENT),
      iptables: {
        forwardPolicy: 'DROP',
        dockerUser: ['-A DOCKER-USER -i cni0 -j ACCEPT', ...podRules('10.1.0.0/16').map(ruleLine)],
      },
    };
    for (const purgeRegistryConfig of [false, true]) {
      const plan = planHostCleanup(node, [REG], facts({ forwarding }), { ...OPTS, purgeRegistryConfig });
      const fwd = plan.steps.filter(
        (s) => s.kind === 'pod-traffic-rules' || ('path' in s && s.path === FORWARDING_SYSCTL_FILE),
      );
      expect(fwd).toEqual([
        expect.objectContaining({ kind: 'remove-file', path: FORWARDING_SYSCTL_FILE, keepDir: true }),
        expect.objectContaining({ kind: 'pod-traffic-rules', add: [], remove: podRules('10.1.0.0/16') }),
      ]);
    }
    // /etc/sysctl.d stays even when it is left empty
    const rm = planHostCleanup(node, [REG], facts({ forwarding }), { ...OPTS, purgeRegistryConfig: false })
      .steps[0];
    expect(cleanupStepScript(rm)).not.toContain('rmdir');
  });
});

describe('destroy takes back the prune timer and the snap holds runner-fleet made', () => {
  it('always, with or without --purge-registry-config', () => {
    const facts = hostFacts({
      prune: {
        service: fileFact(PRUNE_SERVICE_FILE, 'x'),
        timer: fileFact(PRUNE_TIMER_FILE, 'y'),
        enabled: true,
        active: 'active',
      },
      snaps: {
        installed: { docker: { held: true, version: '1', rev: '1' } },
        state: fileFact(SNAP_HOLDS_STATE, 'docker\n'),
      },
    });
    for (const purgeRegistryConfig of [false, true]) {
      const steps = planHostCleanup(testNode, [], facts, { ...OPTS, purgeRegistryConfig }).steps;
      expect(steps.map((s) => s.kind)).toEqual(['remove-prune-timer', 'snap-unhold']);
    }
  });
});

describe('identity folders per fleet', () => {
  it("another fleet's folder is never removed; an old shared folder only when this fleet's records hold its system_id", () => {
    const plan = planHostCleanup(
      node,
      [REG],
      facts({}, [
        'dir /var/lib/runner-fleet/namespaces/other/dood',
        'legacy /var/lib/runner-fleet/dood s_000000000001',
        'legacy /var/lib/runner-fleet/shell s_999999999999',
        'legacy /var/lib/runner-fleet/dind ',
      ]),
      { ...OPTS, purgeRegistryConfig: false },
    );
    expect(plan.steps.map((s) => (s as { path?: string }).path)).toEqual(['/var/lib/runner-fleet/dood']);
    expect(plan.kept.join('\n')).toMatch(
      /\/var\/lib\/runner-fleet\/shell stays: it holds system_id s_999999999999/,
    );
    expect(plan.kept.join('\n')).toMatch(/\/var\/lib\/runner-fleet\/dind stays: it holds no system_id/);
  });

  it('the gather asks for this namespace only; removing a folder takes empty parents with it', () => {
    const script = identityGatherScript('ci');
    expect(script).toContain("'/var/lib/runner-fleet/namespaces/ci/dood'");
    expect(script).not.toMatch(/namespaces\/gitlab-runner/);
    expect(
      cleanupStepScript({ kind: 'remove-dir', path: '/var/lib/runner-fleet/namespaces/ci/dood', detail: '' }),
    ).toBe(
      "rm -rf -- '/var/lib/runner-fleet/namespaces/ci/dood'\nrmdir '/var/lib/runner-fleet/namespaces/ci' '/var/lib/runner-fleet/namespaces' '/var/lib/runner-fleet' 2>/dev/null || :",
    );
  });
});
