// The pure host-runner plan: from gathered facts and the desired runner, the steps that install, configure or remove it.
import { sha256 } from '../docker/facts.js';
import type { DockerFlavour, PackageRepository } from '../inventory/types.js';
import { DEFAULT_TERMINATION_GRACE_SECONDS } from '../kube/render.js';
import { checkPinnedKey, type PinCheck } from './openpgp.js';
import {
  CONFIG_TOML,
  DROP_IN_FILE,
  HELPER_PACKAGE,
  KEYRING_FILE,
  OLD_KEYRING_FILE,
  PACKAGE,
  PIN_FILE,
  RECORD_FILE,
  RUNNER_DIR,
  RUNNER_USER,
  SERVICE,
  SOURCES_FILE,
  SYSTEM_ID_FILE,
  restartOnlyConfig,
  type HostRunnerFacts,
} from './facts.js';

export type HostRunnerStep =
  /** atomic replace; `secret` files (config.toml, .runner_system_id) go into root-only RUNNER_DIR with mode 0600 */
  | {
      kind: 'write-file';
      path: string;
      content: string | Buffer;
      expectSha256: string;
      mode: string;
      secret: boolean;
      detail: string;
    }
  | { kind: 'chmod'; path: string; mode: string; detail: string }
  /** apt-get update, then apt-get install gitlab-runner (apt picks the node's architecture); `pin`: exactly that version, held */
  | { kind: 'install-package'; pin?: PackagePin; detail: string }
  /**
   * runners.version on a node that runs another one: graceful stop (SIGQUIT, the drop-in's TimeoutStopSec for running
   * jobs), install exactly the pinned version (up or down), hold it, start. Applied one node at a time.
   */
  | { kind: 'upgrade-package'; pin: PackagePin; from: string; detail: string }
  /** apt-mark hold, so an unattended upgrade does not move the runner off runners.version */
  | { kind: 'hold-package'; pin: PackagePin; detail: string }
  /** `restartSnapDockerd`: the snap's dockerd takes its socket's group (--group docker) only when it starts */
  | { kind: 'docker-group'; createGroup: boolean; restartSnapDockerd: boolean; detail: string }
  /** reload: SIGHUP to gitlab-runner, which re-reads config.toml and .runner_system_id; running jobs keep going */
  | {
      kind: 'service';
      action: 'restart' | 'reload' | 'start' | 'enable' | 'stop' | 'disable';
      detail: string;
    }
  | { kind: 'daemon-reload'; detail: string }
  | { kind: 'remove-files'; paths: string[]; detail: string };

export interface HostRunnerPlan {
  steps: HostRunnerStep[];
  /** worth saying, not changes (e.g. the package stays installed after a removal) */
  notes: string[];
  /** something a person should look at */
  warnings: string[];
}

export class HostRunnerPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostRunnerPlanError';
  }
}

/** The repository paths GitLab publishes (packagecloud): <url>/<os>/ <codename> main. */
const SUPPORTED_OS = ['debian', 'raspbian', 'ubuntu'];

export interface DesiredHostRunner {
  /** rendered by renderConfigToml (executor shell): exactly one [[runners]] block */
  configToml: string;
  systemId: string;
  /** `runner #12`, for messages */
  label: string;
  /** `plan` only: the runner does not exist yet, so its token and system id are placeholders */
  planned?: boolean;
}

/** `gitlab-runner=17.9.3-1` (and its helper images from 17.7.0 on): the Debian version of GitLab's packages. */
export interface PackagePin {
  version: string;
  /** `name=version` for apt-get install */
  packages: string[];
}

/** Whether Debian version `a` (GitLab's `17.9.2-1` form) sorts before `b`; false when either is unknown. */
export function isOlder(a: string, b: string | undefined): boolean {
  if (b === undefined) return false;
  const parts = (v: string) => v.split(/[.-]/).map((x) => Number(x));
  const [x, y] = [parts(a), parts(b)];
  if ([...x, ...y].some((n) => !Number.isInteger(n))) return false;
  for (let i = 0; i < Math.max(x.length, y.length); i++)
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0);
  return false;
}

