// Converges one node's Docker: gather facts, plan, run only the planned steps, verify with `docker info`.
import { RemoteCommandError } from '../errors.js';
import type { NodeSpec } from '../inventory/types.js';
import type { Change } from '../report.js';
import type { NodeConnection } from '../ssh.js';
import { DOCKER_INFO, gatherScript, parseDockerInfo, parseFacts, registryIsInsecure, shQuote, type HostFacts } from './facts.js';
import { DOCKER_FLAVOURS } from './flavours.js';
import { planHost, type HostPlan, type HostStep } from './plan.js';

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

/** `extra`: more gather sections from other concerns (see gatherScript), so they share this round trip. */
export async function gatherFacts(conn: NodeConnection, registries: string[], extra = ''): Promise<HostFacts> {
  const r = await conn.exec(gatherScript(registries, extra), { sudo: true, step: 'gather facts' });
  // Only stderr goes into the error: stdout may carry a section's file in base64 (a runner record's token).
  if (r.code !== 0) throw new RemoteCommandError(conn.node.name, 'gather facts', r.code, r.stderr);
  return parseFacts(r.stdout);
}

/**
 * Shell that replaces `path` atomically (temp file + mv in the same folder) with `content`, keeping the previous file
 * as `<path>.runner-fleet.bak`, and refuses (exit 17) if the file is no longer the one the plan saw (`expectSha256`).
 * The temp file is made by mktemp (0600) and gets `mode` before it is moved, so a secret is never readable by others.
 * `backup: false` for files only runner-fleet reads (its own records), where an old copy is only an old token.
 */
export function atomicWriteScript(path: string, content: string | Buffer, expectSha256: string, mode: string, opts: { backup?: boolean } = {}): string {
  const f = shQuote(path);
  const b64 = (typeof content === 'string' ? Buffer.from(content, 'utf8') : content).toString('base64');
  return `f=${f}; d=$(dirname "$f"); mkdir -p "$d"
if [ -e "$f" ]; then cur=$(sha256sum "$f" | cut -d' ' -f1); else cur=absent; fi
if [ "$cur" != ${shQuote(expectSha256)} ]; then echo "$f changed while runner-fleet was working; not overwriting it, run again" >&2; exit 17; fi
tmp=$(mktemp "$d/.$(basename "$f").runner-fleet.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo ${shQuote(b64)} | base64 -d > "$tmp"
chmod ${mode} "$tmp"
${opts.backup === false ? '' : 'if [ -e "$f" ]; then cp -p "$f" "$f.runner-fleet.bak"; fi\n'}mv -f "$tmp" "$f"
trap - EXIT`;
}

/** Shell for one step. Every write is atomic (temp file + mv in the same folder) and keeps a backup. */
export function stepScript(step: HostStep): string {
  switch (step.kind) {
    case 'install-docker':
      return DOCKER_FLAVOURS[step.flavour].installScript;
    case 'write-file':
      return atomicWriteScript(step.path, step.content, step.expectSha256, step.mode);
    case 'reload-docker':
      return DOCKER_FLAVOURS[step.flavour].script[step.action];
  }
}

/** Waits until dockerd answers and lists every registry, then prints its registry config. */
export function verifyScript(registries: string[]): string {
  const checks = registries.map((r) => `case "$out" in *${shQuote(`"${r}":{`)}*) ;; *) ok=0 ;; esac`).join('\n  ');
  return `i=0
while :; do
  ok=1; out=$(timeout 10 ${DOCKER_INFO} 2>&1) || ok=0
  ${checks || ':'}
  [ $ok = 1 ] && break
  i=$((i+1)); [ $i -ge 60 ] && break
  sleep 0.5
done
echo "@@docker"; echo "$out"`;
}

/** Runs the steps (and the verify) in one round trip; reports which step failed if one does. */
async function runSteps(conn: NodeConnection, steps: HostStep[], registries: string[]): Promise<string> {
  const body = steps.map((s, i) => `echo "@@begin ${i}"\n${stepScript(s)}\necho "@@done ${i}"`).join('\n');
  const script = `set -e\n${body}\nset +e\n${verifyScript(registries)}`;
  const r = await conn.exec(script, { sudo: true, step: 'apply' });
  if (r.code !== 0) {
    const begun = [...r.stdout.matchAll(/@@begin (\d+)/g)].map((m) => Number(m[1]));
    const done = new Set([...r.stdout.matchAll(/@@done (\d+)/g)].map((m) => Number(m[1])));
    const failed = begun.find((i) => !done.has(i));
    const which = failed !== undefined ? steps[failed].detail : 'apply';
    const err = new Error(`${which}: failed (exit ${r.code}): ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' | ')}`);
    (err as Error & { completed: number[] }).completed = [...done];
    throw err;
  }
  return r.stdout.slice(r.stdout.indexOf('@@docker') + '@@docker'.length);
}

function checkInsecure(dockerInfo: string, registries: string[]): void {
  const parsed = parseDockerInfo(dockerInfo);
  if ('error' in parsed) throw new HostVerifyError(`docker info failed after applying: ${parsed.error}`);
  const missing = registries.filter((r) => !registryIsInsecure(parsed, r));
  if (missing.length > 0) {
    throw new HostVerifyError(`dockerd does not treat ${missing.join(', ')} as insecure after the reload (check its log: a daemon.json conflict makes reloads fail while the daemon keeps running)`);
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
  opts: { dryRun: boolean; onChange?: (c: Change) => void; gatherExtra?: string },
): Promise<HostResult> {
  const changes: Change[] = [];
  const record = (c: Change) => {
    changes.push(c);
    opts.onChange?.(c);
  };
  let facts = await gatherFacts(conn, registries, opts.gatherExtra);
  let plan = planHost(node, registries, facts);

  if (opts.dryRun) {
    plan.steps.forEach((s) => record(toChange(s)));
    if (plan.regather) record({ step: 'write-file', detail: `then add ${registries.join(', ')} to insecure-registries in ${plan.daemonJsonPath} and reload Docker` });
    return { facts, plan, changes };
  }

  if (plan.regather) {
    await runStepsRecording(conn, plan.steps, [], record);
    facts = await gatherFacts(conn, registries, opts.gatherExtra);
    plan = planHost(node, registries, facts);
  }

  if (plan.steps.length === 0) {
    // Nothing to change: the gathered `docker info` is the verification, no further round trip.
    if (plan.notYetInsecure.length > 0 || !facts.docker) {
      throw new HostVerifyError(facts.dockerInfoError ? `docker info failed: ${facts.dockerInfoError}` : `dockerd does not treat ${plan.notYetInsecure.join(', ')} as insecure`);
    }
    return { facts, plan, changes };
  }
  const info = await runStepsRecording(conn, plan.steps, registries, record);
  checkInsecure(info, registries);
  return { facts, plan, changes };
}

async function runStepsRecording(conn: NodeConnection, steps: HostStep[], registries: string[], record: (c: Change) => void): Promise<string> {
  try {
    const info = await runSteps(conn, steps, registries);
    steps.forEach((s) => record(toChange(s)));
    return info;
  } catch (err) {
    const completed = (err as { completed?: number[] }).completed ?? [];
    completed.forEach((i) => record(toChange(steps[i])));
    throw err;
  }
}
