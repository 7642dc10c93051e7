// `render --out DIR`: the cluster objects exactly as apply would send them, one file per object, for a GitOps repository.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InputError, RunFailedError } from '../errors.js';
import type { Executor, Inventory } from '../inventory/types.js';
import { connectCluster } from '../kube/converge.js';
import { GITIGNORE, SECRETS_FILE, gitignoreWith, manifestFiles, staleFiles } from '../kube/manifest-files.js';
import { RECORDS_SECRET, objectKey, type KubeObject } from '../kube/objects.js';
import { renderClusterObjects } from '../kube/render.js';
import { findOnPath, runLocal } from '../local.js';
import type { Logger } from '../log.js';
import { redact } from '../secrets.js';
import { desiredCluster, kubeconfigFromNode, typedStore } from './runners.js';

export interface RenderOptions {
  out: string;
  seal: boolean;
  executor: Executor;
  log: Logger;
  /** default: kubeseal found on PATH */
  kubeseal?: string;
}

export interface RenderResult {
  ok: true;
  out: string;
  files: { name: string; plainSecret: boolean }[];
  removed: string[];
  secretsFile?: string;
}

/** Checks that need nothing but the inventory and the flags (exit 2 before anything is contacted). */
export function renderPreflight(inv: Inventory, opts: { seal: boolean; only?: string[] }): { kubeseal?: string } {
  const issues: string[] = [];
  if (opts.only) issues.push('render: --only does not apply; render writes the whole fleet, as apply sends it');
  if (inv.gitlab.auth.kind === 'none') issues.push('render: the inventory has no gitlab token, so apply sends nothing to the cluster (hosts only)');
  if (inv.runners.placement === 'host') issues.push('render: runners.placement is host; apply sends nothing to the cluster');
  let kubeseal: string | undefined;
  if (opts.seal) {
    kubeseal = findOnPath('kubeseal');
    if (!kubeseal) issues.push('--seal: kubeseal is not on PATH (install it from github.com/bitnami-labs/sealed-secrets), or drop --seal to get the Secrets in a git-ignored secrets.yaml');
  }
  if (issues.length > 0) throw new InputError(issues, 'cannot render');
  return { kubeseal };
}