export function packagePin(version: string): PackagePin {
  const [major, minor] = version.split('.').map(Number);
  const deb = `${version}-1`;
  const names = major > 17 || (major === 17 && minor >= 7) ? [PACKAGE, HELPER_PACKAGE] : [PACKAGE];
  return { version: deb, packages: names.map((n) => `${n}=${deb}`) };
}

export interface HostRunnerPlanInput {
  node: string;
  /** the node's Debian architecture (host facts) */
  arch: string;
  facts: HostRunnerFacts;
  repository: PackageRepository;
  desired: DesiredHostRunner;
  /** the node's keyring checked against the pin (checkNodeKeyring); absent when the node has none */
  keyring?: PinCheck;
  /** the repository key as fetched and checked (binary), when needsRepositoryKey said so; absent in a dry run */
  key?: Buffer;
  /** seconds since the epoch, for key expiry */
  now: number;
  /** the node's Docker (host plan): what a new docker group needs */
  dockerFlavour?: DockerFlavour;
  /** runners.version: install exactly this gitlab-runner and hold it; absent: whatever apt installs, never upgraded */
  version?: string;
}

/**
 * How long a stop waits for running jobs before systemd kills them: the runner pods' termination grace, so a host
 * runner and a cluster runner give a job the same time.
 */
export const STOP_TIMEOUT_SECONDS = DEFAULT_TERMINATION_GRACE_SECONDS;

/**
 * The drop-in for the unit `gitlab-runner install` writes (which sets neither): SIGQUIT is gitlab-runner's graceful
 * stop (it stops asking for jobs and waits for the running ones; SIGTERM aborts them), only to the main process
 * (KillMode=mixed: a job's own processes are the runner's to end, and get SIGKILL only when the timeout runs out).
 */
export function dropIn(): string {
  return (
    '# Managed by runner-fleet: gitlab-runner stops gracefully, letting running jobs finish.\n' +
    '[Service]\n' +
    'KillSignal=SIGQUIT\n' +
    'KillMode=mixed\n' +
    `TimeoutStopSec=${STOP_TIMEOUT_SECONDS}\n`
  );
}

export function sourcesList(repo: PackageRepository, osId: string, codename: string, arch: string): string {
  return (
    '# Managed by runner-fleet (runners.placement: host); edits are overwritten on the next run.\n' +
    `deb [arch=${arch} signed-by=${KEYRING_FILE}] ${repo.url}/${osId}/ ${codename} main\n`
  );
}

/** GitLab's documented pin: a distribution's own `gitlab-runner` package must not win over GitLab's. */
export function pinPreferences(repo: PackageRepository): string {
  const origin = new URL(repo.url).hostname;
  return (
    'Explanation: Managed by runner-fleet: prefer the gitlab-runner package from the repository runner-fleet configured\n' +
    `Package: ${PACKAGE}\n` +
    `Pin: origin ${origin}\n` +
    'Pin-Priority: 1001\n'
  );
}

/** The node's keyring checked against the pin, before planning (the OpenPGP library is async); undefined: none there. */
export async function checkNodeKeyring(
  facts: HostRunnerFacts,
  repo: PackageRepository,
  now: number,
): Promise<PinCheck | undefined> {
  const keyring = facts.install?.keyring;
  return keyring?.bytes ? checkPinnedKey(keyring.bytes, repo.fingerprint, now) : undefined;
}

/** Whether the node's keyring must be (re)written: missing, not the pinned key, revoked or expired. */
export function needsRepositoryKey(keyring: PinCheck | undefined): { needed: boolean; reason: string } {
  if (!keyring) return { needed: true, reason: 'missing' };
  return keyring.ok
    ? { needed: false, reason: '' }
    : { needed: true, reason: `the one there is refused: ${keyring.reason}` };
}

