// Command-line parsing: turns argv into a typed request, or an InputError naming the bad flag.
import { parseArgs } from 'node:util';
import { InputError } from './errors.js';
import { EXECUTOR_NAMES } from './executors.js';

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

export const USAGE = `Usage: npx tsx provision.ts [apply|plan|status|render|ci-snippet|destroy|upgrade-snaps] [options]

Commands:
  apply (default)   converge every node: Docker, insecure registry, runners, DaemonSets
  plan              show what apply would change; change nothing
  status            one row per node: reachable, Docker, registries, runner health
  render --out DIR  write the Kubernetes manifests apply would send (GitOps)
  ci-snippet        print a .gitlab-ci.yml job that builds and pushes to the registry
  destroy           remove runners and cluster objects runner-fleet created (asks unless --yes)
  upgrade-snaps     refresh the docker and microk8s snaps one node at a time, each once its runner runs no job

Options:
  --inventory PATH      inventory file (default inventory/fleet.yaml)
  --executor X          ${EXECUTOR_NAMES.join(' | ')} (overrides runners.executor)
  --placement P         cluster | host (overrides runners.placement; host needs shell)
  --only NODE,...       only these nodes
  --concurrency N       nodes worked on at once (default 10)
  --json                print one JSON report on stdout
  --verbose / --quiet   more / less progress on stderr
  --out DIR             render: the folder to write (created if missing)
  --seal                render: SealedSecrets through kubeseal instead of a git-ignored secrets.yaml
  --seal-cert PATH      render: seal with this controller certificate (kubeseal --fetch-cert); implies --seal
  --argocd-repo URL     render: also write DIR/argocd/application.yaml, an Argo CD Application for the folder
  --argocd-path PATH    render: the folder's path in that repository (required with --argocd-repo)
  --argocd-revision REV render: branch, tag or commit Argo CD follows (default HEAD)
  --argocd-namespace NS render: the namespace Argo CD reads Applications from (default argocd)
  --flux-repo URL       render: also write DIR/flux/sync.yaml (a Flux GitRepository and Kustomization) and
                        DIR/kustomization.yaml (the runner objects Flux applies)
  --flux-path PATH      render: the folder's path in that repository (required with --flux-repo)
  --flux-branch B       render: the branch Flux follows (default main)
  --flux-namespace NS   render: the namespace of the Flux objects (default flux-system)
  --flux-interval D     render: how often Flux fetches and applies (default 1m)
  --flux-secret NAME    render: a Secret in that namespace with username and password for the repository
  --yes                 do not ask for confirmation (destroy)
  --purge-registry-config  with destroy: remove the registries runner-fleet added to daemon.json
Exit codes: 0 converged, 1 something failed, 2 bad input (nothing touched).`;

export function parseCli(argv: string[]): CliRequest {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        inventory: { type: 'string', short: 'i' },
        executor: { type: 'string', short: 'e' },
        placement: { type: 'string' },
        only: { type: 'string' },
        concurrency: { type: 'string' },
        json: { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v' },
        quiet: { type: 'boolean', short: 'q' },
        yes: { type: 'boolean', short: 'y' },
        out: { type: 'string' },
        seal: { type: 'boolean' },
        'seal-cert': { type: 'string' },
        'argocd-repo': { type: 'string' },
        'argocd-path': { type: 'string' },
        'argocd-revision': { type: 'string' },
        'argocd-namespace': { type: 'string' },
        'flux-repo': { type: 'string' },
        'flux-path': { type: 'string' },
        'flux-branch': { type: 'string' },
        'flux-namespace': { type: 'string' },
        'flux-interval': { type: 'string' },
        'flux-secret': { type: 'string' },
        'purge-registry-config': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new InputError([(err as Error).message], 'bad command line');
  }
  const { values, positionals } = parsed;
  const issues: string[] = [];
  if (positionals.length > 1) issues.push(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
  const command = (positionals[0] ?? 'apply') as Command;
  if (!COMMANDS.includes(command))
    issues.push(`unknown command "${command}" (expected ${COMMANDS.join(' | ')})`);
  let concurrency = 10;
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
  const renderOnly = [
    'seal-cert',
    'argocd-repo',
    'argocd-path',
    'argocd-revision',
    'argocd-namespace',
    'flux-repo',
    'flux-path',
    'flux-branch',
    'flux-namespace',
    'flux-interval',
    'flux-secret',
  ] as const;
  for (const flag of renderOnly)
    if (command !== 'render' && values[flag] !== undefined) issues.push(`--${flag}: only applies to render`);
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