/** kubeseal for every Secret, with the inventory's cluster (it fetches the controller's public key from there). */
async function sealSecrets(inv: Inventory, objects: KubeObject[], kubeseal: string, kubeconfigText: string | undefined, log: Logger): Promise<Map<string, string>> {
  const sealed = new Map<string, string>();
  const args = ['--format', 'yaml'];
  let tmp: string | undefined;
  try {
    if (kubeconfigText !== undefined) {
      tmp = mkdtempSync(join(tmpdir(), 'runner-fleet-kubeseal-'));
      writeFileSync(join(tmp, 'kubeconfig'), kubeconfigText, { mode: 0o600 });
      args.push('--kubeconfig', join(tmp, 'kubeconfig'));
    } else if (inv.kubernetes.kubeconfig) {
      args.push('--kubeconfig', inv.kubernetes.kubeconfig);
    }
    if (inv.kubernetes.context) args.push('--context', inv.kubernetes.context);
    for (const o of objects.filter((x) => x.kind === 'Secret')) {
      log.progress('render', `sealing Secret ${o.metadata.name} with kubeseal`);
      const r = await runLocal(kubeseal, args, { input: JSON.stringify(o) });
      if (r.code !== 0 || !/kind:\s*SealedSecret/.test(r.stdout)) {
        throw new RunFailedError(`kubeseal failed for Secret ${o.metadata.name} (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ') || 'no SealedSecret in its output'}`);
      }
      sealed.set(objectKey(o), r.stdout);
    }
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
  return sealed;
}

/** Writes a file atomically (temp file in the same folder, then rename) with its mode. */
function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.runner-fleet.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function firstLines(dir: string): { name: string; firstLine: string }[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.yaml') && statSync(join(dir, name)).isFile())
    .map((name) => ({ name, firstLine: readFileSync(join(dir, name), 'utf8').split('\n', 1)[0] }));
}

export async function runRender(inv: Inventory, opts: RenderOptions): Promise<RenderResult> {
  const { log } = opts;
  const out = resolve(opts.out);
  const ns = inv.kubernetes.namespace;

  log.progress('cluster', `reading runner records from Secret ${ns}/${RECORDS_SECRET}`);
  const kubeconfigText = await kubeconfigFromNode(inv);
  const client = connectCluster(inv.kubernetes, kubeconfigText);
  const records = await typedStore(client, ns, true).load();
  const live = new Set(records.filter((r) => !r.retiredAt).map((r) => r.node));
  const missing = inv.nodes.filter((n) => !live.has(n.name)).map((n) => n.name);
  if (missing.length > 0) {
    // Registering is apply's job: render never creates runners in GitLab, and without a token there is no config.toml.
    throw new RunFailedError(
      `no runner is registered for ${missing.join(', ')} (no record in Secret ${ns}/${RECORDS_SECRET}): run \`provision.ts apply\` first, then render; nothing was written`,
    );
  }
  const archByNode = new Map((await client.listNodes()).map((n) => [n.name, n.labels['kubernetes.io/arch']]));
  log.done?.('cluster', true, `${records.length} record(s)`);

  // The same function apply uses, then the same renderer convergeCluster uses.
  const desired = desiredCluster({ inventory: inv, executor: opts.executor, records, arch: (node) => archByNode.get(node) ?? 'arm64' });
  const objects = renderClusterObjects(desired);
  const sealed = opts.seal ? await sealSecrets(inv, objects, opts.kubeseal!, kubeconfigText, log) : undefined;
  const files = manifestFiles(objects, { source: `${inv.source}, executor ${opts.executor}`, sealed });

  // Belt and braces: renderClusterObjects already refuses tokens outside Secrets.
  const tokens = Object.values(desired.tokens).filter((t) => t.length >= 4);
  for (const f of files) {
    if (!f.plainSecret && tokens.some((t) => f.content.includes(t))) throw new RunFailedError(`render: ${f.name} would contain a runner token; nothing was written`);
  }

  mkdirSync(out, { recursive: true });
  const removed = staleFiles(firstLines(out), files);
  for (const f of files) writeAtomic(join(out, f.name), f.content, f.mode);
  for (const name of removed) rmSync(join(out, name), { force: true });
  let secretsFile: string | undefined;
  if (files.some((f) => f.plainSecret)) {
    secretsFile = join(out, SECRETS_FILE);
    let current: string | undefined;
    try {
      current = readFileSync(join(out, GITIGNORE), 'utf8');
    } catch {
      current = undefined;
    }
    const next = gitignoreWith(current);
    if (next !== undefined) writeAtomic(join(out, GITIGNORE), next, 0o644);
    log.warn('render', `${secretsFile} holds the runner tokens in plain text (mode 0600, listed in ${join(out, GITIGNORE)}): never commit it; apply it out of band, or use --seal with kubeseal`);
  }
  log.done?.('render', true, `${files.length} file(s) in ${out}`);
  return { ok: true, out, files: files.map((f) => ({ name: f.name, plainSecret: f.plainSecret })), removed, ...(secretsFile ? { secretsFile } : {}) };
}

export function formatRenderSummary(r: RenderResult): string {
  const lines = r.files.map((f) => `  ${f.name}${f.plainSecret ? '   (plain-text Secrets: git-ignored, do not commit)' : ''}`);
  for (const name of r.removed) lines.push(`  ${name}   (removed: no longer rendered)`);
  return redact(`Rendered into ${r.out}:\n${lines.join('\n')}\nApply with: kubectl apply --server-side --field-manager=runner-fleet -f ${r.out}${r.secretsFile ? ` (secrets.yaml included)` : ''}`);
}