function writeIfDifferent(
  steps: HostRunnerStep[],
  file: { path: string; content?: string; sha256: string },
  want: string,
  mode: string,
  secret: boolean,
  detail: string,
): boolean {
  if (file.content === want) return false;
  steps.push({
    kind: 'write-file',
    path: file.path,
    content: want,
    expectSha256: file.sha256,
    mode,
    secret,
    detail,
  });
  return true;
}

type InstallFacts = NonNullable<HostRunnerFacts['install']>;

/** Refuses facts the plan cannot build on: no install section, an OS GitLab has no packages for, a second source. */
function checkFacts(
  facts: HostRunnerFacts,
  repo: PackageRepository,
): { install: InstallFacts; codename: string } {
  const install = facts.install;
  if (!install) throw new HostRunnerPlanError('host-runner facts were gathered without the install section');
  if (!SUPPORTED_OS.includes(facts.os.id)) {
    throw new HostRunnerPlanError(
      `GitLab publishes gitlab-runner packages for ${SUPPORTED_OS.join(', ')}; this node's /etc/os-release says ID=${facts.os.id}`,
    );
  }
  if (!facts.os.codename)
    throw new HostRunnerPlanError(
      '/etc/os-release has no VERSION_CODENAME: cannot tell which suite of the package repository to use',
    );
  if (install.otherSources.length > 0) {
    throw new HostRunnerPlanError(
      `${install.otherSources.join(', ')} also list${install.otherSources.length === 1 ? 's' : ''} ${repo.url}; apt refuses one repository with two different Signed-By values. ` +
        `Remove ${install.otherSources.length === 1 ? 'it' : 'them'}: runner-fleet manages ${SOURCES_FILE}`,
    );
  }
  return { install, codename: facts.os.codename };
}

/** What the repository steps did, for the package steps. */
interface RepositoryPlanned {
  /** `<url>/<os>/ <codename> main`, for messages */
  suite: string;
  keyNeeded: boolean;
  sourcesChanged: boolean;
}

/** GitLab's package repository: its key, the sources entry, the pin, and the old keyring's removal. */
function planRepository(
  input: HostRunnerPlanInput,
  install: InstallFacts,
  codename: string,
  plan: HostRunnerPlan,
): RepositoryPlanned {
  const { facts, repository: repo } = input;
  const { steps } = plan;
  const key = needsRepositoryKey(input.keyring);
  if (key.needed) {
    steps.push({
      kind: 'write-file',
      path: KEYRING_FILE,
      // Binary, as GitLab's script writes it (gpg --dearmor). Empty in a dry run: the key is fetched for apply.
      content: input.key ?? '',
      expectSha256: install.keyring.sha256,
      // apt reads signed-by keyrings as the unprivileged _apt user.
      mode: '0644',
      secret: false,
      detail: `${KEYRING_FILE}: repository key ${repo.fingerprint} from ${repo.key.kind === 'url' ? repo.key.url : repo.key.path} (${key.reason})`,
    });
  }
  const suite = `${repo.url}/${facts.os.id}/ ${codename} main`;
  const sourcesChanged = writeIfDifferent(
    steps,
    install.sources,
    sourcesList(repo, facts.os.id, codename, input.arch),
    '0644',
    false,
    `${SOURCES_FILE}: ${suite} (${input.arch}), signed by ${KEYRING_FILE}`,
  );
  writeIfDifferent(
    steps,
    install.pin,
    pinPreferences(repo),
    '0644',
    false,
    `${PIN_FILE}: prefer ${PACKAGE} from ${new URL(repo.url).hostname}`,
  );
  // After the sources name the new keyring: apt never sees an entry without its key.
  if (install.oldKeyring)
    steps.push({
      kind: 'remove-files',
      paths: [OLD_KEYRING_FILE],
      detail: `remove ${OLD_KEYRING_FILE} (the keyring is ${KEYRING_FILE} now, GitLab's name)`,
    });
  return { suite, keyNeeded: key.needed, sourcesChanged };
}

