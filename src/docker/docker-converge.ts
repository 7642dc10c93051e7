// Converges one node's Docker: gather facts, plan, run only the planned steps, verify with `docker info`.
import { withNodeLock } from '../lock/node-lock.js';
import { RemoteCommandError } from '../errors.js';
import type { NodeSpec, PrivateCa } from '../inventory/types.js';
import type { Change } from '../report.js';
import type { NodeConnection } from '../ssh.js';
import {
  DOCKER_INFO,
  gatherScript,
  parseDockerInfo,
  parseFacts,
  registryIsInsecure,
  shQuote,
  type HostFacts,
} from './facts.js';
import { DOCKER_FLAVOURS, type DockerAction } from './flavours.js';
import {
  FORWARDING_ON_NOW,
  forwardingGatherScript,
  parseForwardingFacts,
  podRulesScript,
  type PodNetwork,
} from './forwarding.js';
import type { DockerFlavour } from '../inventory/types.js';
import { caGatherLines } from './ca.js';
import { printAtEnd } from './gather.js';
import {
  NO_DOCKER_SETTINGS,
  insecureRegistries,
  planHost,
  type HostPlan,
  type HostStep,
} from './docker-plan.js';
import { doneSteps, failedStep, stepBlock, tail } from '../remote/steps.js';
import type { DockerSettings, SnapSettings } from '../inventory/types.js';
import { logScalars } from './daemon-json.js';
import { PreflightError, type PreflightProblem } from './preflight.js';
import { PRUNE_UNIT, parsePruneFacts, pruneGatherScript, pruneStepScript } from './prune.js';
import { parseSnapFacts, snapHoldsGatherScript, snapHoldStepScript } from './snap-holds.js';
import { parseNodeClock } from '../status/clocks.js';

export interface HostResult {
  facts: HostFacts;
  plan: HostPlan;
  changes: Change[];
}

export class HostVerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostVerifyError';
  }
}

/**
 * `extra`: more gather sections from other concerns (see gatherScript), so they share this round trip. The
 * forwarding facts (src/docker/forwarding.ts) and the CA files runner-fleet may have written (src/docker/ca.ts) always
 * join it.
 */
export async function gatherFacts(
  conn: NodeConnection,
  registries: string[],
  extra = '',
): Promise<HostFacts> {
  const ours = [
    forwardingGatherScript,
    pruneGatherScript,
    snapHoldsGatherScript,
    caGatherLines(registries),
  ].join('\n');
  const r = await conn.exec(printAtEnd(gatherScript(registries, `${ours}\n${extra}`)), {
    sudo: true,
    step: 'gather facts',
  });
  // Only stderr goes into the error: stdout may carry a section's file in base64 (a runner record's token).
  if (r.code !== 0) throw new RemoteCommandError(conn.node.name, 'gather facts', r.code, r.stderr);
  const facts = parseFacts(r.stdout);
  return {
    ...facts,
    forwarding: parseForwardingFacts(facts.gathered!),
    prune: parsePruneFacts(facts.gathered!),
    snaps: parseSnapFacts(facts.gathered!),
    gatheredAt: Date.now(),
    nodeClockMs: parseNodeClock(facts.gathered),
  };
}

/**
 * Shell that replaces `path` atomically (temp file + mv in the same folder) with `content`, keeping the previous file
 * as `<path>.runner-fleet.bak`, and refuses (exit 17) if the file is no longer the one the plan saw (`expectSha256`).
 * The temp file is made by mktemp (0600) and gets `mode` before it is moved, so a secret is never readable by others.
 * `backup: false` for files only runner-fleet reads (its own records), where an old copy is only an old token.
 * `preserve` (a file the user owns, daemon.json): an existing file keeps its mode and owner (a 0600 daemon.json with
 * proxy credentials stays 0600), and a symlink is written through to its target (`readlink -f` on the node), so the
 * link stays a link to the file the user manages instead of being replaced by a plain copy.
 * `remember`: shell variable prefix set to the written path (`<p>_path`) and whether a previous file existed
 * (`<p>_had`), for the rollback after a failed reload.
 */
