// A fake node for command tests: a NodeConnection that answers the gather from its files and applies atomic writes
// to them, so plan, apply, a no-op rerun, status and destroy run end to end without SSH or root.
import { APT_DAEMON_JSON, SNAP_DAEMON_JSON, registryStatePath } from '../../src/docker/facts.js';
import { FORWARDING_SYSCTL_FILE } from '../../src/docker/forwarding.js';
import type { NodeSpec } from '../../src/inventory/types.js';
import { RemoteCommandError } from '../../src/errors.js';
import type { ExecOptions, ExecResult, NodeConnection } from '../../src/ssh.js';
import { sha256 } from '../../src/docker/facts.js';
import {
  CONFIG_TOML,
  DROP_IN_FILE,
  KEYRING_FILE,
  PIN_FILE,
  RECORD_FILE,
  SOURCES_FILE,
  SYSTEM_ID_FILE,
} from '../../src/host-runner/facts.js';

export interface FakeNodeState {
  /** path → content; what the gather reports and what writes change (bytes: a keyring is binary) */
  files: Map<string, Buffer>;
  arch: string;
  /** every script run, with its step name */
  scripts: { step?: string; script: string }[];
  /** connections opened and closed */
  opened: number;
  closed: number;
  /** the gitlab-runner package and service, as apt-get and systemctl would leave them */
  runner: { installed: boolean; active: boolean; enabled: boolean; groups: string[]; dockerGroup: boolean };
  /** the pre-flight section's lines (src/docker/preflight.ts); none: the node says nothing, which is never a problem */
  preflight: string[];
}

export function fakeNodeState(files: Record<string, string> = {}): FakeNodeState {
  return {
    files: new Map(Object.entries(files).map(([path, text]) => [path, Buffer.from(text)])),
    arch: 'arm64',
    scripts: [],
    opened: 0,
    closed: 0,
    runner: { installed: false, active: false, enabled: false, groups: [], dockerGroup: true },
    preflight: [],
  };
}

/** The host-runner gather section (src/host-runner/facts.ts), `full` when the script asks for the install part. */
function hostRunnerSection(state: FakeNodeState, full: boolean): string[] {
  const r = state.runner;
  const config = text(state, CONFIG_TOML);
  const lines = [
    '@@hr-os',
    'debian bookworm',
    '@@hr-package',
    r.installed ? 'installed 17.11.0-1' : '',
    '@@hr-service',
    `active=${r.active ? 'active' : 'inactive'}`,
    `enabled=${r.enabled ? 'enabled' : 'disabled'}`,
    '@@hr-config',
    ...(config === undefined ? ['absent'] : [sha256(config), '600 root']),
    '@@hr-config-restart-only',
    ...emitFile(state, DROP_IN_FILE),
    '@@hr-system-id-mode',
    ...(state.files.has(SYSTEM_ID_FILE) ? ['600 root'] : []),
    ...emitFile(state, SYSTEM_ID_FILE),
    '@@hr-record-mode',
    ...(state.files.has(RECORD_FILE) ? ['600 root'] : []),
    ...emitFile(state, RECORD_FILE),
  ];
  if (full) {
    lines.push(
      '@@hr-user',
      r.installed ? `user gitlab-runner ${r.groups.join(' ')}`.trim() : 'none',
      '@@hr-docker-group',
      r.dockerGroup ? 'yes' : 'no',
      ...emitFile(state, KEYRING_FILE),
      '@@hr-old-keyring',
      ...emitFile(state, SOURCES_FILE),
      ...emitFile(state, PIN_FILE),
      '@@hr-other-sources',
    );
  }
  return lines;
}