/** Which of the runner's own files the plan rewrites, for the service steps. */
interface FilesPlanned {
  dropInChanged: boolean;
  configChanged: boolean;
  systemIdChanged: boolean;
}

/** The unit's drop-in, config.toml and .runner_system_id: written when they differ, made root-only again. */
function planRunnerFiles(
  input: HostRunnerPlanInput,
  installing: boolean,
  plan: HostRunnerPlan,
): FilesPlanned {
  const { facts, desired } = input;
  const { steps, warnings } = plan;
  // Before the package: its postinst's own daemon-reload then loads it with the unit.
  const dropInChanged = writeIfDifferent(
    steps,
    facts.dropIn ?? { path: DROP_IN_FILE, sha256: 'absent' },
    dropIn(),
    '0644',
    false,
    `${DROP_IN_FILE}: stop gracefully (KillSignal=SIGQUIT, KillMode=mixed, TimeoutStopSec=${STOP_TIMEOUT_SECONDS})`,
  );
  const configChanged = facts.config.sha256 !== sha256(desired.configToml);
  if (configChanged) {
    steps.push({
      kind: 'write-file',
      path: CONFIG_TOML,
      content: desired.configToml,
      expectSha256: facts.config.sha256,
      mode: '0600',
      secret: true,
      detail: `${CONFIG_TOML}: one [[runners]] block, ${desired.label} (${facts.config.sha256 === 'absent' ? 'new' : 'rewritten'}, root-only)`,
    });
    if (facts.config.sha256 !== 'absent' && !facts.record.bytes && !installing) {
      warnings.push(
        `${CONFIG_TOML} was not written by runner-fleet: the previous one is kept as config.toml.runner-fleet.bak; runners registered in it (if any) still exist in GitLab: delete them there`,
      );
    }
  } else if (facts.config.mode !== '600' || facts.config.owner !== 'root') {
    steps.push({
      kind: 'chmod',
      path: CONFIG_TOML,
      mode: '0600',
      detail: `${CONFIG_TOML}: root-only again (was ${facts.config.mode} ${facts.config.owner})`,
    });
  }
  const systemIdChanged = writeIfDifferent(
    steps,
    facts.systemId,
    `${desired.systemId}\n`,
    '0600',
    true,
    `${SYSTEM_ID_FILE}: ${desired.planned ? "the new runner's system id" : desired.systemId}, the runner manager's identity in GitLab`,
  );
  if (!systemIdChanged && (facts.systemId.mode !== '600' || facts.systemId.owner !== 'root')) {
    steps.push({
      kind: 'chmod',
      path: SYSTEM_ID_FILE,
      mode: '0600',
      detail: `${SYSTEM_ID_FILE}: root-only again`,
    });
  }
  return { dropInChanged, configChanged, systemIdChanged };
}

/** What the package steps decided, for the service steps. */
interface PackagePlanned {
  installing: boolean;
  upgrading: boolean;
  pin?: PackagePin;
}

