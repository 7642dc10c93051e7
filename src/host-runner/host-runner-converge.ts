// One node's host runner: register (record on the node), plan, apply in one round trip, verify; or unregister and remove it.
import { atomicWriteScript } from '../docker/docker-converge.js';
import { DOCKER_FLAVOURS } from '../docker/flavours.js';
import { chooseFlavour } from '../docker/docker-plan.js';
import { FILE_FN, sha256, shQuote, splitGatherOutput, type HostFacts } from '../docker/facts.js';
import type { RunContext } from '../context.js';
import type { NodeSpec } from '../inventory/types.js';
import type { Logger } from '../log.js';
import type { Change } from '../report.js';
import { renderConfigToml } from '../runners/config-toml.js';
import {
  reconcileRunners,
  type ReconcileResult,
  type RunnerChange,
  type RunnerIssue,
} from '../runners/reconcile.js';
import type { RunnerRecord } from '../runners/records.js';
import { readStepsRun, stepsScript, tail } from '../remote/steps.js';
import { redact } from '../secrets.js';
import {
  parseReach,
  probeTargets,
  reachGatherScript,
  type ProbeResult,
  type ProbeTarget,
} from '../status/probe.js';
import type { NodeConnection } from '../ssh.js';
import {
  CONFIG_TOML,
  PACKAGE,
  RUNNER_DIR,
  RUNNER_USER,
  SERVICE,
  SERVICE_STARTED,
  hostRunnerGatherScript,
  parseHostRunnerFacts,
  startedMs,
  type HostRunnerFacts,
} from './facts.js';
import {
  checkNodeKeyring,
  needsRepositoryKey,
  planHostRunner,
  planHostRunnerRemoval,
  type HostRunnerPlan,
  type HostRunnerStep,
  type PackagePin,
} from './host-runner-plan.js';
import { HostRecordStore } from './host-runner-records.js';

export interface HostRunnerOutcome {
  /** what happened in GitLab, for the run's gitlab section */
  gitlab: { changes: RunnerChange[]; errors: RunnerIssue[]; warnings: RunnerIssue[] };
  /** runner-fleet's record is (or, in a dry run, would still be) on the node: it has a host runner to remove some day */
  present: boolean;
  /** why the node's host runner is not as wanted; its changes so far are reported all the same */
  error?: string;
  /** the node's live record once its runner is up (apply), for the wait for its first contact */
  runner?: RunnerRecord;
  /** when the runner's process started, on the node's clock (ms), as read after this run's steps */
  startedMs?: number;
  /** the contact probe from the node, as root, after this run's steps (or the gather's pass, without steps) */
  reach?: ProbeResult;
}

export class HostRunnerVerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostRunnerVerifyError';
  }
}

const messageOf = (err: unknown) => redact(err instanceof Error ? err.message : String(err));

const STEP_NAMES: Record<HostRunnerStep['kind'], string> = {
  'write-file': 'runner-file',
  chmod: 'runner-file',
  'install-package': 'runner-package',
  'upgrade-package': 'runner-upgrade',
  'hold-package': 'runner-package',
  'docker-group': 'runner-group',
  service: 'runner-service',
  'daemon-reload': 'runner-service',
  'remove-files': 'runner-remove',
};

const toChange = (s: HostRunnerStep): Change => ({ step: STEP_NAMES[s.kind], detail: s.detail });

const pinNames = (pin: PackagePin) => pin.packages.map((p) => shQuote(p.split('=')[0])).join(' ');
const holdScript = (pin: PackagePin) => `apt-mark hold ${pinNames(pin)} >/dev/null`;

/**
 * Upgrades take the lock one at a time: while one node's runner drains its jobs and restarts, the other nodes'
 * runners keep taking jobs (the host counterpart of the DaemonSet's maxUnavailable: 1).
 */
let upgradeQueue: Promise<unknown> = Promise.resolve();
export function oneUpgradeAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const run = upgradeQueue.then(fn, fn);
  upgradeQueue = run.catch(() => undefined);
  return run;
}

