// `render --out DIR`: the cluster objects exactly as apply would send them, one file per object, for a GitOps repository.
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { InputError, RunFailedError } from '../errors.js';
import type { Inventory } from '../inventory/types.js';
import {
  APPLICATION_FILE,
  applicationFile,
  readArgoCd,
  type ArgoCdInput,
  type ArgoCdSource,
} from '../kube/argocd.js';
import {
  FLUX_FILE,
  fluxFile,
  kustomizeFile,
  readFlux,
  type FluxInput,
  type FluxSource,
} from '../kube/flux.js';
import {
  GITIGNORE,
  RENDER_HEADER,
  SECRETS_FILE,
  gitignoreWith,
  manifestFiles,
  staleFiles,
  type ManifestFile,
} from '../kube/manifest-files.js';
import { CONFIG_SECRET, RECORDS_SECRET, objectKey, type KubeObject } from '../kube/objects.js';
import { renderClusterObjects } from '../kube/render.js';
import { sealCertProblem } from '../kube/seal-cert.js';
import { findOnPath, runLocal } from '../local.js';
import type { Logger } from '../log.js';
import { readInventorySecrets, redact } from '../secrets.js';
import { desiredCluster, type DesiredCluster } from '../placement/desired.js';
import { checkBeforeGitlab, reconcileClusterRunners } from '../placement/cluster-placement.js';
import { describeUnfit } from '../placement/reasons.js';
import { retireVerdict, waitForPodsGone } from '../placement/render-retire.js';
import type { KubeClient, NodeInfo } from '../kube/client.js';
import { planNodeLabels } from '../kube/node-labels.js';
import type { ReconcileResult } from '../runners/reconcile.js';
import type { RunContext } from '../context.js';
import { withRunners } from '../gitlab/auth-modes.js';

export interface RenderOptions {
  out: string;
  seal: boolean;
  /** default: kubeseal found on PATH */
  kubeseal?: string;
  /** the controller's certificate (--seal-cert): kubeseal seals with it instead of fetching it from the cluster */
  sealCert?: string;
  /** also write an Argo CD Application for the folder (--argocd-repo, --argocd-path, …) */
  argocd?: ArgoCdSource;
  /** also write Flux's GitRepository and Kustomization, and the kustomization.yaml they apply (--flux-*) */
  flux?: FluxSource;
}

export interface RenderResult {
  ok: true;
  out: string;
  files: { name: string; plainSecret: boolean }[];
  removed: string[];
  secretsFile?: string;
  /** the Argo CD Application, when one was asked for */
  application?: string;
  /** Flux's objects, when they were asked for */
  fluxSync?: string;
  /** what changed in GitLab (apply's reconcile: runners registered, settings updated, removed ones deleted) */
  gitlab: { step: string; detail: string }[];
  /** node labels set or taken away (kubernetes.nodeLabel: which nodes run a runner pod) */
  labels: string[];
  /** deletes left for the next render, and why (a pod still finishing its jobs, say) */
  pending: string[];
}

export interface RenderFlags {
  seal: boolean;
  only?: string[];
  out?: string;
  /** --seal-cert PATH (implies --seal) */
  sealCert?: string;
  argocd?: ArgoCdInput;
  flux?: FluxInput;
}

/** Checks that need nothing but the inventory and the flags (exit 2 before anything is contacted). */
export function renderPreflight(
  inv: Inventory,
  opts: RenderFlags,
): { kubeseal?: string; sealCert?: string; argocd?: ArgoCdSource; flux?: FluxSource } {
  const issues: string[] = [];
  let sealCert: string | undefined;
  if (opts.sealCert !== undefined) {
    sealCert = resolve(opts.sealCert);
    const problem =
      opts.sealCert.trim() === ''
        ? "expected the path of the controller's certificate"
        : sealCertProblem(sealCert);
    if (problem) issues.push(`--seal-cert: ${problem}`);
  }
  const seal = opts.seal || sealCert !== undefined;
  const argo = readArgoCd(opts.argocd ?? {});
  issues.push(...argo.issues);
  const flux = readFlux(opts.flux ?? {});
  issues.push(...flux.issues);
  if (opts.out !== undefined) {
    const problem = outputDirProblem(resolve(opts.out), { mayBeMissing: true });
    if (problem) issues.push(`--out: ${problem}`);
  }
  if (opts.only)
    issues.push('render: --only does not apply; render writes the whole fleet, as apply sends it');
  if (!withRunners(inv.gitlab.auth))
    issues.push(
      'render: the inventory has no gitlab token, so apply sends nothing to the cluster (hosts only)',
    );
  if (inv.runners.placement === 'host')
    issues.push('render: runners.placement is host; apply sends nothing to the cluster');
  let kubeseal: string | undefined;
  if (seal) {
    kubeseal = findOnPath('kubeseal');
    const flag = opts.seal ? '--seal' : '--seal-cert';
    if (!kubeseal)
      issues.push(
        `${flag}: kubeseal is not on PATH (install it from github.com/bitnami-labs/sealed-secrets), or drop ${flag} to get the Secrets in a git-ignored secrets.yaml`,
      );
  }
  if (issues.length > 0) throw new InputError(issues, 'cannot render');
  return { kubeseal, sealCert, argocd: argo.source, flux: flux.source };
}