export function atomicWriteScript(
  path: string,
  content: string | Buffer,
  expectSha256: string,
  mode: string,
  opts: { backup?: boolean; preserve?: boolean; remember?: string } = {},
): string {
  const f = shQuote(path);
  const b64 = (typeof content === 'string' ? Buffer.from(content, 'utf8') : content).toString('base64');
  const follow = opts.preserve
    ? `if [ -L "$f" ]; then t=$(readlink -f -- "$f") || { echo "$f is a symlink runner-fleet cannot resolve; not writing it" >&2; exit 19; }; f=$t; fi\n`
    : '';
  const keep = opts.preserve
    ? `if [ -e "$f" ]; then chmod --reference="$f" "$tmp" && chown --reference="$f" "$tmp"; fi\n`
    : '';
  const remember = opts.remember
    ? `${opts.remember}_path=$f; if [ -e "$f" ]; then ${opts.remember}_had=1; else ${opts.remember}_had=0; fi\n`
    : '';
  return `f=${f}
${follow}d=$(dirname "$f"); mkdir -p "$d"
if [ -e "$f" ] && [ ! -f "$f" ]; then echo "$f is $(stat -L -c %F "$f" 2>/dev/null || echo 'not a regular file'), not a file; not replacing it: remove it or move it aside, then run again" >&2; exit 20; fi
if [ -e "$f" ]; then cur=$(sha256sum "$f" | cut -d' ' -f1); else cur=absent; fi
if [ "$cur" != ${shQuote(expectSha256)} ]; then echo "$f changed while runner-fleet was working; not overwriting it, run again" >&2; exit 17; fi
tmp=$(mktemp "$d/.$(basename "$f").runner-fleet.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo ${shQuote(b64)} | base64 -d > "$tmp"
chmod ${mode} "$tmp"
${keep}${remember}${opts.backup === false ? '' : 'if [ -e "$f" ]; then cp -p "$f" "$f.runner-fleet.bak"; fi\n'}mv -f "$tmp" "$f"
trap - EXIT`;
}

/**
 * Shell that removes a file runner-fleet wrote, only if it is still what the plan saw (exit 17 otherwise), with its
 * backup; then its folder if that leaves it empty (unless `keepDir`).
 */
export function removeFileScript(path: string, expectSha256: string, keepDir = false): string {
  return `f=${shQuote(path)}
if [ -e "$f" ]; then
  cur=$(sha256sum "$f" | cut -d' ' -f1)
  if [ "$cur" != ${shQuote(expectSha256)} ]; then echo "$f changed while runner-fleet was working; not removing it, run again" >&2; exit 17; fi
  rm -f "$f" "$f.runner-fleet.bak"
fi${keepDir ? '' : `\nrmdir "$(dirname "$f")" 2>/dev/null || :`}`;
}

/** Shell for one step. Every write is atomic (temp file + mv in the same folder) and keeps a backup. */
export function stepScript(step: HostStep): string {
  switch (step.kind) {
    case 'install-docker':
      return DOCKER_FLAVOURS[step.flavour].installScript;
    case 'write-file':
      return atomicWriteScript(step.path, step.content, step.expectSha256, step.mode, {
        preserve: step.preserve,
        remember: step.name === 'daemon.json' ? 'rf_dj' : undefined,
      });
    case 'reload-docker':
      return DOCKER_FLAVOURS[step.flavour].script[step.action];
    case 'remove-file':
      return removeFileScript(step.path, step.expectSha256);
    case 'enable-forwarding':
      // runner-fleet's own file: no backup (destroy removes it whole).
      return [
        ...(step.expectSha256 !== undefined
          ? [atomicWriteScript(step.path, step.content, step.expectSha256, '0644', { backup: false })]
          : []),
        ...(step.live ? [FORWARDING_ON_NOW] : []),
      ].join('\n');
    case 'pod-traffic-rules':
      return podRulesScript(step);
    case 'prune-timer':
    case 'remove-prune-timer':
      return pruneStepScript(step, ownFileWrite);
    case 'snap-hold':
    case 'snap-unhold':
      return snapHoldStepScript(step, ownFileWrite);
  }
}