/** Shell for one step (run as root, under `set -e`). */
export function hostRunnerStepScript(step: HostRunnerStep): string {
  switch (step.kind) {
    case 'write-file':
      // gitlab-runner's own folder is root-only; its files hold the runner token.
      return `${step.secret ? `install -d -m 0700 ${shQuote(RUNNER_DIR)}\n` : ''}${atomicWriteScript(step.path, step.content, step.expectSha256, step.mode)}`;
    case 'chmod':
      return `chown root:root ${shQuote(step.path)}\nchmod ${step.mode} ${shQuote(step.path)}`;
    case 'install-package':
      // confold: never stop at a conffile question with nobody to answer it.
      return `export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${step.pin ? step.pin.packages.map(shQuote).join(' ') : PACKAGE} >/dev/null${step.pin ? `\n${holdScript(step.pin)}` : ''}`;
    case 'upgrade-package':
      // The stop is the drop-in's graceful one (KillSignal=SIGQUIT, TimeoutStopSec): systemctl waits for the jobs.
      return `export DEBIAN_FRONTEND=noninteractive
apt-mark unhold ${pinNames(step.pin)} >/dev/null 2>&1 || :
systemctl stop ${SERVICE}
apt-get update -q >/dev/null
apt-get install -y -q --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${step.pin.packages.map(shQuote).join(' ')} >/dev/null
${holdScript(step.pin)}
systemctl start ${SERVICE}`;
    case 'hold-package':
      return holdScript(step.pin);
    case 'docker-group':
      return `${step.createGroup ? 'groupadd --system docker\n' : ''}usermod -aG docker ${RUNNER_USER}${step.restartSnapDockerd ? `\n${DOCKER_FLAVOURS.snap.script.restart}` : ''}`;
    case 'service':
      // The unit has no ExecReload: the SIGHUP goes to its main process, gitlab-runner itself (commands/multi.go).
      return step.action === 'reload'
        ? `systemctl kill -s HUP --kill-whom=main ${SERVICE}`
        : `systemctl ${step.action} ${SERVICE}`;
    case 'daemon-reload':
      return 'systemctl daemon-reload';
    case 'remove-files':
      return `rm -f ${step.paths.map(shQuote).join(' ')}`;
  }
}

const VERIFY = `echo "@@verify"
echo "active=$(systemctl is-active ${SERVICE} 2>/dev/null)"
${SERVICE_STARTED}
echo "groups=$(id -nG ${RUNNER_USER} 2>/dev/null)"
echo "config=$(if [ -f ${CONFIG_TOML} ]; then sha256sum ${CONFIG_TOML} | cut -d' ' -f1; else echo absent; fi)"
echo "mode=$(stat -c '%a %U' ${CONFIG_TOML} 2>/dev/null)"
echo "version=$(dpkg-query -W -f='\${Version}' ${PACKAGE} 2>/dev/null)"`;

/**
 * Runs the steps and the read-back in one round trip; a failure names the step and keeps what was done before it.
 * With `targets`, the contact probe runs last, as root, where the runner runs: the way to GitLab after the steps.
 */
async function applySteps(
  conn: NodeConnection,
  steps: HostRunnerStep[],
  record: (c: Change) => void,
  targets?: ProbeTarget[],
): Promise<{ verify: Record<string, string>; reach?: ProbeResult }> {
  const reach = targets ? `\n${reachGatherScript(targets)}` : '';
  // exec, not check: stdout is never put into a message; stderr comes back redacted.
  const r = await conn.exec(
    `set -e\n${stepsScript(steps, hostRunnerStepScript)}\nset +e\n${VERIFY}${reach}`,
    {
      sudo: true,
      step: 'host runner',
    },
  );
  const run = readStepsRun(steps, r);
  run.done.forEach((s) => record(toChange(s)));
  if (r.code !== 0)
    throw new Error(
      `${run.failed?.detail ?? 'host runner'}: failed (exit ${r.code}): ${tail(r.stderr.trim() || 'no output')}`,
    );
  const { sections } = splitGatherOutput(r.stdout.slice(r.stdout.indexOf('@@verify')));
  const verify = Object.fromEntries(
    (sections.get('verify') ?? [])
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()]),
  );
  return { verify, ...(targets ? { reach: parseReach(sections, targets) } : {}) };
}

/** For a node that gets no host phase (gone from the inventory, destroy): the probe alone, one round trip. */
export async function gatherHostRunnerProbe(conn: NodeConnection): Promise<HostRunnerFacts> {
  // The probe does not look at the repository, so its URL does not matter here.
  const r = await conn.exec(`${FILE_FN}\n${hostRunnerGatherScript('probe', '')}\necho "@@end"`, {
    sudo: true,
    step: 'gather host runner',
  });
  const facts = r.stdout.includes('@@end') ? parseHostRunnerFacts(splitGatherOutput(r.stdout)) : undefined;
  if (r.code !== 0 || !facts)
    throw new Error(
      `looking for a host runner failed (exit ${r.code}): ${(r.stderr.trim() || 'no output').split('\n').slice(-2).join(' | ')}`,
    );
  return facts;
}