/** The Sealed Secrets controller kubeseal asks for its certificate (kubernetes.sealedSecrets). */
export interface SealController {
  name: string;
  namespace: string;
}

export interface SealOptions {
  kubeseal: string;
  /** the controller's certificate: no cluster is contacted for sealing */
  cert?: string;
  /** without a cert: the controller whose certificate kubeseal fetches through the inventory's cluster */
  controller?: SealController;
  /** without a cert: where kubeseal finds the controller (its kubeconfig text from a node, or a file, and a context) */
  kubeconfigText?: string;
  kubeconfig?: string;
  context?: string;
  log: Logger;
}

const DEFAULT_CONTROLLER: SealController = { name: 'sealed-secrets-controller', namespace: 'kube-system' };

/**
 * The controller's certificate, fetched once with `kubeseal --fetch-cert` into `dir`: every Secret is then sealed
 * with the same certificate, and a controller that is not there fails once, naming the one that was looked for.
 */
async function fetchSealingCert(opts: SealOptions, dir: string): Promise<string> {
  const controller = opts.controller ?? DEFAULT_CONTROLLER;
  const args = [
    '--fetch-cert',
    '--controller-name',
    controller.name,
    '--controller-namespace',
    controller.namespace,
  ];
  if (opts.kubeconfigText !== undefined) {
    writeFileSync(join(dir, 'kubeconfig'), opts.kubeconfigText, { mode: 0o600 });
    args.push('--kubeconfig', join(dir, 'kubeconfig'));
  } else if (opts.kubeconfig) {
    args.push('--kubeconfig', opts.kubeconfig);
  }
  if (opts.context) args.push('--context', opts.context);
  const where = `${controller.namespace}/${controller.name}`;
  opts.log.progress('render', `fetching the sealing certificate from the Sealed Secrets controller ${where}`);
  const r = await runLocal(opts.kubeseal, args);
  if (r.code !== 0 || !r.stdout.includes('-----BEGIN CERTIFICATE-----')) {
    const why = r.stderr.trim().split('\n').slice(-2).join(' | ') || 'no certificate in its output';
    throw new RunFailedError(
      `kubeseal could not fetch the certificate of the Sealed Secrets controller ${where} (service ${controller.name} in namespace ${controller.namespace}; kubernetes.sealedSecrets.controllerName/controllerNamespace, or --seal-cert): ${why}`,
    );
  }
  writeFileSync(join(dir, 'cert.pem'), r.stdout, { mode: 0o600 });
  return join(dir, 'cert.pem');
}

/** The line before each SealedSecret render writes: what it seals, so that an unchanged Secret keeps its sealing. */
export const SEALED_FROM = '# Sealed from sha256:';

/**
 * What a sealing stands for: the certificate and the Secret as rendered. A hash, never the values: the Secret holds
 * runner tokens (random, so the hash gives nothing away), and kubeseal encrypts afresh on every call, so without this
 * every render would change the file while nothing changed.
 */
export function sealedFingerprint(certPem: string, o: KubeObject): string {
  return createHash('sha256').update(certPem).update('\0').update(JSON.stringify(o)).digest('hex');
}

/**
 * The SealedSecrets render wrote into `out` before (by fingerprint): text from the SEALED_FROM line on, exactly as
 * manifestFiles puts it after the header. Links and files without render's header are not render's, so not read.
 */
export function previousSealings(out: string): Map<string, string> {
  const found = new Map<string, string>();
  let names: { name: string; firstLine: string }[];
  try {
    names = firstLines(out);
  } catch {
    return found; // no folder yet
  }
  for (const { name, firstLine } of names) {
    if (firstLine !== RENDER_HEADER) continue;
    const text = readWhole(join(out, name));
    const at = text.indexOf(`\n${SEALED_FROM}`);
    if (at < 0) continue;
    const sealed = text.slice(at + 1);
    found.set(sealed.slice(SEALED_FROM.length, sealed.indexOf('\n')), sealed);
  }
  return found;
}