/** runner-fleet's own files (unit files, the holds record; no secrets): no backup, destroy removes them whole. */
function ownFileWrite(path: string, content: string, expectSha256: string): string {
  return atomicWriteScript(path, content, expectSha256, '0644', { backup: false });
}

/**
 * Waits until dockerd answers and lists every registry (at most `tries` × ~0.5 s), then prints its registry
 * config; `$ok` is 1 when it did.
 */
export function verifyScript(
  registries: string[],
  tries: number | string = 60,
  expect: string[] = [],
): string {
  const checks = [...registries.map((r) => `"${r}":{`), ...expect]
    .map((text) => `case "$out" in *${shQuote(text)}*) ;; *) ok=0 ;; esac`)
    .join('\n  ');
  return `i=0
while :; do
  ok=1; out=$(timeout 10 ${DOCKER_INFO} 2>&1) || ok=0
  ${checks || ':'}
  [ $ok = 1 ] && break
  i=$((i+1)); [ $i -ge ${tries} ] && break
  sleep 0.5
done`;
}

/**
 * After a change dockerd reads only when it starts (the log settings), one throwaway container: a log driver checks
 * its options only when a container starts (moby container.startLogging, before the runtime runs anything), so
 * dockerd can look healthy while every CI job would fail to start. The image is an empty one imported on the node
 * (no registry, no pull: works on an air-gapped Pi whatever runners.pullPolicy says) and removed again; its command
 * does not exist, so the runtime's "no such file" after the log driver started is the pass. Only the log driver's
 * own failure fails the check (and puts the previous daemon.json back).
 */
export const LOG_CHECK_IMAGE = 'runner-fleet-log-check:1';
export const LOG_CHECK_SCRIPT = `img=${LOG_CHECK_IMAGE}
timeout 30 docker image inspect "$img" >/dev/null 2>&1 || tar -cf - -T /dev/null | timeout 30 docker import - "$img" >/dev/null 2>&1
lc=$(timeout 60 docker run --rm --pull never --network none "$img" /runner-fleet-log-check 2>&1)
timeout 30 docker image rm "$img" >/dev/null 2>&1
case "$lc" in *"failed to initialize logging driver"*) ok=0; echo "@@logcheck failed"; printf '%s\n' "$lc" | tail -c 400 >&2 ;; esac`;

/** Exit code of the apply script when dockerd did not take the new daemon.json and the previous one was put back. */
export const ROLLED_BACK = 18;

/**
 * Shell that puts the previous daemon.json back (the `.runner-fleet.bak` the write just made, or no file if there
 * was none) and brings dockerd back with it: apt reloads a running dockerd (SIGHUP: jobs keep running) or starts a
 * stopped one, for every flavour (DOCKER_FLAVOURS[f].bringBack). Prints `@@rollback ok` once dockerd answers again.
 */
function rollbackScript(flavour: DockerFlavour, action: DockerAction): string {
  // What only a start reads (the log settings) goes back only with a restart.
  const bringBack =
    action === 'restart' ? DOCKER_FLAVOURS[flavour].bringBackRestart : DOCKER_FLAVOURS[flavour].bringBack;
  return `echo "@@rollback"
if [ "$rf_dj_had" = 1 ]; then
  r=$(mktemp "$(dirname "$rf_dj_path")/.$(basename "$rf_dj_path").runner-fleet.XXXXXX") && cp -p "$rf_dj_path.runner-fleet.bak" "$r" && mv -f "$r" "$rf_dj_path"
else
  rm -f "$rf_dj_path"
fi
${bringBack} || echo "bringing Docker back failed" >&2
j=0; up=0
while [ $j -lt 60 ]; do
  if timeout 10 docker info >/dev/null 2>&1; then up=1; break; fi
  j=$((j+1)); sleep 0.5
done
if [ $up = 1 ]; then echo "@@rollback ok"; else echo "@@rollback dockerd-down"; fi
exit ${ROLLED_BACK}`;
}

