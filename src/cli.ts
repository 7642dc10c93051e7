// Command-line parsing: turns argv into a typed request, or an InputError naming the bad flag.
import { parseArgs } from 'node:util';
import { InputError } from './errors.js';
import { EXECUTOR_NAMES } from './executors.js';

/**
 * Nodes worked on at once. Each connection waits on the network for most of its life (SSH handshake, one command
 * round trip), so a fleet of up to this many pays the latency once: at 30 nodes and 50 ms RTT the no-op paid 15.8
 * rounds of latency at 10 (three waves) and 3.6 at 30 (bench/RESULTS.md). The work itself runs on the nodes.
 */
export const DEFAULT_CONCURRENCY = 32;

export const COMMANDS = [
  'apply',
  'plan',
  'status',
  'render',
  'ci-snippet',
  'destroy',
  'upgrade-snaps',
] as const;
export type Command = (typeof COMMANDS)[number];

export interface CliRequest {
  command: Command;
  inventory: string;
  executor?: string;
  placement?: string;
  only?: string[];
  concurrency: number;
  json: boolean;
  verbosity: 'quiet' | 'normal' | 'verbose';
  yes: boolean;
  out?: string;
  seal: boolean;
  /** render: the Sealed Secrets controller's certificate (implies seal) */
  sealCert?: string;
  /** render: the Argo CD Application's source and namespace, checked by render's preflight */
  argocd?: { repo?: string; path?: string; revision?: string; namespace?: string };
  /** render: Flux's GitRepository and Kustomization, checked by render's preflight */
  flux?: {
    repo?: string;
    path?: string;
    branch?: string;
    namespace?: string;
    interval?: string;
    secret?: string;
  };
  purgeRegistryConfig: boolean;
  help: boolean;
}

/** Each command with its help line (the order of `COMMANDS`). */
const COMMAND_HELP: Record<Command, { usage: string; help: string }> = {
  apply: {
    usage: 'apply (default)',
    help: 'converge every node: Docker, insecure registry, runners, DaemonSets',
  },
  plan: { usage: 'plan', help: 'show what apply would change; change nothing' },
  status: { usage: 'status', help: 'one row per node: reachable, Docker, registries, runner health' },
  render: { usage: 'render --out DIR', help: 'write the Kubernetes manifests apply would send (GitOps)' },
  'ci-snippet': {
    usage: 'ci-snippet',
    help: 'print a .gitlab-ci.yml job that builds and pushes to the registry',
  },
  destroy: {
    usage: 'destroy',
    help: 'remove runners and cluster objects runner-fleet created (asks unless --yes)',
  },
  'upgrade-snaps': {
    usage: 'upgrade-snaps',
    help: 'refresh the docker and microk8s snaps one node at a time, each once its runner runs no job',
  },
};

interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** the help line's left part; '' for a flag the help lists elsewhere (or not at all) */
  usage: string;
  help: string;
  /** refused with any other command */
  onlyFor?: Command;
}

/** Every flag, declared once: what parseArgs reads, the help line, and the one command it belongs to if any. */
const FLAGS = {
  inventory: {
    type: 'string',
    short: 'i',
    usage: '--inventory PATH',
    help: 'inventory file (default inventory/fleet.yaml)',
  },
  executor: {
    type: 'string',
    short: 'e',
    usage: '--executor X',
    help: `${EXECUTOR_NAMES.join(' | ')} (overrides runners.executor)`,
  },
  placement: {
    type: 'string',
    usage: '--placement P',
    help: 'cluster | host (overrides runners.placement; host needs shell)',
  },
  only: { type: 'string', usage: '--only NODE,...', help: 'only these nodes' },
  concurrency: {
    type: 'string',
    usage: '--concurrency N',
    help: `nodes worked on at once (default ${DEFAULT_CONCURRENCY})`,
  },
  json: { type: 'boolean', usage: '--json', help: 'print one JSON report on stdout' },
  verbose: {
    type: 'boolean',
    short: 'v',
    usage: '--verbose / --quiet',
    help: 'more / less progress on stderr',
  },
  quiet: { type: 'boolean', short: 'q', usage: '', help: '' },
  out: { type: 'string', usage: '--out DIR', help: 'render: the folder to write (created if missing)' },
  seal: {
    type: 'boolean',
    usage: '--seal',
    help: 'render: SealedSecrets through kubeseal instead of a git-ignored secrets.yaml',
  },
  'seal-cert': {
    type: 'string',
    usage: '--seal-cert PATH',
    help: 'render: seal with this controller certificate (kubeseal --fetch-cert); implies --seal',
    onlyFor: 'render',
  },
  'argocd-repo': {
    type: 'string',
    usage: '--argocd-repo URL',
    help: 'render: also write DIR/argocd/application.yaml, an Argo CD Application for the folder',
    onlyFor: 'render',
  },
  'argocd-path': {
    type: 'string',
    usage: '--argocd-path PATH',
    help: "render: the folder's path in that repository (required with --argocd-repo)",
    onlyFor: 'render',
  },
  'argocd-revision': {
    type: 'string',
    usage: '--argocd-revision REV',
    help: 'render: branch, tag or commit Argo CD follows (default HEAD)',
    onlyFor: 'render',
  },
  'argocd-namespace': {
    type: 'string',
    usage: '--argocd-namespace NS',
    help: 'render: the namespace Argo CD reads Applications from (default argocd)',
    onlyFor: 'render',
  },
  'flux-repo': {
    type: 'string',
    usage: '--flux-repo URL',
    help: 'render: also write DIR/flux/sync.yaml (a Flux GitRepository and Kustomization) and DIR/kustomization.yaml (the runner objects Flux applies)',
    onlyFor: 'render',
  },
  'flux-path': {
    type: 'string',
    usage: '--flux-path PATH',
    help: "render: the folder's path in that repository (required with --flux-repo)",
    onlyFor: 'render',
  },
  'flux-branch': {
    type: 'string',
    usage: '--flux-branch B',
    help: 'render: the branch Flux follows (default main)',
    onlyFor: 'render',
  },
  'flux-namespace': {
    type: 'string',
    usage: '--flux-namespace NS',
    help: 'render: the namespace of the Flux objects (default flux-system)',
    onlyFor: 'render',
  },
  'flux-interval': {
    type: 'string',
    usage: '--flux-interval D',
    help: 'render: how often Flux fetches and applies (default 1m)',
    onlyFor: 'render',
  },
  'flux-secret': {
    type: 'string',
    usage: '--flux-secret NAME',
    help: 'render: a Secret in that namespace with username and password for the repository',
    onlyFor: 'render',
  },
  yes: { type: 'boolean', short: 'y', usage: '--yes', help: 'do not ask for confirmation (destroy)' },
  'purge-registry-config': {
    type: 'boolean',
    usage: '--purge-registry-config',
    help: 'with destroy: remove the registries runner-fleet added to daemon.json',
  },
  help: { type: 'boolean', short: 'h', usage: '', help: '' },
} as const satisfies Record<string, FlagSpec>;

