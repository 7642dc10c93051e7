// The pure host-runner plan on in-memory facts: fresh install, no-op, config or key changes, permissions, removal.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256, splitGatherOutput } from '../docker/facts.js';
import { GITLAB_RUNNER_REPOSITORY, type PackageRepository } from '../inventory/types.js';
import {
  CONFIG_TOML,
  DROP_IN_FILE,
  KEYRING_FILE,
  PIN_FILE,
  RECORD_FILE,
  SOURCES_FILE,
  SYSTEM_ID_FILE,
  parseHostRunnerFacts,
  restartOnlyConfig,
  type GatheredFile,
  type HostRunnerFacts,
} from './facts.js';
import {
  checkNodeKeyring,
  dropIn,
  needsRepositoryKey,
  isOlder,
  packagePin,
  pinPreferences,
  planHostRunner,
  planHostRunnerRemoval,
  sourcesList,
  HostRunnerPlanError,
  type HostRunnerPlanInput,
} from './host-runner-plan.js';
import { hostRunnerStepScript, oneUpgradeAtATime } from './host-runner-converge.js';

const KEY = readFileSync(
  join(import.meta.dirname, '..', '..', 'scripts', 'testbed', 'repository', 'signing-key.asc'),
  'utf8',
);
const KEY_BINARY = readFileSync(
  join(import.meta.dirname, '..', '..', 'scripts', 'testbed', 'repository', 'signing-key.gpg'),
);
const FOREIGN_KEYRING = '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n';
const REPO: PackageRepository = {
  ...GITLAB_RUNNER_REPOSITORY,
  key: { kind: 'file', path: '/k.asc' },
  fingerprint: 'A0D3D76DCDC5B3A395EAD8371EBFE911B8F8121F',
};
const NOW = Date.parse('2026-11-01T00:00:00Z') / 1000;
const CONFIG =
  'concurrent = 1\n\n[[runners]]\n  name = "runner-fleet pi1"\n  token = "glrt-abcdefgh"\n  executor = "shell"\n';
const SYSTEM_ID = 's_0123456789ab';

const file = (path: string, content?: string): GatheredFile =>
  content === undefined
    ? { path, sha256: 'absent' }
    : { path, content, bytes: Buffer.from(content), sha256: sha256(content) };

/** A node that runs the desired runner already. */
function converged(): HostRunnerFacts {
  return {
    os: { id: 'debian', codename: 'bookworm' },
    package: { installed: true, version: '17.11.0-1' },
    service: { active: 'active', enabled: 'enabled' },
    config: { sha256: sha256(CONFIG), mode: '600', owner: 'root' },
    systemId: { ...file(SYSTEM_ID_FILE, `${SYSTEM_ID}\n`), mode: '600', owner: 'root' },
    record: { ...file(RECORD_FILE, '[]'), mode: '600', owner: 'root' },
    dropIn: file(DROP_IN_FILE, dropIn()),
    install: {
      user: { exists: true, groups: ['gitlab-runner', 'docker'] },
      dockerGroup: true,
      keyring: file(KEYRING_FILE, KEY),
      oldKeyring: false,
      sources: file(SOURCES_FILE, sourcesList(REPO, 'debian', 'bookworm', 'arm64')),
      pin: file(PIN_FILE, pinPreferences(REPO)),
      otherSources: [],
    },
  };
}

/** A fresh Pi: nothing of gitlab-runner yet. */
function fresh(): HostRunnerFacts {
  return {
    os: { id: 'debian', codename: 'bookworm' },
    package: { installed: false },
    service: { active: 'inactive', enabled: '' },
    config: { sha256: 'absent' },
    systemId: file(SYSTEM_ID_FILE),
    record: file(RECORD_FILE),
    install: {
      user: { exists: false, groups: [] },
      dockerGroup: true,
      keyring: file(KEYRING_FILE),
      oldKeyring: false,
      sources: file(SOURCES_FILE),
      pin: file(PIN_FILE),
      otherSources: [],
    },
  };
}

// The keyring checks the converge makes before planning, for the two keyrings these facts hold.
const CHECKS = new Map<string | undefined, Awaited<ReturnType<typeof checkNodeKeyring>>>();
for (const content of [KEY, FOREIGN_KEYRING, undefined]) {
  const facts = converged();
  facts.install!.keyring = file(KEYRING_FILE, content);
  CHECKS.set(content, await checkNodeKeyring(facts, REPO, NOW));
}