/**
 * The apply round trip: the steps in order (stop at the first that fails), then verify that dockerd runs and lists
 * every registry. If it does not after a daemon.json write, the previous file goes back and Docker with it (exit
 * ROLLED_BACK). A reload that fails is not the end of the script: the verify and the rollback still run.
 * `afterVerify` runs only once the verify passed. dockerd handles a SIGHUP within a second, so a reload is given
 * 10 s to show the registries; a start or restart 30 s.
 */
export function applyScript(
  steps: HostStep[],
  registries: string[],
  afterVerify: HostStep[] = [],
  opts: { verifyTries?: number; expect?: string[]; containerCheck?: boolean } = {},
): string {
  // A failed reload does not stop the script: the verify, and the rollback, still run.
  const body = steps
    .map((s, i) =>
      stepBlock(
        i,
        stepScript(s),
        s.kind === 'reload-docker' ? { tolerate: { detail: s.detail, flag: 'rf_reload_failed' } } : {},
      ),
    )
    .join('\n');
  const reload = steps.find(
    (s): s is Extract<HostStep, { kind: 'reload-docker' }> => s.kind === 'reload-docker',
  );
  const rollback = reload
    ? `if [ $ok != 1 ] && [ -n "$rf_dj_path" ]; then\n${rollbackScript(reload.flavour, reload.action)}\nfi\n`
    : '';
  const check = opts.containerCheck ? `if [ $ok = 1 ]; then\n${LOG_CHECK_SCRIPT}\nfi\n` : '';
  const after = afterVerify.map((s) => stepScript(s)).join('\n');
  return `set -e
rf_dj_path=; rf_dj_had=0; rf_reload_failed=0
${body}
set +e
tries=${opts.verifyTries ?? (reload?.action === 'reload' ? 20 : 60)}; [ "$rf_reload_failed" = 1 ] && tries=4
${verifyScript(registries, '$tries', opts.expect)}
${check}${rollback}${after ? `if [ $ok = 1 ]; then\nset -e\n${after}\nset +e\nfi\n` : ''}echo "@@docker"; echo "$out"`;
}

/** Runs the steps (and the verify) in one round trip; reports which step failed if one does. */
async function runSteps(
  conn: NodeConnection,
  steps: HostStep[],
  registries: string[],
  afterVerify: HostStep[] = [],
  expect: string[] = [],
  containerCheck = false,
): Promise<string> {
  // Under the node's lock: a second run waits for this edit (or fails, naming the lock) instead of interleaving.
  const r = await conn.exec(
    withNodeLock(applyScript(steps, registries, afterVerify, { expect, containerCheck })),
    {
      sudo: true,
      step: 'apply',
    },
  );
  const done = doneSteps(r.stdout);
  if (r.code === ROLLED_BACK && r.stdout.includes('@@rollback')) {
    const back = /@@rollback ok/.test(r.stdout);
    const reload = steps.find((s) => s.kind === 'reload-docker');
    const file = steps.find((s) => s.kind === 'write-file' && s.name === 'daemon.json') as
      Extract<HostStep, { kind: 'write-file' }> | undefined;
    const logCheck = r.stdout.includes('@@logcheck failed');
    const unit = DOCKER_FLAVOURS[reload?.flavour ?? 'apt'].unit;
    const path = file?.path ?? 'daemon.json';
    const stderr = r.stderr.trim().split('\n');
    const why = logCheck
      ? `with the new ${path} dockerd runs, but no container can start: a throwaway container failed (${tail(stderr.find((l) => l.includes('logging driver')) ?? r.stderr.trim())}); check docker.logs and the log-opts in ${path}`
      : `dockerd did not take the new ${path} (it must run and list ${registries.join(', ')} after ${reload ? reload.detail.split(' (')[0] : 'the change'}; check its log: journalctl -u ${unit})`;
    const err = new HostVerifyError(
      `${why}; restored the previous file from .runner-fleet.bak and ${back ? 'brought Docker back: it runs with the previous configuration' : 'tried to bring Docker back, but DOCKERD IS NOT RUNNING'}` +
        `${!logCheck && r.stderr.trim() ? `: ${stderr.slice(-2).join(' | ')}` : ''}`,
    );
    (err as HostVerifyError & { rolledBack: boolean }).rolledBack = true;
    throw err;
  }
  if (r.code !== 0) {
    const which = failedStep(steps, r.stdout)?.detail ?? 'apply';
    const err = new Error(`${which}: failed (exit ${r.code}): ${tail(r.stderr.trim() || r.stdout)}`);
    (err as Error & { completed: number[] }).completed = [...done];
    throw err;
  }
  return r.stdout.slice(r.stdout.indexOf('@@docker') + '@@docker'.length);
}