/** A usage wider than its column keeps two spaces before the help. */
const helpLine = (usage: string, help: string, width: number) =>
  `  ${usage.padEnd(width)}${usage.length > width ? '  ' : ' '}${help}`;

export const USAGE = [
  `Usage: npx tsx provision.ts [${COMMANDS.join('|')}] [options]`,
  '',
  'Commands:',
  ...COMMANDS.map((c) => helpLine(COMMAND_HELP[c].usage, COMMAND_HELP[c].help, 17)),
  '',
  'Options:',
  ...Object.values(FLAGS as Record<string, FlagSpec>)
    .filter((f) => f.usage !== '')
    .map((f) => helpLine(f.usage, f.help, 21)),
  'Exit codes: 0 converged, 1 something failed, 2 bad input (nothing touched).',
].join('\n');

export function parseCli(argv: string[]): CliRequest {
  let parsed;
  try {
    // parseArgs reads `type` and `short` and leaves the help fields alone.
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: FLAGS });
  } catch (err) {
    throw new InputError([(err as Error).message], 'bad command line');
  }
  const { values, positionals } = parsed;
  const issues: string[] = [];
  if (positionals.length > 1) issues.push(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
  const command = (positionals[0] ?? 'apply') as Command;
  if (!COMMANDS.includes(command))
    issues.push(`unknown command "${command}" (expected ${COMMANDS.join(' | ')})`);
  let concurrency = DEFAULT_CONCURRENCY;
  if (values.concurrency !== undefined) {
    // Decimal digits only: Number() would also take `0x10`, `1e1`, ` 5` and `5.0`.
    concurrency = /^[0-9]{1,3}$/.test(values.concurrency) ? Number(values.concurrency) : NaN;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 200)
      issues.push('--concurrency: expected a decimal integer from 1 to 200');
  }
  if (values.verbose && values.quiet) issues.push('--verbose and --quiet cannot be combined');
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (values.only !== undefined && (!only || only.length === 0)) issues.push('--only: expected NODE[,NODE…]');
  if (command === 'render' && !values.out && !values.help) issues.push('render: --out DIR is required');
  for (const [flag, spec] of Object.entries(FLAGS as Record<string, FlagSpec>))
    if (spec.onlyFor && command !== spec.onlyFor && values[flag as keyof typeof values] !== undefined)
      issues.push(`--${flag}: only applies to ${spec.onlyFor}`);
  const argocd = {
    repo: values['argocd-repo'],
    path: values['argocd-path'],
    revision: values['argocd-revision'],
    namespace: values['argocd-namespace'],
  };
  const flux = {
    repo: values['flux-repo'],
    path: values['flux-path'],
    branch: values['flux-branch'],
    namespace: values['flux-namespace'],
    interval: values['flux-interval'],
    secret: values['flux-secret'],
  };
  if (issues.length > 0) throw new InputError(issues, 'bad command line');
  return {
    command,
    inventory: values.inventory ?? 'inventory/fleet.yaml',
    executor: values.executor,
    placement: values.placement,
    only,
    concurrency,
    json: Boolean(values.json),
    verbosity: values.verbose ? 'verbose' : values.quiet ? 'quiet' : 'normal',
    yes: Boolean(values.yes),
    out: values.out,
    seal: Boolean(values.seal),
    sealCert: values['seal-cert'],
    argocd: Object.values(argocd).some((v) => v !== undefined) ? argocd : undefined,
    flux: Object.values(flux).some((v) => v !== undefined) ? flux : undefined,
    purgeRegistryConfig: Boolean(values['purge-registry-config']),
    help: Boolean(values.help),
  };
}