const input = (facts: HostRunnerFacts, extra: Partial<HostRunnerPlanInput> = {}): HostRunnerPlanInput => ({
  node: 'pi1',
  keyring: CHECKS.get(facts.install?.keyring.content),
  arch: 'arm64',
  facts,
  repository: REPO,
  desired: { configToml: CONFIG, systemId: SYSTEM_ID, label: 'runner #7' },
  key: KEY_BINARY,
  now: NOW,
  ...extra,
});
const kinds = (facts: HostRunnerFacts, extra: Partial<HostRunnerPlanInput> = {}) =>
  planHostRunner(input(facts, extra)).steps.map((s) =>
    s.kind === 'write-file' || s.kind === 'chmod'
      ? `${s.kind} ${s.path}`
      : s.kind === 'service'
        ? `service ${s.action}`
        : s.kind,
  );

describe('planHostRunner', () => {
  it('a fresh node: key, repository, pin, root-only config and system id, then the package (which starts the service), then the docker group', () => {
    const plan = planHostRunner(input(fresh()));
    expect(plan.steps.map((s) => (s.kind === 'write-file' ? `${s.path} ${s.mode}` : s.kind))).toEqual([
      `${KEYRING_FILE} 0644`,
      `${SOURCES_FILE} 0644`,
      `${PIN_FILE} 0644`,
      `${DROP_IN_FILE} 0644`,
      `${CONFIG_TOML} 0600`,
      `${SYSTEM_ID_FILE} 0600`,
      'install-package',
      'docker-group',
    ]);
    const sources = plan.steps.find((s) => s.kind === 'write-file' && s.path === SOURCES_FILE);
    expect(sources && 'content' in sources && sources.content).toContain(
      `deb [arch=arm64 signed-by=${KEYRING_FILE}] https://packages.gitlab.com/runner/gitlab-runner/debian/ bookworm main\n`,
    );
    expect(pinPreferences(REPO)).toContain('Pin: origin packages.gitlab.com\nPin-Priority: 1001\n');
    // GitLab's keyring: binary (dearmored), named .gpg.
    const keyring = plan.steps.find((s) => s.kind === 'write-file' && s.path === KEYRING_FILE) as {
      content: Buffer;
    };
    expect(KEYRING_FILE).toBe('/etc/apt/keyrings/runner_gitlab-runner-archive-keyring.gpg');
    expect(Buffer.isBuffer(keyring.content) && (keyring.content[0] & 0x80) !== 0).toBe(true);
    // Installing runs the postinst's own daemon-reload: none of ours.
    expect(plan.steps.some((s) => s.kind === 'daemon-reload')).toBe(false);
    // The token is only ever in the content, never in what is reported.
    expect(plan.steps.map((s) => s.detail).join('\n')).not.toContain('glrt-');
  });

  it('a converged node: nothing to do', () => {
    expect(planHostRunner(input(converged()))).toEqual({ steps: [], notes: [], warnings: [] });
  });

  it('a changed config.toml is rewritten and reloaded (SIGHUP), never restarted: running jobs keep going; a changed system id too', () => {
    const facts = converged();
    facts.config.sha256 = sha256('old');
    facts.config.restartOnly = [];
    expect(kinds(facts)).toEqual([`write-file ${CONFIG_TOML}`, 'service reload']);
    facts.systemId = { ...file(SYSTEM_ID_FILE, 'r_ffffffffffff\n'), mode: '600', owner: 'root' };
    const plan = planHostRunner(input(facts));
    expect(plan.steps.filter((s) => s.kind === 'service')).toEqual([
      {
        kind: 'service',
        action: 'reload',
        detail:
          'reload gitlab-runner: SIGHUP, it re-reads config.toml and .runner_system_id itself (running jobs keep going)',
      },
    ]);
  });

  it('restarts only for what gitlab-runner reads once at start-up (listen_address, [session_server])', () => {
    const facts = converged();
    facts.config.sha256 = sha256('old');
    facts.config.restartOnly = ['listen_address = ":9252"'];
    expect(kinds(facts)).toEqual([`write-file ${CONFIG_TOML}`, 'service restart']);
    expect(
      restartOnlyConfig(
        'concurrent = 4\nlisten_address = ":9252"\n[session_server]\n  session_timeout = 1800\n[[runners]]\n  name = "x"\n',
      ),
    ).toEqual(['listen_address = ":9252"', '[session_server]', 'session_timeout = 1800']);
    expect(restartOnlyConfig(CONFIG)).toEqual([]);
  });

  it('the graceful-stop drop-in: written when missing or different, then daemon-reload once; no restart', () => {
    const facts = converged();
    facts.dropIn = file(DROP_IN_FILE);
    expect(kinds(facts)).toEqual([`write-file ${DROP_IN_FILE}`, 'daemon-reload']);
    expect(dropIn()).toBe(
      '# Managed by runner-fleet: gitlab-runner stops gracefully, letting running jobs finish.\n[Service]\nKillSignal=SIGQUIT\nKillMode=mixed\nTimeoutStopSec=3600\n',
    );
  });

  it('removes the .asc keyring earlier versions wrote', () => {
    const facts = converged();
    facts.install!.oldKeyring = true;
    expect(planHostRunner(input(facts)).steps).toEqual([
      expect.objectContaining({
        kind: 'remove-files',
        paths: ['/etc/apt/keyrings/runner_gitlab-runner-archive-keyring.asc'],
      }),
    ]);
  });

  it("on snap Docker a docker group made now needs the snap's dockerd restarted (it takes the socket group at start-up); with the group there, no restart", () => {
    const facts = converged();
    facts.install!.dockerGroup = false;
    facts.install!.user.groups = ['gitlab-runner'];
    const group = (flavour: 'apt' | 'snap', f: HostRunnerFacts) =>
      planHostRunner(input(f, { dockerFlavour: flavour })).steps.find((s) => s.kind === 'docker-group');
    expect(group('snap', facts)).toMatchObject({ createGroup: true, restartSnapDockerd: true });
    expect(group('snap', facts)!.detail).toContain("restart the snap's dockerd");
    expect(group('apt', facts)).toMatchObject({ createGroup: true, restartSnapDockerd: false });
    facts.install!.dockerGroup = true;
    expect(group('snap', facts)).toMatchObject({ createGroup: false, restartSnapDockerd: false });
  });

  it('a stopped or disabled service is started and enabled without a restart', () => {
    const facts = converged();
    facts.service = { active: 'inactive', enabled: 'disabled' };
    expect(kinds(facts)).toEqual(['service start', 'service enable']);
  });

  it('config files readable by others are made root-only again without rewriting them', () => {
    const facts = converged();
    facts.config = { ...facts.config, mode: '644' };
    facts.systemId = { ...facts.systemId, mode: '644' };
    expect(kinds(facts)).toEqual([`chmod ${CONFIG_TOML}`, `chmod ${SYSTEM_ID_FILE}`]);
  });

  it('gitlab-runner outside the docker group is added; a missing docker group is created first', () => {
    const facts = converged();
    facts.install!.user.groups = ['gitlab-runner'];
    expect(kinds(facts)).toEqual(['docker-group']);
    facts.install!.dockerGroup = false;
    expect(planHostRunner(input(facts)).steps[0]).toMatchObject({ kind: 'docker-group', createGroup: true });
  });

  it('a missing, foreign or expired keyring needs the key; the pinned one does not', async () => {
    expect(needsRepositoryKey(await checkNodeKeyring(converged(), REPO, NOW))).toEqual({
      needed: false,
      reason: '',
    });
    expect(needsRepositoryKey(undefined)).toEqual({ needed: true, reason: 'missing' });
    const facts = converged();
    facts.install!.keyring = file(KEYRING_FILE, FOREIGN_KEYRING);
    expect(needsRepositoryKey(await checkNodeKeyring(facts, REPO, NOW)).needed).toBe(true);
    expect(kinds(facts)).toEqual([`write-file ${KEYRING_FILE}`]);
    expect(planHostRunner(input(facts)).notes).toEqual([
      'gitlab-runner 17.11.0-1 stays as installed; the repository change applies to its next upgrade',
    ]);
  });

  it('a moved repository (codename, mirror, arch) rewrites the sources entry only', () => {
    const facts = converged();
    facts.os.codename = 'trixie';
    expect(kinds(facts)).toEqual([`write-file ${SOURCES_FILE}`]);
  });

  it('refuses an OS GitLab does not publish for, and a second entry for the same repository', () => {
    const facts = converged();
    facts.os.id = 'fedora';
    expect(() => planHostRunner(input(facts))).toThrow(/ID=fedora/);
    const other = converged();
    other.install!.otherSources = ['/etc/apt/sources.list.d/gitlab.list'];
    expect(() => planHostRunner(input(other))).toThrow(HostRunnerPlanError);
  });

  it('warns when it replaces a config.toml runner-fleet did not write', () => {
    const facts = converged();
    facts.config.sha256 = sha256('[[runners]]\n  token = "hand-made"\n');
    facts.record = file(RECORD_FILE);
    expect(planHostRunner(input(facts)).warnings[0]).toMatch(/not written by runner-fleet/);
  });
});