/** What apt-get, usermod and systemctl in a host-runner script would do to the package and service. */
function runnerCommands(state: FakeNodeState, script: string): string[] {
  const r = state.runner;
  if (script.includes('apt-get install'))
    Object.assign(r, { installed: true, active: true, enabled: true, groups: ['gitlab-runner'] });
  if (/usermod -aG docker /.test(script) && !r.groups.includes('docker')) r.groups.push('docker');
  for (const m of script.matchAll(/^systemctl (start|stop|enable|disable) gitlab-runner$/gm)) {
    if (m[1] === 'start' || m[1] === 'stop') r.active = m[1] === 'start';
    else r.enabled = m[1] === 'enable';
  }
  for (const m of script.matchAll(/^rm -f ((?:'[^']*' ?)+)$/gm))
    for (const p of m[1].matchAll(/'([^']*)'/g)) state.files.delete(p[1]);
  if (!script.includes('echo "@@verify"')) return [];
  const config = text(state, CONFIG_TOML);
  return [
    '@@verify',
    `active=${r.active ? 'active' : 'inactive'}`,
    `groups=${r.groups.join(' ')}`,
    `config=${config === undefined ? 'absent' : sha256(config)}`,
    `mode=${config === undefined ? '' : '600 root'}`,
  ];
}

const emitFile = (state: FakeNodeState, path: string) => [
  `@@file ${path}`,
  state.files.get(path)?.toString('base64') ?? '-',
];

/** A file's text, undefined when absent. */
export const text = (state: FakeNodeState, path: string) => state.files.get(path)?.toString('utf8');

/** `docker info` as dockerd answers it: the insecure registries of the daemon.json it read (the apt one). */
function dockerInfo(state: FakeNodeState): string {
  let registries: string[] = [];
  try {
    registries =
      (JSON.parse(text(state, APT_DAEMON_JSON) ?? '{}') as { 'insecure-registries'?: string[] })[
        'insecure-registries'
      ] ?? [];
  } catch {
    /* dockerd would not start; the fake keeps answering */
  }
  const index = Object.fromEntries(registries.map((r) => [r, { Name: r, Secure: false }]));
  return `27.5.1 ${JSON.stringify({ IndexConfigs: index, InsecureRegistryCIDRs: ['127.0.0.0/8'] })}`;
}

function gather(state: FakeNodeState, script: string): string {
  const runner = script.includes('@@hr-os') ? hostRunnerSection(state, script.includes('@@hr-user')) : [];
  // The probe alone (a node that gets no host phase): only the host-runner section.
  if (!script.includes('echo "@@os"')) return [...runner, '@@end', ''].join('\n');
  const lines = [
    '@@os',
    'debian 12',
    '@@arch',
    state.arch,
    '@@apt',
    'docker.io installed',
    '@@snapd',
    'no',
    '@@snap',
    'no',
    '@@dockerd',
    '4242',
    'pidfile=/run/docker.pid',
    '',
    ...emitFile(state, APT_DAEMON_JSON),
    ...emitFile(state, registryStatePath(APT_DAEMON_JSON)),
    ...emitFile(state, SNAP_DAEMON_JSON),
    ...emitFile(state, registryStatePath(SNAP_DAEMON_JSON)),
    '@@docker',
    dockerInfo(state),
    '',
    '@@microk8s',
    'no',
  ];
  // Forwarding (src/docker/forwarding.ts): on, as dockerd leaves it; runner-fleet's file as the writes left it; no iptables.
  if (script.includes('echo "@@ip-forward"'))
    lines.push(
      '@@ip-forward',
      '1',
      ...emitFile(state, FORWARDING_SYSCTL_FILE),
      '@@iptables',
      '!unknown iptables is not installed',
    );
  // destroy's section: no runner identity folders on this node.
  if (script.includes('@@rf-identity')) lines.push('@@rf-identity');
  if (script.includes('echo "@@preflight"')) lines.push('@@preflight', ...state.preflight);
  lines.push(...runner, '@@end', '');
  return lines.join('\n');
}

// A write is `f='path'` … `echo 'base64' | base64 -d` with no other `f=` between (src/docker/docker-converge.ts atomicWriteScript).
const WRITE = /^f='([^']*)'\n(?:(?!^f=')[\s\S])*?^echo '([A-Za-z0-9+/=]*)' \| base64 -d/gm;
const REMOVE = /^f='([^']*)'\nif \[ -e "\$f" \]; then\n\s*cur=/gm;

/** Runs the steps of an apply or cleanup script against the files: atomic writes and guarded removals. */
function applySteps(state: FakeNodeState, script: string): string {
  for (const m of script.matchAll(WRITE)) state.files.set(m[1], Buffer.from(m[2], 'base64'));
  for (const m of script.matchAll(REMOVE)) state.files.delete(m[1]);
  const out = [...script.matchAll(/echo "@@begin (\d+)"/g)].flatMap((m) => [
    `@@begin ${m[1]}`,
    `@@done ${m[1]}`,
  ]);
  out.push(...runnerCommands(state, script));
  if (script.includes('echo "@@docker"')) out.push('@@docker', dockerInfo(state));
  return `${out.join('\n')}\n`;
}

// withNodeLock (src/lock/node-lock.ts) ships the script base64-encoded into a temp file run under flock; the fake
// holds no lock and runs the script inside it.
const NODE_LOCKED = /^printf '%s' '([A-Za-z0-9+/=]*)' \| base64 -d > "\$rf_s"/m;
const unwrapNodeLock = (script: string): string => {
  const m = NODE_LOCKED.exec(script);
  return m ? Buffer.from(m[1], 'base64').toString('utf8') : script;
};

export class FakeNodeConnection implements NodeConnection {
  constructor(
    readonly node: NodeSpec,
    private readonly state: FakeNodeState,
  ) {
    state.opened++;
  }

  async exec(wrapped: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.state.scripts.push({ step: opts.step, script: wrapped });
    const script = unwrapNodeLock(wrapped);
    const stdout =
      script.includes('echo "@@os"') || script.includes('echo "@@hr-os"')
        ? gather(this.state, script)
        : applySteps(this.state, script);
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
