// A fake node for command tests: a NodeConnection that answers the gather from its files and applies atomic writes
// to them, so plan, apply, a no-op rerun, status and destroy run end to end without SSH or root.
import { APT_DAEMON_JSON, SNAP_DAEMON_JSON, registryStatePath } from '../../src/host/facts.js';
import type { NodeSpec } from '../../src/inventory/types.js';
import type { Logger } from '../../src/log.js';
import { RemoteCommandError } from '../../src/errors.js';
import type { ExecOptions, ExecResult, NodeConnection } from '../../src/ssh.js';

export interface FakeNodeState {
  /** path → content; what the gather reports and what writes change */
  files: Map<string, string>;
  arch: string;
  /** every script run, with its step name */
  scripts: { step?: string; script: string }[];
  /** connections opened and closed */
  opened: number;
  closed: number;
}

export function fakeNodeState(files: Record<string, string> = {}): FakeNodeState {
  return { files: new Map(Object.entries(files)), arch: 'arm64', scripts: [], opened: 0, closed: 0 };
}

const emitFile = (state: FakeNodeState, path: string) => [`@@file ${path}`, state.files.has(path) ? Buffer.from(state.files.get(path)!).toString('base64') : '-'];

/** `docker info` as dockerd answers it: the insecure registries of the daemon.json it read (the apt one). */
function dockerInfo(state: FakeNodeState): string {
  let registries: string[] = [];
  try {
    registries = (JSON.parse(state.files.get(APT_DAEMON_JSON) ?? '{}') as { 'insecure-registries'?: string[] })['insecure-registries'] ?? [];
  } catch {
    /* dockerd would not start; the fake keeps answering */
  }
  const index = Object.fromEntries(registries.map((r) => [r, { Name: r, Secure: false }]));
  return `27.5.1 ${JSON.stringify({ IndexConfigs: index, InsecureRegistryCIDRs: ['127.0.0.0/8'] })}`;
}

function gather(state: FakeNodeState, script: string): string {
  const lines = [
    '@@os', 'debian 12', '@@arch', state.arch, '@@apt', 'docker.io installed', '@@snapd', 'no', '@@snap', 'no',
    '@@dockerd', '4242', 'pidfile=/run/docker.pid', '',
    ...emitFile(state, APT_DAEMON_JSON), ...emitFile(state, registryStatePath(APT_DAEMON_JSON)),
    ...emitFile(state, SNAP_DAEMON_JSON), ...emitFile(state, registryStatePath(SNAP_DAEMON_JSON)),
    '@@docker', dockerInfo(state), '',
    '@@microk8s', 'no',
  ];
  // destroy's section: no runner identity folders on this node.
  if (script.includes('@@rf-identity')) lines.push('@@rf-identity');
  lines.push('@@end', '');
  return lines.join('\n');
}

// A write is `f='path'` … `echo 'base64' | base64 -d` with no other `f=` between (src/host/converge.ts atomicWriteScript).
const WRITE = /^f='([^']*)'\n(?:(?!^f=')[\s\S])*?^echo '([A-Za-z0-9+/=]*)' \| base64 -d/gm;
const REMOVE = /^f='([^']*)'\nif \[ -e "\$f" \]; then\n\s*cur=/gm;

/** Runs the steps of an apply or cleanup script against the files: atomic writes and guarded removals. */
function applySteps(state: FakeNodeState, script: string): string {
  for (const m of script.matchAll(WRITE)) state.files.set(m[1], Buffer.from(m[2], 'base64').toString('utf8'));
  for (const m of script.matchAll(REMOVE)) state.files.delete(m[1]);
  const out = [...script.matchAll(/echo "@@begin (\d+)"/g)].flatMap((m) => [`@@begin ${m[1]}`, `@@done ${m[1]}`]);
  if (script.includes('echo "@@docker"')) out.push('@@docker', dockerInfo(state));
  return `${out.join('\n')}\n`;
}

export class FakeNodeConnection implements NodeConnection {
  constructor(
    readonly node: NodeSpec,
    private readonly state: FakeNodeState,
  ) {
    state.opened++;
  }

  async exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.state.scripts.push({ step: opts.step, script });
    const stdout = script.includes('echo "@@os"') ? gather(this.state, script) : applySteps(this.state, script);
    return { code: 0, stdout, stderr: '' };
  }

  async check(script: string, opts: ExecOptions & { step: string }): Promise<ExecResult> {
    const r = await this.exec(script, opts);
    if (r.code !== 0) throw new RemoteCommandError(this.node.name, opts.step, r.code, r.stderr);
    return r;
  }

  close(): void {
    this.state.closed++;
  }
}

/** A logger that keeps every line, by kind, for assertions. */
export function recordingLogger(): Logger & { lines: { kind: string; scope: string; message: string }[] } {
  const lines: { kind: string; scope: string; message: string }[] = [];
  const keep = (kind: string) => (scope: string, message: string) => void lines.push({ kind, scope, message });
  return { lines, progress: keep('progress'), change: keep('change'), warn: keep('warn'), error: keep('error'), debug: keep('debug'), summary: (t) => void lines.push({ kind: 'summary', scope: '', message: t }), done: () => {} };
}