export function hostRunnerFactsOf(node: Pick<NodeSpec, 'name'>, facts: HostFacts): HostRunnerFacts {
  const hr = parseHostRunnerFacts(facts.gathered);
  if (!hr) throw new Error(`${node.name}: the gather had no host-runner section`);
  return hr;
}

function gitlabOf(r: ReconcileResult | undefined): HostRunnerOutcome['gitlab'] {
  return { changes: r?.changes ?? [], errors: r?.errors ?? [], warnings: r?.warnings ?? [] };
}

/** For `plan`: the runner apply would create, so that its config can be planned before it exists. */
function plannedRecord(node: string): RunnerRecord {
  return {
    node,
    mode: 'access',
    token: 'created-on-apply',
    systemId: 'r_000000000000',
    settings: null,
    createdAt: new Date(0).toISOString(),
  };
}

function sayNotes(plan: HostRunnerPlan, log: Logger, node: string): void {
  for (const w of plan.warnings) log.warn(node, w);
  for (const n of plan.notes) log.progress(node, n);
}

/**
 * A host runner's records live on its node, so the node's address is what its fleet is: another inventory with a
 * node of the same name elsewhere marks its runners with another id, and never takes this one's strays.
 */
export function hostFleetId(node: Pick<NodeSpec, 'host' | 'port'>): string {
  return `h${sha256(`${node.host}:${node.port}`).slice(0, 11)}`;
}

/**
 * Makes `node` run exactly one host runner: its record (created in GitLab if needed) on the node, the package from
 * the pinned repository, config.toml with one [[runners]] block, .runner_system_id, the docker group, the service.
 * Never throws: a failure is the outcome's `error`, after every change that did happen has been reported.
 */
export async function convergeHostRunner(
  conn: NodeConnection,
  node: NodeSpec,
  facts: HostFacts,
  ctx: RunContext,
  record: (c: Change) => void,
): Promise<HostRunnerOutcome> {
  let reconciled: ReconcileResult | undefined;
  let store: HostRecordStore | undefined;
  try {
    const hr = hostRunnerFactsOf(node, facts);
    store = new HostRecordStore(conn, node.name, hr.record.content, { dryRun: ctx.dryRun });
    const inv = ctx.inventory;
    reconciled = await reconcileRunners({ ...inv, nodes: [node] }, store, ctx.gitlab(), {
      dryRun: ctx.dryRun,
      log: ctx.log,
      fleetId: hostFleetId(node),
    });
    if (reconciled.errors.length > 0) {
      return {
        gitlab: gitlabOf(reconciled),
        present: store.present,
        error: `runner registration failed: ${reconciled.errors.map((e) => e.message).join('; ')}`,
      };
    }
    const creating = reconciled.actions.some(
      (a) => (a.kind === 'create' || a.kind === 'join') && a.node === node.name,
    );
    const rec =
      (ctx.dryRun && creating ? plannedRecord(node.name) : undefined) ??
      reconciled.records.find((r) => r.node === node.name && !r.retiredAt);
    if (!rec)
      return {
        gitlab: gitlabOf(reconciled),
        present: store.present,
        error: 'no runner is registered for this node',
      };

    const configToml = renderConfigToml({
      inventory: inv,
      node,
      record: rec,
      executor: 'shell',
      arch: facts.arch,
      placement: 'host',
    });
    const now = Math.floor(Date.now() / 1000);
    const planned = rec.id === undefined && ctx.dryRun;
    const desired = {
      configToml,
      systemId: rec.systemId,
      label: planned ? 'the runner apply creates' : `runner #${rec.id ?? '?'}`,
      planned,
    };
    let dockerFlavour: ReturnType<typeof chooseFlavour> | undefined;
    try {
      dockerFlavour = chooseFlavour(node, facts);
    } catch {
      // two Dockers: the host phase has failed this node already
    }
    const keyring = await checkNodeKeyring(hr, inv.runners.packageRepository, now);
    const input = {
      node: node.name,
      arch: facts.arch,
      facts: hr,
      repository: inv.runners.packageRepository,
      now,
      desired,
      dockerFlavour,
      keyring,
      version: inv.runners.version,
    };
    // Fetched only for a node whose keyring is missing or refused, and never by `plan`.
    const key = !ctx.dryRun && needsRepositoryKey(keyring).needed ? await ctx.repositoryKey() : undefined;
    const plan = planHostRunner({ ...input, key });
    sayNotes(plan, ctx.log, node.name);
    if (ctx.dryRun) {
      plan.steps.forEach((s) => record(toChange(s)));
      return { gitlab: gitlabOf(reconciled), present: true };
    }
    if (plan.steps.length === 0) {
      // The gather ran before this run's Docker steps (a CA copy put back): only its pass is taken as it is.
      const gathered = parseReach(facts.gathered?.sections, probeTargets(inv));
      const reach = gathered?.kind === 'ok' ? gathered : undefined;
      return {
        gitlab: gitlabOf(reconciled),
        present: true,
        runner: rec,
        startedMs: hr.service.startedMs,
        reach,
      };
    }

    const upgrade = plan.steps.find(
      (s): s is Extract<HostRunnerStep, { kind: 'upgrade-package' }> => s.kind === 'upgrade-package',
    );
    if (upgrade)
      ctx.log.progress(node.name, `waiting for its turn to upgrade ${PACKAGE} (one node at a time)`);
    const targets = probeTargets(inv);
    const { verify: v, reach } = upgrade
      ? await oneUpgradeAtATime(() => applySteps(conn, plan.steps, record, targets))
      : await applySteps(conn, plan.steps, record, targets);
    const problems: string[] = [];
    const pinned = plan.steps.find(
      (s) => s.kind === 'upgrade-package' || (s.kind === 'install-package' && s.pin),
    ) as { pin?: PackagePin } | undefined;
    if (pinned?.pin && v.version !== pinned.pin.version)
      problems.push(`${PACKAGE} is ${v.version || 'not installed'}, not ${pinned.pin.version}`);
    if (v.active !== 'active')
      problems.push(`${SERVICE} is ${v.active || 'not running'} (journalctl -u ${SERVICE})`);
    if (!(v.groups ?? '').split(/\s+/).includes('docker'))
      problems.push(`${RUNNER_USER} is not in the docker group`);
    if (v.config !== sha256(configToml)) problems.push(`${CONFIG_TOML} is not the file runner-fleet wrote`);
    if (v.mode !== '600 root') problems.push(`${CONFIG_TOML} is ${v.mode}, not 600 root`);
    if (problems.length > 0) throw new HostRunnerVerifyError(`after applying: ${problems.join('; ')}`);
    return { gitlab: gitlabOf(reconciled), present: true, runner: rec, ...startedMs(v.started), reach };
  } catch (err) {
    return { gitlab: gitlabOf(reconciled), present: store?.present ?? true, error: messageOf(err) };
  }
}

