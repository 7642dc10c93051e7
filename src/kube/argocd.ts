// Pure: the Argo CD Application that deploys render's folder from git (the GitOps flow: CI pushes, Argo CD applies).
import { stringify } from 'yaml';
import { RENDER_HEADER, type ManifestFile } from './manifest-files.js';
import { FIELD_MANAGER, PART_OF_LABEL, MANAGED_BY, type KubeObject } from './objects.js';

/**
 * Where the Application goes, relative to the output folder: a subfolder, because Argo CD reads a directory source
 * without recursing (set explicitly below) and `kubectl apply -f DIR` does not recurse either. In DIR itself it would
 * be synced by the very Application it defines, and applied into the runner namespace by the out-of-band apply.
 */
export const APPLICATION_FILE = 'argocd/application.yaml';

/** Argo CD's name for the cluster it runs in (the destination without any cluster credentials of its own). */
export const IN_CLUSTER_SERVER = 'https://kubernetes.default.svc';

export interface ArgoCdInput {
  repo?: string;
  path?: string;
  revision?: string;
  namespace?: string;
}

export interface ArgoCdSource {
  repoURL: string;
  path: string;
  targetRevision: string;
  /** the namespace Argo CD watches for Applications */
  namespace: string;
}

const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Why `--argocd-repo` is not a repository URL Argo CD can clone without credentials in the Application, or undefined.
 * Credentials belong in an Argo CD repository Secret; in the URL they would land in git and in the Application.
 */
export function repoUrlProblem(url: string): string | undefined {
  if (url.length > 2048) return `is ${url.length} characters long; at most 2048`;
  if (CONTROL.test(url) || /\s/.test(url)) return 'must not contain spaces or control characters';
  // scp-like SSH, as git takes it: git@host:group/project.git
  const scp = /^([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+):(?!\/\/)(.+)$/.exec(url);
  if (scp) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'expected an https://, http://, ssh:// or git@host:path repository URL';
  }
  if (!['https:', 'http:', 'ssh:'].includes(parsed.protocol))
    return `expected an https://, http://, ssh:// or git@host:path repository URL, got ${parsed.protocol}//`;
  if (parsed.hostname === '') return 'has no host';
  if (parsed.password !== '')
    return 'must not contain a password (user:pass@…); give Argo CD the credentials in a repository Secret';
  // A user name alone is how a token is often passed over http(s) (https://TOKEN@host/…); over ssh it is the login (git@).
  if (parsed.protocol !== 'ssh:' && parsed.username !== '')
    return 'must not contain a user name or token (…@host); give Argo CD the credentials in a repository Secret';
  if (parsed.search !== '' || parsed.hash !== '')
    return 'expected the repository URL, without ?query or #fragment';
  if (parsed.pathname === '' || parsed.pathname === '/') return 'has no repository path';
  return undefined;
}

/** Why `--argocd-path` is not a folder inside a repository, or undefined. Argo CD refuses paths leaving the repository. */
export function repoPathProblem(path: string): string | undefined {
  if (path.length > 1024) return `is ${path.length} characters long; at most 1024`;
  if (CONTROL.test(path)) return 'must not contain control characters';
  if (path.includes('\\')) return 'expected a path with / (a folder in the repository), not \\';
  if (path.startsWith('/')) return 'expected a path relative to the repository root, not an absolute one';
  if (path.split('/').includes('..')) return 'must stay inside the repository (no .. parts)';
  return undefined;
}

/** `deploy/runners/` → `deploy/runners`, `./x` → `x`, `` or `./` → `.` (the repository root). */
export function normalizeRepoPath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  return parts.length === 0 ? '.' : parts.join('/');
}