/** The package's install (pinned or not) and the docker group its user needs. */
function planPackage(
  input: HostRunnerPlanInput,
  install: InstallFacts,
  repoPlanned: RepositoryPlanned,
  plan: HostRunnerPlan,
): PackagePlanned {
  const { facts } = input;
  const { steps, notes } = plan;
  const { suite } = repoPlanned;
  const installing = !facts.package.installed;
  // Installed after config.toml and .runner_system_id are in place: the package starts the service, which then
  // starts with them (and does not make up a system_id of its own), so a first install needs no restart.
  const pin = input.version === undefined ? undefined : packagePin(input.version);
  if (installing) {
    steps.push(
      pin
        ? {
            kind: 'install-package',
            pin,
            detail: `apt-get update && apt-get install ${pin.packages.join(' ')} from ${suite}, held (apt-mark hold)`,
          }
        : { kind: 'install-package', detail: `apt-get update && apt-get install ${PACKAGE} from ${suite}` },
    );
  }
  const upgrading = !installing && pin !== undefined && facts.package.version !== pin.version;
  if (!installing && (repoPlanned.sourcesChanged || repoPlanned.keyNeeded) && !upgrading)
    notes.push(
      `${PACKAGE} ${facts.package.version ?? ''} stays as installed; the repository change applies to its next upgrade`.replace(
        '  ',
        ' ',
      ),
    );
  // The package creates the user; jobs start as fresh logins of it, so the group applies without a restart.
  if (installing || !install.dockerGroup || !install.user.groups.includes('docker')) {
    // The snap's dockerd gives its socket to the docker group when it starts (dockerd --group docker), and to root
    // when there is none: a group made now reaches the socket only through a restart, which stops its containers.
    const restartSnapDockerd = !install.dockerGroup && input.dockerFlavour === 'snap';
    steps.push({
      kind: 'docker-group',
      createGroup: !install.dockerGroup,
      restartSnapDockerd,
      detail: install.dockerGroup
        ? `add ${RUNNER_USER} to the docker group (shell jobs use the host's Docker)`
        : restartSnapDockerd
          ? `create the docker group, add ${RUNNER_USER} to it, and restart the snap's dockerd (snap restart docker: it takes its socket's group only when it starts; running containers restart)`
          : `create the docker group and add ${RUNNER_USER} to it`,
    });
  }
  return { installing, upgrading, pin };
}

/** The step that makes the running service take the new files: upgrade, restart, reload or start; or none. */
function serviceStep(
  input: HostRunnerPlanInput,
  files: FilesPlanned,
  pkg: PackagePlanned,
): HostRunnerStep | undefined {
  const { facts, desired } = input;
  const { configChanged, systemIdChanged } = files;
  const { pin } = pkg;
  // gitlab-runner re-reads config.toml (and .runner_system_id with it) on a SIGHUP, and on its own within 3 s of the
  // file changing; running jobs keep going. Only the metrics and session servers are set up once: a restart for those.
  const running = facts.service.active === 'active';
  const changed = [configChanged && 'config.toml', systemIdChanged && '.runner_system_id']
    .filter(Boolean)
    .join(' and ');
  const restartOnly =
    (facts.config.restartOnly ?? []).join('\n') !== restartOnlyConfig(desired.configToml).join('\n');
  if (pkg.installing) {
    // the package's postinst enables and starts it
    return undefined;
  } else if (pkg.upgrading) {
    // Stops and starts the service itself: the new binary reads the new config.toml when it starts.
    return {
      kind: 'upgrade-package',
      pin: pin!,
      from: facts.package.version ?? 'unknown',
      detail:
        `${isOlder(pin!.version, facts.package.version) ? 'downgrade' : 'upgrade'} ${PACKAGE} ${facts.package.version ?? '?'} → ${pin!.version} (runners.version), one node at a time: ` +
        `systemctl stop ${SERVICE} (SIGQUIT: it takes no new jobs and waits up to ${STOP_TIMEOUT_SECONDS}s for the running ones), ` +
        `apt-get install ${pin!.packages.join(' ')}, apt-mark hold, systemctl start`,
    };
  } else if (running && configChanged && restartOnly) {
    return {
      kind: 'service',
      action: 'restart',
      detail: `systemctl restart ${SERVICE} (listen_address or [session_server] changed, which gitlab-runner reads only when it starts; running jobs finish first: SIGQUIT)`,
    };
  } else if (running && (configChanged || systemIdChanged)) {
    return {
      kind: 'service',
      action: 'reload',
      detail: `reload ${SERVICE}: SIGHUP, it re-reads ${changed} itself (running jobs keep going)`,
    };
  } else if (!running) {
    return {
      kind: 'service',
      action: 'start',
      detail: `systemctl start ${SERVICE} (it was ${facts.service.active || 'not running'})`,
    };
  }
  return undefined;
}