/**
 * kubeseal for every Secret, as a SealedSecret in YAML keyed by objectKey, after its SEALED_FROM line. With a
 * certificate kubeseal encrypts with it; without one the controller's certificate is fetched from the inventory's
 * cluster first. A Secret sealed before with the same certificate (`previous`) keeps that sealing.
 */
export async function sealSecrets(
  objects: KubeObject[],
  opts: SealOptions & { previous?: Map<string, string> },
): Promise<Map<string, string>> {
  const { log } = opts;
  const sealed = new Map<string, string>();
  const tmp = mkdtempSync(join(tmpdir(), 'runner-fleet-kubeseal-'));
  try {
    const cert = opts.cert ?? (await fetchSealingCert(opts, tmp));
    const certPem = readWhole(cert);
    for (const o of objects.filter((x) => x.kind === 'Secret')) {
      const fingerprint = sealedFingerprint(certPem, o);
      const before = opts.previous?.get(fingerprint);
      if (before !== undefined) {
        log.progress('render', `Secret ${o.metadata.name} is unchanged: its sealing stays as it is`);
        sealed.set(objectKey(o), before);
        continue;
      }
      log.progress(
        'render',
        `sealing Secret ${o.metadata.name} with kubeseal${opts.cert ? ` and ${opts.cert}` : ''}`,
      );
      const r = await runLocal(opts.kubeseal, ['--format', 'yaml', '--cert', cert], {
        input: JSON.stringify(o),
      });
      if (r.code !== 0 || !/kind:\s*SealedSecret/.test(r.stdout)) {
        throw new RunFailedError(
          `kubeseal failed for Secret ${o.metadata.name} (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ') || 'no SealedSecret in its output'}`,
        );
      }
      sealed.set(objectKey(o), `${SEALED_FROM}${fingerprint}\n${r.stdout.replace(/^---\n/, '')}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return sealed;
}

/**
 * Why `dir` is not a safe place for render to write tokens, or undefined. render runs as whoever holds the
 * cluster's credentials, often root: in a folder that someone else can write to (or owns), they could plant a link
 * or swap a file between our check and our write, and read the Secrets or make us overwrite something else.
 */
export function outputDirProblem(dir: string, opts: { mayBeMissing?: boolean } = {}): string | undefined {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && opts.mayBeMissing) return undefined;
    return `cannot use ${dir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  if (st.isSymbolicLink()) return `${dir} is a symlink; render never follows links: give the folder itself`;
  if (!st.isDirectory()) return `${dir} is not a folder`;
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    return `${dir} belongs to another user (uid ${st.uid}); render writes Secrets only into a folder of its own`;
  if ((st.mode & 0o022) !== 0) {
    return `${dir} can be written by ${st.mode & 0o002 ? 'everyone' : 'its group'} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}); render writes Secrets only where nobody else can (chmod go-w)`;
  }
  return undefined;
}

/**
 * Writes a file atomically without ever following a link: the temp file has a random name and is created with
 * O_CREAT|O_EXCL|O_NOFOLLOW (a planted file or link there makes the open fail, nothing is written through it), gets
 * its mode on the open descriptor, and is renamed over `path` (rename replaces a link at `path`, never its target).
 */
export function writeExclusive(path: string, content: string, mode: number): void {
  const dir = path.slice(0, path.lastIndexOf('/'));
  const name = path.slice(path.lastIndexOf('/') + 1);
  const tmp = `${dir}/.${name}.runner-fleet-${randomBytes(8).toString('hex')}.tmp`;
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    fchmodSync(fd, mode);
    const data = Buffer.from(content, 'utf8');
    for (let off = 0; off < data.length;) off += writeSync(fd, data, off);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** The first line of a regular file, read without following a link (O_NOFOLLOW); undefined for anything else. */
function firstLineOf(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8').split('\n', 1)[0];
  } finally {
    closeSync(fd);
  }
}

function firstLines(dir: string): { name: string; firstLine: string }[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.name.endsWith('.yaml') && e.isFile()) // a link is not a file render wrote
    .flatMap((e) => {
      const firstLine = firstLineOf(join(dir, e.name));
      return firstLine === undefined ? [] : [{ name: e.name, firstLine }];
    });
}

export interface WrittenOutput {
  removed: string[];
  secretsFile?: string;
  /** .gitignore was a link or not a file: left alone, the user must list secrets.yaml themselves */
  gitignoreSkipped?: string;
}

/** Writes the rendered files into `out` (created 0700 if missing), removes our stale ones, lists secrets.yaml in .gitignore. */
export function writeRenderOutput(out: string, files: ManifestFile[]): WrittenOutput {
  const before = outputDirProblem(out, { mayBeMissing: true });
  if (before) throw new InputError([`--out: ${before}`], 'cannot render');
  mkdirSync(out, { recursive: true, mode: 0o700 });
  // Again after mkdir: the folder may have appeared (someone else's) between the check and the mkdir.
  const after = outputDirProblem(out);
  if (after) throw new InputError([`--out: ${after}`], 'cannot render');
  const removed = staleFiles(firstLines(out), files);
  // Subfolders first: a bad one (a planted link) stops render before any file is written.
  for (const sub of new Set(files.filter((f) => f.name.includes('/')).map((f) => dirname(f.name))))
    ensureSubfolder(out, sub);
  for (const f of files) writeExclusive(join(out, f.name), f.content, f.mode);
  for (const name of removed) rmSync(join(out, name), { force: true });
  if (!files.some((f) => f.plainSecret)) return { removed };
  const secretsFile = join(out, SECRETS_FILE);
  const gitignore = join(out, GITIGNORE);
  let st: Stats | undefined;
  try {
    st = lstatSync(gitignore);
  } catch {
    st = undefined;
  }
  if (st && !st.isFile()) return { removed, secretsFile, gitignoreSkipped: gitignore };
  const current = st ? readWhole(gitignore) : undefined;
  const next = gitignoreWith(current);
  if (next !== undefined) writeExclusive(gitignore, next, 0o644);
  return { removed, secretsFile };
}

/** A folder below `out` (argocd/), held to the same rules as `out`: ours, nobody else's to write, not a link. */
function ensureSubfolder(out: string, rel: string): void {
  const dir = join(out, rel);
  const before = outputDirProblem(dir, { mayBeMissing: true });
  if (before) throw new InputError([`--out: ${before}`], 'cannot render');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const after = outputDirProblem(dir);
  if (after) throw new InputError([`--out: ${after}`], 'cannot render');
}

function readWhole(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf))
      chunks.push(Buffer.from(buf.subarray(0, n)));
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The cluster's nodes and each one's architecture; refuses (nothing changed) what apply would refuse before GitLab. */
async function checkCluster(
  ctx: RunContext,
  client: KubeClient,
): Promise<{ nodes: NodeInfo[]; archOf: (node: string) => string }> {
  const inv = ctx.inventory;
  const nodes = await client.listNodes();
  const archByNode = new Map(nodes.map((n) => [n.name, n.labels['kubernetes.io/arch']]));
  const archOf = (node: string) => archByNode.get(node) ?? 'arm64';
  const issues: string[] = [];
  const missing = inv.nodes.filter((n) => !nodes.some((c) => c.name === n.name)).map((n) => n.name);
  if (missing.length > 0) issues.push(`inventory nodes not in the cluster: ${missing.join(', ')}`);
  const check = await checkBeforeGitlab(client, inv, nodes, archOf);
  if (check.refused) issues.push(check.refused);
  for (const [node, why] of check.unfit) issues.push(`${node}: ${describeUnfit(why)}`);
  if (issues.length > 0)
    throw new RunFailedError(`${issues.join('; ')}; nothing changed in GitLab and nothing was written`);
  return { nodes, archOf };
}

/** GitLab as the inventory says (apply's reconcile): new runners registered, settings updated, deletes held. */
async function convergeGitlab(ctx: RunContext, client: KubeClient): Promise<ReconcileResult> {
  const inv = ctx.inventory;
  ctx.log.progress('gitlab', `reconciling runners at ${inv.gitlab.url} (${inv.gitlab.auth.kind})`);
  const reconciled = await reconcileClusterRunners(ctx, client);
  // Each error and warning is logged as it lands (RunReport).
  if (reconciled.errors.length > 0) {
    throw new RunFailedError(
      `GitLab: ${reconciled.errors.map((e) => `${e.node}: ${e.message}`).join('; ')}; nothing was written (what changed in GitLab is kept: render again)`,
    );
  }
  return reconciled;
}

/** The node label (kubernetes.nodeLabel) on the nodes with a runner, off the others: the DaemonSet follows it. */
async function labelNodes(
  ctx: RunContext,
  client: KubeClient,
  nodes: NodeInfo[],
  wanted: string[],
): Promise<string[]> {
  const inv = ctx.inventory;
  const plan = planNodeLabels({
    nodes,
    wanted,
    key: inv.kubernetes.nodeLabel,
    namespace: inv.kubernetes.namespace,
  });
  const done: string[] = [];
  for (const a of [...plan.before, ...plan.after]) {
    await client.applyNodeLabels(a);
    ctx.log.change('cluster', a.detail);
    done.push(a.detail);
  }
  return done;
}

/**
 * The held deletes that may run now (see retireVerdict), after waiting (kubernetes.rolloutTimeout at most) for the
 * pods of removed nodes to finish their jobs and go. Returns what stays for the next render, said plainly.
 */
async function retireWhatMay(
  ctx: RunContext,
  client: KubeClient,
  reconciled: ReconcileResult,
): Promise<string[]> {
  const inv = ctx.inventory;
  const ns = inv.kubernetes.namespace;
  const held = reconciled.held();
  if (held.length === 0) return [];
  const inventory = new Set(inv.nodes.map((n) => n.name));
  const removed = [...new Set(held.filter((h) => !inventory.has(h.node)).map((h) => h.node))];
  const timeoutSeconds = inv.kubernetes.rolloutTimeout;
  if (removed.length > 0)
    ctx.log.progress(
      'cluster',
      `waiting up to ${timeoutSeconds}s for the runner pods on ${removed.join(', ')} to finish their jobs and go`,
    );
  const podsLeft = await waitForPodsGone(client, ns, removed, { timeoutSeconds });
  const scene = { inventory, podsLeft, liveConfig: await client.readSecretData(ns, CONFIG_SECRET) };
  const later = new Map(held.map((h) => [h, retireVerdict(h, scene)]));
  await reconciled.retire((h) => later.get(h)?.now === true);
  const pending: string[] = [];
  for (const [h, v] of later) {
    if (v.now) continue;
    const line = `${h.node}: runner #${h.rec.id ?? '?'} stays in GitLab for now: ${v.why}; the next render deletes it once that is done (an apply deletes it after its own rollout)`;
    ctx.log.warn('gitlab', line);
    pending.push(line);
  }
  for (const e of reconciled.errors)
    pending.push(`${e.node}: the delete failed (${e.message}); the next render tries again`);
  return pending;
}

export async function runRender(given: RunContext, opts: RenderOptions): Promise<RenderResult> {
  // Every secret reference read once, before anything is contacted (bad ones: exit 2).
  const inv = await readInventorySecrets(given.inventory);
  const ctx: RunContext = { ...given, inventory: inv };
  const { log } = ctx;
  const out = resolve(opts.out);
  const ns = inv.kubernetes.namespace;

  log.progress(
    'cluster',
    `reading the nodes of the cluster and the runner records in Secret ${ns}/${RECORDS_SECRET}`,
  );
  const client = await ctx.cluster();
  const { nodes, archOf } = await checkCluster(ctx, client);
  log.done?.('cluster', true, `${nodes.length} node(s)`);
  const seal = opts.seal || opts.sealCert !== undefined;
  const tmp =
    seal && opts.sealCert === undefined ? mkdtempSync(join(tmpdir(), 'runner-fleet-cert-')) : undefined;
  try {
    // The controller's certificate before GitLab changes: a controller that is not there fails with nothing changed.
    const cert = tmp ? await fetchSealingCert(await sealOptions(ctx, opts), tmp) : opts.sealCert;
    const reconciled = await convergeGitlab(ctx, client);
    // The same function apply uses, then the same renderer convergeCluster uses.
    const desired = desiredCluster({
      inventory: inv,
      executor: inv.runners.executor,
      records: reconciled.records,
      arch: archOf,
    });
    const written = await writeFiles(ctx, opts, out, desired, cert);
    const labels = await labelNodes(
      ctx,
      client,
      nodes,
      desired.inventory.nodes.map((n) => n.name),
    );
    const pending = await retireWhatMay(ctx, client, reconciled);
    log.done?.('render', true, `${written.files.length} file(s) in ${out}`);
    return {
      ...written,
      gitlab: reconciled.changes.map((c) => ({ step: c.step, detail: c.detail })),
      labels,
      pending,
    };
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

async function sealOptions(ctx: RunContext, opts: RenderOptions): Promise<SealOptions> {
  const inv = ctx.inventory;
  return {
    kubeseal: opts.kubeseal!,
    controller: {
      name: inv.kubernetes.sealedSecrets.controllerName,
      namespace: inv.kubernetes.sealedSecrets.controllerNamespace,
    },
    kubeconfigText: await ctx.kubeconfigText(),
    kubeconfig: inv.kubernetes.kubeconfig,
    context: inv.kubernetes.context,
    log: ctx.log,
  };
}

/** The files, sealed or with secrets.yaml, written into `out`; nothing is written when any check fails. */
async function writeFiles(
  ctx: RunContext,
  opts: RenderOptions,
  out: string,
  desired: DesiredCluster,
  cert: string | undefined,
): Promise<Omit<RenderResult, 'gitlab' | 'labels' | 'pending'>> {
  const { inventory: inv, log } = ctx;
  const ns = inv.kubernetes.namespace;
  const objects = renderClusterObjects(desired);
  const sealed =
    cert !== undefined
      ? await sealSecrets(objects, { kubeseal: opts.kubeseal!, cert, log, previous: previousSealings(out) })
      : undefined;
  const source = `${inv.source}, executor ${inv.runners.executor}`;
  const files = manifestFiles(objects, { source, sealed });
  if (opts.argocd) files.push(applicationFile(opts.argocd, ns, source));
  if (opts.flux) files.push(fluxFile(opts.flux, ns, source), kustomizeFile(files, source));

  // Belt and braces: renderClusterObjects already refuses tokens outside Secrets.
  const tokens = Object.values(desired.tokens).filter((t) => t.length >= 4);
  for (const f of files) {
    if (!f.plainSecret && tokens.some((t) => f.content.includes(t)))
      throw new RunFailedError(`render: ${f.name} would contain a runner token; nothing was written`);
  }

  const { removed, secretsFile, gitignoreSkipped } = writeRenderOutput(out, files);
  if (gitignoreSkipped)
    log.warn(
      'render',
      `${gitignoreSkipped} is not a plain file; render left it alone: make sure ${SECRETS_FILE} is git-ignored`,
    );
  if (secretsFile) {
    log.warn(
      'render',
      `${secretsFile} holds the runner tokens in plain text (mode 0600, listed in ${join(out, GITIGNORE)}): never commit it; apply it out of band, or use --seal with kubeseal`,
    );
  }
  if (opts.flux && secretsFile) {
    log.warn(
      'render',
      `Flux applies only what is in git, and ${SECRETS_FILE} never is: apply it once out of band, or render with --seal so the Secrets go to git sealed`,
    );
  }
  if (opts.argocd && secretsFile) {
    log.warn(
      'render',
      `Argo CD deploys only what is in git, and ${SECRETS_FILE} never is: apply it once out of band, or render with --seal so the Secrets go to git sealed`,
    );
  }
  return {
    ok: true,
    out,
    files: files.map((f) => ({ name: f.name, plainSecret: f.plainSecret })),
    removed,
    ...(secretsFile ? { secretsFile } : {}),
    ...(opts.argocd ? { application: join(out, APPLICATION_FILE) } : {}),
    ...(opts.flux ? { fluxSync: join(out, FLUX_FILE) } : {}),
  };
}

export function formatRenderSummary(r: RenderResult): string {
  const lines = r.files.map(
    (f) => `  ${f.name}${f.plainSecret ? '   (plain-text Secrets: git-ignored, do not commit)' : ''}`,
  );
  for (const name of r.removed) lines.push(`  ${name}   (removed: no longer rendered)`);
  const done = [
    ...r.gitlab.map((c) => `  GitLab: ${c.detail}`),
    ...r.labels.map((l) => `  cluster: ${l}`),
    ...r.pending.map((p) => `  left for the next render: ${p}`),
  ];
  const how = r.fluxSync
    ? `Commit and push ${r.out} (${SECRETS_FILE} stays out); the first time, hand it to Flux once: kubectl apply -f ${r.fluxSync}`
    : r.application
      ? `Commit and push ${r.out} (${SECRETS_FILE} stays out); the first time, hand it to Argo CD once: kubectl apply -f ${r.application}`
      : `Apply with: kubectl apply --server-side --field-manager=runner-fleet -f ${r.out}${r.secretsFile ? ` (secrets.yaml included)` : ''}`;
  const changed = done.length > 0 ? `${done.join('\n')}\n` : '';
  return redact(`Rendered into ${r.out}:\n${lines.join('\n')}\n${changed}${how}`);
}