describe('planHostRunnerRemoval', () => {
  it('stops and disables the service and removes the files with their backups; the package stays', () => {
    const plan = planHostRunnerRemoval(converged());
    expect(plan.steps.map((s) => (s.kind === 'service' ? s.action : s.kind))).toEqual([
      'stop',
      'disable',
      'remove-files',
    ]);
    const rm = plan.steps.at(-1)!;
    expect(rm.kind === 'remove-files' && rm.paths).toEqual([
      CONFIG_TOML,
      SYSTEM_ID_FILE,
      RECORD_FILE,
      `${CONFIG_TOML}.runner-fleet.bak`,
      `${SYSTEM_ID_FILE}.runner-fleet.bak`,
      `${RECORD_FILE}.runner-fleet.bak`,
    ]);
    expect(plan.notes).toEqual([
      'the gitlab-runner package stays installed (apt-get purge gitlab-runner removes it and /etc/gitlab-runner)',
    ]);
  });

  it('leaves a runner alone that runner-fleet did not make', () => {
    const facts = converged();
    facts.record = file(RECORD_FILE);
    const plan = planHostRunnerRemoval(facts);
    expect(plan.steps).toEqual([]);
    expect(plan.warnings[0]).toMatch(/left alone/);
  });
});

describe('parseHostRunnerFacts', () => {
  it('reads the gather section', () => {
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    const out = [
      '@@hr-os',
      'raspbian bookworm',
      '@@hr-package',
      'installed 17.11.0-1',
      '@@hr-service',
      'active=active',
      'enabled=enabled',
      'started=1796686089680',
      '@@hr-config',
      'abc123',
      '600 root',
      '@@hr-config-restart-only',
      'listen_address = ":9252"',
      '@@hr-system-id-mode',
      '600 root',
      `@@file ${SYSTEM_ID_FILE}`,
      b64('s_0123456789ab\n'),
      '@@hr-record-mode',
      `@@file ${RECORD_FILE}`,
      '-',
      '@@hr-user',
      'user gitlab-runner docker',
      '@@hr-docker-group',
      'yes',
      `@@file ${KEYRING_FILE}`,
      b64(KEY),
      `@@file ${SOURCES_FILE}`,
      '-',
      `@@file ${PIN_FILE}`,
      '-',
      '@@hr-other-sources',
      '/etc/apt/sources.list.d/old.list',
      '@@end',
    ].join('\n');
    const f = parseHostRunnerFacts(splitGatherOutput(out))!;
    expect(f.os).toEqual({ id: 'raspbian', codename: 'bookworm' });
    expect(f.package).toEqual({ installed: true, version: '17.11.0-1', held: [] });
    expect(f.service).toEqual({ active: 'active', enabled: 'enabled', startedMs: 1796686089680 });
    expect(f.config).toEqual({
      sha256: 'abc123',
      restartOnly: ['listen_address = ":9252"'],
      mode: '600',
      owner: 'root',
    });
    expect(f.systemId.content).toBe('s_0123456789ab\n');
    expect(f.record.sha256).toBe('absent');
    expect(f.install!.user).toEqual({ exists: true, groups: ['gitlab-runner', 'docker'] });
    expect(f.install!.keyring.content).toBe(KEY);
    expect(f.install!.otherSources).toEqual(['/etc/apt/sources.list.d/old.list']);
    expect(parseHostRunnerFacts(splitGatherOutput('@@os\ndebian 12\n@@end'))).toBeUndefined();
  });
});