/** After the files and the package: the unit reloaded, the service brought to the new files, held, enabled. */
function planService(
  input: HostRunnerPlanInput,
  files: FilesPlanned,
  pkg: PackagePlanned,
  plan: HostRunnerPlan,
) {
  const { facts } = input;
  const { steps, notes } = plan;
  const { installing, upgrading, pin } = pkg;
  if (files.dropInChanged && !installing)
    steps.push({
      kind: 'daemon-reload',
      detail: `systemctl daemon-reload (${DROP_IN_FILE} changed; the running runner is not touched)`,
    });
  const step = serviceStep(input, files, pkg);
  if (step) steps.push(step);
  if (pin && !installing && !upgrading) {
    const names = pin.packages.map((p) => p.split('=')[0]);
    const unheld = names.filter((n) => !(facts.package.held ?? []).includes(n));
    if (unheld.length > 0)
      steps.push({
        kind: 'hold-package',
        pin,
        detail: `apt-mark hold ${unheld.join(' ')} (runners.version ${input.version}: no unattended upgrade moves it)`,
      });
  }
  if (!pin && (facts.package.held ?? []).includes(PACKAGE))
    notes.push(
      `${PACKAGE} is held (apt-mark showhold); without runners.version runner-fleet leaves the hold as it is`,
    );
  // The package enables its unit when it installs it; afterwards only someone's `disable` turns it off.
  if (!installing && facts.service.enabled !== 'enabled') {
    steps.push({
      kind: 'service',
      action: 'enable',
      detail: `systemctl enable ${SERVICE} (it was ${facts.service.enabled || 'not enabled'})`,
    });
  }
}

/** The steps that make the node run exactly the desired host runner, in order; none when it already does. */
export function planHostRunner(input: HostRunnerPlanInput): HostRunnerPlan {
  const { install, codename } = checkFacts(input.facts, input.repository);
  const plan: HostRunnerPlan = { steps: [], notes: [], warnings: [] };
  const repoPlanned = planRepository(input, install, codename, plan);
  const files = planRunnerFiles(input, !input.facts.package.installed, plan);
  const pkg = planPackage(input, install, repoPlanned, plan);
  planService(input, files, pkg, plan);
  return plan;
}

/**
 * Removing a host runner, after its runner was deleted in GitLab: stop and disable the service, remove what
 * runner-fleet wrote in RUNNER_DIR. The package and the repository stay; a node without runner-fleet's record
 * has nothing of ours to remove.
 */
export function planHostRunnerRemoval(facts: HostRunnerFacts): HostRunnerPlan {
  const steps: HostRunnerStep[] = [];
  const notes: string[] = [];
  const warnings: string[] = [];
  if (!facts.record.bytes) {
    if (facts.config.sha256 !== 'absent' || facts.service.active === 'active') {
      warnings.push(
        `${CONFIG_TOML} or a running ${SERVICE} service is here without runner-fleet's record: left alone (runner-fleet did not make that runner)`,
      );
    }
    return { steps, notes, warnings };
  }
  if (facts.package.installed && facts.service.active === 'active')
    steps.push({ kind: 'service', action: 'stop', detail: `systemctl stop ${SERVICE}` });
  if (facts.package.installed && facts.service.enabled === 'enabled')
    steps.push({ kind: 'service', action: 'disable', detail: `systemctl disable ${SERVICE}` });
  const present = [
    ...(facts.config.sha256 !== 'absent' ? [CONFIG_TOML] : []),
    ...(facts.systemId.bytes ? [SYSTEM_ID_FILE] : []),
    ...(facts.record.bytes ? [RECORD_FILE] : []),
  ];
  if (present.length > 0) {
    steps.push({
      kind: 'remove-files',
      // Backups too: they hold the deleted runner's token.
      paths: [...present, ...present.map((p) => `${p}.runner-fleet.bak`)],
      detail: `remove ${present.join(', ')} (and their runner-fleet backups)`,
    });
  }
  if (facts.package.installed)
    notes.push(
      `the ${PACKAGE} package stays installed (apt-get purge ${PACKAGE} removes it and ${RUNNER_DIR})`,
    );
  return { steps, notes, warnings };
}