/**
 * What DOCKER_INFO prints once dockerd runs with the docker.* settings: each mirror as it normalises it (a trailing
 * slash) and the log driver before the registry JSON. Missing after the reload or restart: the previous daemon.json
 * goes back, as for a registry.
 */
export function loadedMarkers(settings: DockerSettings): string[] {
  const driver = logScalars(settings.logs)['log-driver'];
  return [
    ...settings.registryMirrors.map((m) => `"${m.replace(/\/+$/, '')}/"`),
    ...(driver ? [` ${driver} {`] : []),
  ];
}

function checkInsecure(
  dockerInfo: string,
  registries: string[],
  settings: DockerSettings = NO_DOCKER_SETTINGS,
): void {
  const parsed = parseDockerInfo(dockerInfo);
  if ('error' in parsed) throw new HostVerifyError(`docker info failed after applying: ${parsed.error}`);
  const missing = registries.filter((r) => !registryIsInsecure(parsed, r));
  if (missing.length > 0) {
    throw new HostVerifyError(
      `dockerd does not treat ${missing.join(', ')} as insecure after the reload (check its log: a daemon.json conflict makes reloads fail while the daemon keeps running)`,
    );
  }
  const norm = (u: string) => u.replace(/\/+$/, '');
  const mirrors = settings.registryMirrors.filter(
    (m) => !(parsed.mirrors ?? []).some((l) => norm(l) === norm(m)),
  );
  if (mirrors.length > 0)
    throw new HostVerifyError(
      `dockerd did not load the registry mirror${mirrors.length > 1 ? 's' : ''} ${mirrors.join(', ')} (check its log)`,
    );
  const driver = logScalars(settings.logs)['log-driver'];
  if (driver !== undefined && parsed.loggingDriver !== undefined && parsed.loggingDriver !== driver) {
    throw new HostVerifyError(
      `dockerd runs with log driver ${parsed.loggingDriver}, not ${driver}, after the restart (check its log)`,
    );
  }
}

const toChange = (s: HostStep): Change => ({ step: s.kind, detail: s.detail });

/**
 * Converges Docker on one node. With `dryRun`, only gathers and plans. `onChange` hears each change as it
 * lands, so a failure later still reports what was done.
 */