describe('planHostRunner: runners.version', () => {
  it('a fresh node installs exactly that version with its helper images, held', () => {
    const plan = planHostRunner(input(fresh(), { version: '17.9.3' }));
    const install = plan.steps.find((s) => s.kind === 'install-package');
    expect(install).toMatchObject({
      pin: {
        version: '17.9.3-1',
        packages: ['gitlab-runner=17.9.3-1', 'gitlab-runner-helper-images=17.9.3-1'],
      },
    });
    expect(hostRunnerStepScript(install!)).toContain(
      "apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold 'gitlab-runner=17.9.3-1' 'gitlab-runner-helper-images=17.9.3-1' >/dev/null\napt-mark hold 'gitlab-runner' 'gitlab-runner-helper-images'",
    );
    expect(packagePin('16.11.1').packages).toEqual(['gitlab-runner=16.11.1-1']);
  });

  it('names a lower pinned version a downgrade', () => {
    expect(isOlder('17.9.2-1', '17.9.3-1')).toBe(true);
    expect(isOlder('17.10.0-1', '17.9.3-1')).toBe(false);
    expect(isOlder('17.9.3-1', '17.9.3-1')).toBe(false);
    expect(isOlder('17.9.3-1', undefined)).toBe(false);
    const facts = converged();
    facts.package = { installed: true, version: '17.9.3-1', held: [] };
    const plan = planHostRunner(input(facts, { version: '17.9.2' }));
    expect(plan.steps.find((s) => s.kind === 'upgrade-package')?.detail).toMatch(
      /^downgrade gitlab-runner 17\.9\.3-1 → 17\.9\.2-1 \(runners\.version\)/,
    );
  });

  it('another version installed is a visible upgrade that stops gracefully, pins, holds and starts, and replaces the reload', () => {
    const facts = converged();
    facts.config = { sha256: 'old', mode: '600', owner: 'root' };
    const plan = planHostRunner(input(facts, { version: '17.11.2' }));
    expect(kinds(facts, { version: '17.11.2' })).toEqual([`write-file ${CONFIG_TOML}`, 'upgrade-package']);
    const up = plan.steps.find((s) => s.kind === 'upgrade-package')!;
    expect(up.detail).toMatch(
      /^upgrade gitlab-runner 17\.11\.0-1 → 17\.11\.2-1 \(runners\.version\), one node at a time: systemctl stop gitlab-runner \(SIGQUIT: .* waits up to 3600s/,
    );
    const script = hostRunnerStepScript(up);
    expect(script.indexOf('systemctl stop gitlab-runner')).toBeLessThan(script.indexOf('apt-get install'));
    expect(script).toMatch(/--allow-downgrades .*'gitlab-runner=17\.11\.2-1'/);
    expect(script.trim().endsWith('systemctl start gitlab-runner')).toBe(true);
  });

  it('the right version, held: nothing to do; not held: a hold', () => {
    const facts = converged();
    facts.package = {
      installed: true,
      version: '17.9.3-1',
      held: ['gitlab-runner', 'gitlab-runner-helper-images'],
    };
    expect(planHostRunner(input(facts, { version: '17.9.3' })).steps).toEqual([]);
    facts.package.held = ['gitlab-runner'];
    expect(planHostRunner(input(facts, { version: '17.9.3' })).steps).toEqual([
      expect.objectContaining({
        kind: 'hold-package',
        detail: expect.stringMatching(/^apt-mark hold gitlab-runner-helper-images/),
      }),
    ]);
  });

  it('upgrades run one at a time', async () => {
    const order: string[] = [];
    const work = (name: string) => async () => {
      order.push(`${name} start`);
      await new Promise((r) => setTimeout(r, 5));
      order.push(`${name} end`);
    };
    await Promise.all([
      oneUpgradeAtATime(work('a')),
      oneUpgradeAtATime(work('b')),
      oneUpgradeAtATime(async () => {
        throw new Error('c');
      }).catch(() => order.push('c failed')),
      oneUpgradeAtATime(work('d')),
    ]);
    expect(order).toEqual(['a start', 'a end', 'b start', 'b end', 'c failed', 'd start', 'd end']);
  });
});