/**
 * Unregisters the node's host runner (deletes it in GitLab through the record on the node), then stops and disables
 * the service and removes config.toml, .runner_system_id and the record. The package stays installed. A node without
 * runner-fleet's record is left alone. Never throws (see convergeHostRunner).
 */
export async function removeHostRunner(
  conn: NodeConnection,
  node: Pick<NodeSpec, 'name'>,
  hr: HostRunnerFacts,
  ctx: RunContext,
  record: (c: Change) => void,
): Promise<HostRunnerOutcome> {
  let reconciled: ReconcileResult | undefined;
  try {
    if (!hr.record.bytes) {
      sayNotes(planHostRunnerRemoval(hr), ctx.log, node.name);
      return { gitlab: gitlabOf(undefined), present: false };
    }
    const store = new HostRecordStore(conn, node.name, hr.record.content, { dryRun: ctx.dryRun });
    // No node wanted: every record in the file is deleted in GitLab, and the file removed once it is empty.
    reconciled = await reconcileRunners({ ...ctx.inventory, nodes: [] }, store, ctx.gitlab(), {
      dryRun: ctx.dryRun,
      log: ctx.log,
    });
    if (reconciled.errors.length > 0) {
      // Files and service stay: the record is what lets the next run try the delete again.
      return {
        gitlab: gitlabOf(reconciled),
        present: true,
        error: `could not unregister the host runner: ${reconciled.errors.map((e) => e.message).join('; ')}`,
      };
    }
    const plan = planHostRunnerRemoval(hr);
    sayNotes(plan, ctx.log, node.name);
    if (ctx.dryRun) {
      plan.steps.forEach((s) => record(toChange(s)));
      return { gitlab: gitlabOf(reconciled), present: false };
    }
    if (plan.steps.length > 0) {
      const { verify: v } = await applySteps(conn, plan.steps, record);
      if (v.active === 'active')
        throw new HostRunnerVerifyError(`${SERVICE} is still running after systemctl stop`);
      if (v.config !== 'absent') throw new HostRunnerVerifyError(`${CONFIG_TOML} is still there`);
    }
    return { gitlab: gitlabOf(reconciled), present: false };
  } catch (err) {
    return { gitlab: gitlabOf(reconciled), present: true, error: messageOf(err) };
  }
}