export async function convergeHost(
  conn: NodeConnection,
  node: NodeSpec,
  registries: string[],
  opts: {
    dryRun: boolean;
    onChange?: (c: Change) => void;
    gatherExtra?: string;
    docker?: DockerSettings;
    /** snap.holdRefresh (src/docker/snap-holds.ts) */
    snap?: SnapSettings;
    /** where the runners run and the pod CIDR: decides the forwarding steps (src/docker/forwarding.ts) */
    pods?: PodNetwork;
    /** the node's pre-flight problems from the first gather: any refuses the node before a step is planned */
    preflight?: (facts: HostFacts) => Promise<PreflightProblem[]>;
    /** gitlab.caFile: the registries serve HTTPS with it; none goes into insecure-registries */
    ca?: PrivateCa;
  },
): Promise<HostResult> {
  const settings = opts.docker ?? NO_DOCKER_SETTINGS;
  // What dockerd must list as insecure once the steps ran: verified after every apply.
  const insecure = insecureRegistries(registries, opts.ca);
  const changes: Change[] = [];
  const record = (c: Change) => {
    changes.push(c);
    opts.onChange?.(c);
  };
  let facts = await gatherFacts(conn, registries, opts.gatherExtra);
  const problems = (await opts.preflight?.(facts)) ?? [];
  if (problems.length > 0) throw new PreflightError(node.name, problems);
  let plan = planHost(node, registries, facts, settings, opts.pods, opts.snap, opts.ca);

  if (opts.dryRun) {
    plan.steps.forEach((s) => record(toChange(s)));
    if (plan.regather)
      record({
        step: 'write-file',
        detail: `${
          opts.ca
            ? `then give dockerd the private CA for ${registries.join(', ')} (certs.d)`
            : `then add ${registries.join(', ')} to insecure-registries in ${plan.daemonJsonPath} and reload Docker`
        }${settings.prune ? `, and install the docker.prune timer (${PRUNE_UNIT}.timer)` : ''}`,
      });
    return { facts, plan, changes };
  }

  if (plan.regather) {
    await runStepsRecording(conn, plan.steps, [], record);
    facts = await gatherFacts(conn, registries, opts.gatherExtra);
    plan = planHost(node, registries, facts, settings, opts.pods, opts.snap, opts.ca);
  }

  if (plan.steps.length === 0) {
    // Nothing to change: the gathered `docker info` is the verification, no further round trip.
    if (plan.notYetInsecure.length > 0 || !facts.docker) {
      throw new HostVerifyError(
        facts.dockerInfoError
          ? `docker info failed: ${facts.dockerInfoError}`
          : `dockerd does not treat ${plan.notYetInsecure.join(', ')} as insecure`,
      );
    }
    return { facts, plan, changes };
  }
  // A dockerd (re)started with log settings runner-fleet sets: prove that a container can start with them.
  const containerCheck =
    settings.logs !== undefined &&
    plan.steps.some((s) => s.kind === 'reload-docker' && s.action !== 'reload');
  const info = await runStepsRecording(
    conn,
    plan.steps,
    insecure,
    record,
    plan.afterVerify,
    loadedMarkers(settings),
    containerCheck,
  );
  checkInsecure(info, insecure, settings);
  return { facts, plan, changes };
}

async function runStepsRecording(
  conn: NodeConnection,
  steps: HostStep[],
  registries: string[],
  record: (c: Change) => void,
  afterVerify: HostStep[] = [],
  expect: string[] = [],
  containerCheck = false,
): Promise<string> {
  try {
    const info = await runSteps(conn, steps, registries, afterVerify, expect, containerCheck);
    [...steps, ...afterVerify].forEach((s) => record(toChange(s)));
    return info;
  } catch (err) {
    if ((err as { rolledBack?: boolean }).rolledBack) {
      const file = steps.find((s) => s.kind === 'write-file' && s.name === 'daemon.json') as
        Extract<HostStep, { kind: 'write-file' }> | undefined;
      record({
        step: 'restore',
        detail: `${file?.path ?? 'daemon.json'}: put the previous file back (dockerd did not take the new one, or no container could start with it) and brought Docker back`,
      });
      throw err;
    }
    const completed = (err as { completed?: number[] }).completed ?? [];
    completed.forEach((i) => record(toChange(steps[i])));
    throw err;
  }
}
