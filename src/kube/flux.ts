// Pure: Flux's GitRepository and Kustomization that deploy render's folder from git, and the kustomization.yaml that
// limits what Flux applies from it to the runner objects.
import { stringify } from 'yaml';
import { normalizeRepoPath, repoPathProblem, repoUrlProblem } from './argocd.js';
import { RENDER_HEADER, type ManifestFile } from './manifest-files.js';
import { PART_OF_LABEL, MANAGED_BY, type KubeObject } from './objects.js';

/** In a subfolder, like Argo CD's Application: never applied with the runner objects (kustomization.yaml omits it). */
export const FLUX_FILE = 'flux/sync.yaml';
/** kustomize's file: without it kustomize-controller would apply every YAML below the path, flux/ and argocd/ too. */
export const KUSTOMIZE_FILE = 'kustomization.yaml';

export interface FluxInput {
  repo?: string;
  path?: string;
  branch?: string;
  namespace?: string;
  interval?: string;
  secret?: string;
}

export interface FluxSource {
  url: string;
  path: string;
  branch: string;
  /** where the GitRepository and Kustomization live (Flux's own namespace) */
  namespace: string;
  /** how often Flux fetches the repository and re-applies the folder */
  interval: string;
  /** a Secret in `namespace` with `username` and `password` (a deploy token with read_repository) */
  secret?: string;
}

const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** Go's time.ParseDuration, as Flux's CRDs validate it (^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$). */
const DURATION = /^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/;

/** Checks the --flux-* flags together; every problem names its flag. undefined source: no Flux objects wanted. */
export function readFlux(input: FluxInput): { issues: string[]; source?: FluxSource } {
  const issues: string[] = [];
  if (!Object.values(input).some((v) => v !== undefined)) return { issues };
  if (input.repo === undefined || input.repo.trim() === '')
    issues.push('--flux-repo: expected the repository URL (required with any --flux-* flag)');
  else {
    const p = repoUrlProblem(input.repo);
    if (p)
      issues.push(
        `--flux-repo: ${p.replace('Argo CD the credentials in a repository Secret', 'Flux the credentials in a Secret (--flux-secret)')}`,
      );
    else if (/^[^/:]+@[^/:]+:/.test(input.repo) || input.repo.startsWith('ssh:'))
      issues.push('--flux-repo: expected an https:// or http:// URL (this flag writes no SSH known_hosts)');
  }
  if (input.path === undefined || input.path.trim() === '')
    issues.push(
      '--flux-path: is required with --flux-repo (the rendered folder, relative to the repository root)',
    );
  else {
    const p = repoPathProblem(input.path);
    if (p) issues.push(`--flux-path: ${p}`);
  }
  if (input.branch !== undefined && !/^(?![-/.])[A-Za-z0-9._/-]{1,255}$/.test(input.branch))
    issues.push(
      '--flux-branch: expected a branch name (letters, digits and . _ / - ; not starting with - / .)',
    );
  if (input.namespace !== undefined && !DNS_LABEL.test(input.namespace))
    issues.push('--flux-namespace: expected a Kubernetes namespace name (lowercase letters, digits and -)');
  if (input.interval !== undefined && !DURATION.test(input.interval))
    issues.push('--flux-interval: expected a duration such as 30s, 5m or 1h');
  if (input.secret !== undefined && !DNS_SUBDOMAIN.test(input.secret))
    issues.push('--flux-secret: expected a Secret name (lowercase letters, digits, - and .)');
  if (issues.length > 0) return { issues };
  return {
    issues,
    source: {
      url: input.repo!,
      path: normalizeRepoPath(input.path!),
      branch: input.branch ?? 'main',
      namespace: input.namespace ?? 'flux-system',
      interval: input.interval ?? '1m',
      ...(input.secret !== undefined ? { secret: input.secret } : {}),
    },
  };
}

/** `runner-fleet-<namespace>`, at most 63 characters (Flux puts the name in labels of what it applies). */
export const fluxName = (runnerNamespace: string) =>
  `runner-fleet-${runnerNamespace}`.slice(0, 63).replace(/-+$/, '');

/**
 * The GitRepository (what to fetch) and the Kustomization (apply that folder, prune what leaves it). Flux applies
 * server-side as its own field manager (kustomize-controller), taking over fields apply's `runner-fleet` set.
 */
export function fluxObjects(src: FluxSource, runnerNamespace: string): KubeObject[] {
  const name = fluxName(runnerNamespace);
  const metadata = { name, namespace: src.namespace, labels: { [PART_OF_LABEL]: MANAGED_BY } };
  return [
    {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata,
      spec: {
        url: src.url,
        ref: { branch: src.branch },
        interval: src.interval,
        ...(src.secret ? { secretRef: { name: src.secret } } : {}),
      },
    },
    {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata,
      spec: {
        interval: src.interval,
        path: src.path === '.' ? './' : `./${src.path}`,
        prune: true,
        sourceRef: { kind: 'GitRepository', name },
        timeout: '2m',
      },
    },
  ];
}

/** flux/sync.yaml: apply it once where Flux runs; runner-fleet never applies it. */
export function fluxFile(src: FluxSource, runnerNamespace: string, source: string): ManifestFile {
  const note = [
    `# Apply once, where Flux runs: kubectl apply -f ${FLUX_FILE}`,
    `# Flux then applies ${src.url} ${src.path} @ ${src.branch} every ${src.interval}; runner-fleet never applies this file.`,
  ].join('\n');
  const docs = fluxObjects(src, runnerNamespace)
    .map((o) => stringify(o))
    .join('---\n');
  return {
    name: FLUX_FILE,
    content: `${RENDER_HEADER}\n# From ${source}.\n${note}\n${docs}`,
    plainSecret: false,
    mode: 0o644,
  };
}

/**
 * kustomization.yaml listing exactly the runner objects' files (not flux/, argocd/ or the git-ignored secrets.yaml,
 * which is never in git), in apply order: what kustomize-controller builds and applies from the folder.
 */
export function kustomizeFile(files: ManifestFile[], source: string): ManifestFile {
  const resources = files
    .filter((f) => !f.plainSecret && !f.name.includes('/') && f.name !== KUSTOMIZE_FILE)
    .map((f) => f.name)
    .sort();
  const body = stringify({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources });
  return {
    name: KUSTOMIZE_FILE,
    content: `${RENDER_HEADER}\n# From ${source}. What Flux applies from this folder (kustomize's file, not a cluster object).\n${body}`,
    plainSecret: false,
    mode: 0o644,
  };
}