/** Checks the --argocd-* flags together; every problem names its flag. undefined source: no Application wanted. */
export function readArgoCd(input: ArgoCdInput): { issues: string[]; source?: ArgoCdSource } {
  const issues: string[] = [];
  const given = Object.values(input).some((v) => v !== undefined);
  if (!given) return { issues };
  if (input.repo === undefined)
    issues.push('--argocd-repo: is required with --argocd-path, --argocd-revision or --argocd-namespace');
  else if (input.repo.trim() === '') issues.push('--argocd-repo: expected a repository URL');
  else {
    const p = repoUrlProblem(input.repo);
    if (p) issues.push(`--argocd-repo: ${p}`);
  }
  if (input.path === undefined)
    issues.push(
      '--argocd-path: is required with --argocd-repo (the rendered folder, relative to the repository root)',
    );
  else if (input.path.trim() === '')
    issues.push('--argocd-path: expected a folder in the repository (. for its root)');
  else {
    const p = repoPathProblem(input.path);
    if (p) issues.push(`--argocd-path: ${p}`);
  }
  if (input.revision !== undefined && !/^(?!-)[A-Za-z0-9._/@{}^~-]{1,255}$/.test(input.revision)) {
    issues.push(
      '--argocd-revision: expected a branch, tag or commit (letters, digits and . _ / - ; not starting with -)',
    );
  }
  if (input.namespace !== undefined && !DNS_LABEL.test(input.namespace)) {
    issues.push(
      '--argocd-namespace: expected a Kubernetes namespace name (lowercase letters, digits and -, at most 63 characters)',
    );
  }
  if (issues.length > 0) return { issues };
  return {
    issues,
    source: {
      repoURL: input.repo!,
      path: normalizeRepoPath(input.path!),
      targetRevision: input.revision ?? 'HEAD',
      namespace: input.namespace ?? 'argocd',
    },
  };
}

/** `runner-fleet-<namespace>`, cut to 63 characters so that it also fits a label value (Argo CD's label tracking). */
export function applicationName(runnerNamespace: string): string {
  return `runner-fleet-${runnerNamespace}`.slice(0, 63).replace(/-+$/, '');
}

/**
 * The Application: the rendered folder from git into the runner namespace of the cluster Argo CD runs in, synced
 * automatically (prune: a file render stops writing goes; selfHeal: hand edits are undone), server-side like apply.
 *
 * No resources finalizer: deleting the Application leaves the runners (and the Namespace, which holds the records
 * Secret render never writes) in place. Argo CD applies server-side as its own field manager (argocd-controller,
 * fixed in Argo CD); with the same values as apply's `runner-fleet` manager the fields are co-owned, not in conflict.
 */
export function argoCdApplication(src: ArgoCdSource, runnerNamespace: string): KubeObject {
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: {
      name: applicationName(runnerNamespace),
      namespace: src.namespace,
      // part-of, not managed-by: destroy and converge's prune act on managed-by objects, and this one is the user's to apply.
      labels: { [PART_OF_LABEL]: MANAGED_BY },
    },
    spec: {
      project: 'default',
      source: {
        repoURL: src.repoURL,
        path: src.path,
        targetRevision: src.targetRevision,
        directory: { recurse: false },
      },
      destination: { server: IN_CLUSTER_SERVER, namespace: runnerNamespace },
      syncPolicy: {
        automated: { prune: true, selfHeal: true },
        syncOptions: ['ServerSideApply=true'],
      },
    },
  };
}

/** The Application as render's file (same header, so render recognises it as its own). */
export function applicationFile(src: ArgoCdSource, runnerNamespace: string, source: string): ManifestFile {
  const app = argoCdApplication(src, runnerNamespace);
  const note = [
    `# Apply once, where Argo CD runs: kubectl apply -n ${src.namespace} -f ${APPLICATION_FILE}`,
    `# Argo CD then deploys ${src.repoURL} ${src.path} @ ${src.targetRevision}; runner-fleet never applies this file.`,
    `# Argo CD applies server-side as argocd-controller (its fixed manager); apply uses ${FIELD_MANAGER}: equal values are shared, not in conflict.`,
  ].join('\n');
  return {
    name: APPLICATION_FILE,
    content: `${RENDER_HEADER}\n# From ${source}.\n${note}\n${stringify(app)}`,
    plainSecret: false,
    mode: 0o644,
  };
}
