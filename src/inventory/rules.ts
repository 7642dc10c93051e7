// Cross-field checks of the inventory, after fields.ts checked each field: tokens, placement and executor,
// duplicate nodes, cluster access and the limits of GitLab and Kubernetes that depend on several fields.
import { hostIdentity, registryIdentity } from './addresses.js';
import {
  EXECUTORS,
  LIMITS,
  PLACEMENTS,
  charCount,
  defaultNodeLabel,
  describe,
  type FieldIssue,
  type InventoryFile,
} from './fields.js';
import { dockerBytes, quantityValue } from './quantities.js';
import type { Executor, Placement } from './types.js';

export interface ParseOptions {
  /** CLI overrides, validated like inventory values */
  executor?: string;
  placement?: string;
}

/**
 * What the rules see: the field-checked file, and whether a path is free of field issues. A value is read only
 * where `ok` says so, because under a failed field the output still holds the raw input.
 */
export class RuleContext {
  /** the fields' issues only: what a rule adds does not hide the fields other rules read */
  private readonly fieldIssues: readonly FieldIssue[];

  constructor(
    readonly file: InventoryFile,
    readonly issues: FieldIssue[],
  ) {
    this.fieldIssues = [...issues];
  }

  fail(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  /** No issue on, above or under any of these paths: the value there is what fields.ts says it is. */
  ok(...paths: string[]): boolean {
    return paths.every((p) => !this.fieldIssues.some((i) => under(i.path, p) || under(p, i.path)));
  }

  /** An issue on this path or above it: the value there is not even the right shape (a list's items may still be). */
  reported(path: string): boolean {
    return this.fieldIssues.some((i) => under(path, i.path));
  }
}

/** `path` is `ancestor` or lies under it. */
function under(path: string, ancestor: string): boolean {
  return (
    ancestor === '' || path === ancestor || path.startsWith(`${ancestor}.`) || path.startsWith(`${ancestor}[`)
  );
}

export interface Choices {
  executor: Executor;
  placement: Placement;
}

/** Runs every rule, adding issues to `ctx`; returns the executor and placement after the command line's overrides. */
export function checkRules(ctx: RuleContext, opts: ParseOptions = {}): Choices {
  gitlabRules(ctx);
  nodeRules(ctx);
  kubernetesRules(ctx);
  const choices = choiceRules(ctx, opts);
  packageRepositoryRules(ctx);
  pullPolicyRules(ctx);
  sizeRules(ctx);
  versionRules(ctx);
  podRules(ctx);
  dockerRules(ctx);
  contactRules(ctx);
  return choices;
}

const TOKENS = ['accessToken', 'runnerToken', 'registrationToken'] as const;

function gitlabRules(ctx: RuleContext): void {
  // A missing or mistyped gitlab is reported already; otherwise each field is compared only where it is fine.
  if (ctx.reported('gitlab')) return;
  const g = ctx.file.gitlab;
  const set = TOKENS.filter((k) => ctx.ok(`gitlab.${k}`) && g[k] !== undefined);
  if (set.length > 1) ctx.fail('gitlab', `set only one of ${TOKENS.join(', ')} (got ${set.join(', ')})`);
  if (ctx.ok('gitlab.runnerType')) {
    if (g.runnerType === 'group_type' && ctx.ok('gitlab.groupId') && g.groupId === undefined)
      ctx.fail('gitlab.groupId', 'is required when runnerType is group_type');
    if (g.runnerType === 'project_type' && ctx.ok('gitlab.projectId') && g.projectId === undefined)
      ctx.fail('gitlab.projectId', 'is required when runnerType is project_type');
  }
  registryRules(ctx);
}

/**
 * One registry spelled two ways is bad input, not something to pick from: dockerd matches an image's registry
 * against insecure-registries by exact spelling (moby registry/config.go, newIndexInfo), so only the spelling the
 * CI jobs use works, and runner-fleet cannot know which one that is. The same spelling twice is simply one.
 */
function registryRules(ctx: RuleContext): void {
  if (ctx.reported('gitlab.registry')) return;
  const seen = new Map<string, { index: number; value: string }>();
  ctx.file.gitlab.registry.forEach((value, i) => {
    if (!ctx.ok(`gitlab.registry[${i}]`)) return;
    const key = registryIdentity(value);
    const first = seen.get(key);
    if (!first) return void seen.set(key, { index: i, value });
    if (first.value !== value)
      ctx.fail(
        `gitlab.registry[${i}]`,
        `${value} is gitlab.registry[${first.index}] (${first.value}) again: host names are case-insensitive and a port is its number; list it once, spelled as your CI jobs spell it (dockerd matches insecure-registries entries by exact spelling)`,
      );
  });
}

function nodeRules(ctx: RuleContext): void {
  if (ctx.reported('nodes')) return;
  const ssh = ctx.ok('ssh.port') ? ctx.file.ssh.port : undefined;
  const names = new Map<string, number>();
  const hosts = new Map<string, { index: number; host: string }>();
  ctx.file.nodes.forEach((node, i) => {
    const p = `nodes[${i}]`;
    if (ctx.ok(`${p}.name`)) {
      const other = names.get(node.name);
      if (other !== undefined)
        ctx.fail(`${p}.name`, `duplicate node name "${node.name}" (also nodes[${other}])`);
      else names.set(node.name, i);
    }
    const port = ctx.ok(`${p}.port`) ? (node.port ?? ssh) : undefined;
    if (ctx.ok(`${p}.host`) && port !== undefined) {
      // By what the address reaches: `localhost` and `127.0.0.1` on one port are one sshd, so one node.
      const key = `${hostIdentity(node.host)}:${port}`;
      const other = hosts.get(key);
      if (other)
        ctx.fail(
          `${p}.host`,
          `duplicate host ${node.host}:${port} (also nodes[${other.index}]${other.host === node.host ? '' : `, as ${other.host}: the same address`})`,
        );
      else hosts.set(key, { index: i, host: node.host });
    }
  });
}

function kubernetesRules(ctx: RuleContext): void {
  if (!ctx.ok('kubernetes.kubeconfig', 'kubernetes.fromNode')) return;
  const k = ctx.file.kubernetes;
  if (k.kubeconfig && k.fromNode) ctx.fail('kubernetes', 'set kubeconfig or fromNode, not both');
  if (
    k.fromNode &&
    !(
      !ctx.reported('nodes') &&
      ctx.file.nodes.some((n, i) => ctx.ok(`nodes[${i}].name`) && n.name === k.fromNode)
    )
  ) {
    ctx.fail('kubernetes.fromNode', `no node named "${k.fromNode}" in nodes`);
  }
}

function choiceRules(ctx: RuleContext, opts: ParseOptions): Choices {
  const r = ctx.file.runners;
  let executor: Executor = ctx.ok('runners.executor') ? r.executor : 'dood';
  if (opts.executor !== undefined) {
    if (!EXECUTORS.includes(opts.executor as Executor))
      ctx.fail('--executor', `expected ${EXECUTORS.join(' | ')}, got ${describe(opts.executor)}`);
    else executor = opts.executor as Executor;
  }
  let placement: Placement = ctx.ok('runners.placement') ? r.placement : 'cluster';
  if (opts.placement !== undefined) {
    if (!PLACEMENTS.includes(opts.placement as Placement))
      ctx.fail('--placement', `expected ${PLACEMENTS.join(' | ')}, got ${describe(opts.placement)}`);
    else placement = opts.placement as Placement;
  }
  if (placement === 'host' && executor !== 'shell' && ctx.ok('runners.executor', 'runners.placement')) {
    ctx.fail(
      opts.placement !== undefined ? '--placement' : 'runners.placement',
      `host placement needs the shell executor (executor is ${executor})`,
    );
  }
  return { executor, placement };
}

function packageRepositoryRules(ctx: RuleContext): void {
  const path = 'runners.packageRepository';
  if (!ctx.ok(path)) return;
  const repo = ctx.file.runners.packageRepository;
  if (repo.key !== undefined && repo.fingerprint === undefined) {
    ctx.fail(
      `${path}.fingerprint`,
      'is required when key is set (runner-fleet refuses a key whose fingerprint it cannot check)',
    );
  }
}

/** Each policy at most once; the problem is named at the repeated entry. */
function pullPolicyRules(ctx: RuleContext): void {
  const list = ctx.file.runners?.pullPolicy;
  if (!Array.isArray(list) || list.length < 2) return;
  const seen = new Set<string>();
  list.forEach((policy, i) => {
    const p = `runners.pullPolicy[${i}]`;
    if (!ctx.ok(p)) return;
    if (seen.has(policy)) ctx.fail(p, `${policy} is listed twice`);
    seen.add(policy);
  });
}

/** Sizes that would fail only in GitLab or Kubernetes, after other changes: checked here instead. */
function sizeRules(ctx: RuleContext): void {
  if (!ctx.ok('runners.tags', 'runners.description') || ctx.reported('nodes')) return;
  const r = ctx.file.runners;
  if (r.tags.length > LIMITS.tags)
    ctx.fail('runners.tags', `${r.tags.length} tags; GitLab allows at most ${LIMITS.tags}`);
  const names = ctx.file.nodes.filter((_, i) => ctx.ok(`nodes[${i}].name`)).map((n) => n.name);
  const longest = names.reduce((m, n) => (n.length > m.length ? n : m), '');
  const expanded = charCount(r.description.split('{node}').join(longest));
  if (expanded > LIMITS.description) {
    ctx.fail(
      'runners.description',
      `is ${expanded} characters long for node ${longest}; GitLab allows at most ${LIMITS.description}`,
    );
  }
  const url = ctx.ok('gitlab.url') ? ctx.file.gitlab.url : '';
  const registries = ctx.ok('gitlab.registry') ? ctx.file.gitlab.registry : [];
  const images = (['image', 'jobImage', 'dindImage'] as const)
    .filter((k) => ctx.ok(`runners.${k}`))
    .map((k) => r[k] ?? '');
  const bytes = estimateSecretBytes({
    names,
    description: r.description,
    tags: r.tags,
    url,
    images,
    registries,
  });
  if (bytes > LIMITS.secretBytes) {
    ctx.fail(
      'nodes',
      `${ctx.file.nodes.length} nodes with these settings need about ${Math.ceil(bytes / 1024)} KiB in one Secret; Kubernetes allows at most 1 MiB`,
    );
  }
}

/** Upper estimate of the bytes the per-node Secrets hold (config.toml and records, base64), to fail before contact. */
function estimateSecretBytes(inv: {
  names: string[];
  description: string;
  tags: string[];
  url: string;
  images: string[];
  registries: string[];
}): number {
  const longest = inv.names.reduce((m, n) => Math.max(m, n.length), 0);
  const description = inv.description.split('{node}').join('x'.repeat(longest)).length;
  // ~1 KiB of fixed config.toml text and token/system id, plus every value that lands in it.
  const perNode =
    1024 +
    description +
    inv.url.length +
    inv.images.reduce((a, i) => a + i.length, 0) +
    inv.registries.reduce((a, r) => a + r.length + 40, 0) +
    longest * 2;
  // The records hold each node's settings (description, tags) besides its token.
  const perRecord = 512 + description + inv.tags.reduce((a, t) => a + t.length + 3, 0) + longest;
  return Math.ceil((Math.max(perNode, perRecord) * inv.names.length * 4) / 3);
}

/** `{version}` in the image and runners.version go together: one version for pods and hosts. */
function versionRules(ctx: RuleContext): void {
  if (!ctx.ok('runners.version', 'runners.image', 'runners.helperImage')) return;
  const { version, image, helperImage } = ctx.file.runners;
  if (version !== undefined && image !== undefined && !image.includes('{version}')) {
    ctx.fail(
      'runners.image',
      'put {version} in the tag (e.g. registry.lan/gitlab-runner:alpine-v{version}) or drop runners.version: the pods must run the version the hosts install',
    );
  }
  if (version === undefined) {
    if (image?.includes('{version}')) ctx.fail('runners.image', '{version} needs runners.version');
    if (helperImage?.includes('{version}'))
      ctx.fail(
        'runners.helperImage',
        '{version} needs runners.version (or use ${CI_RUNNER_VERSION}, which gitlab-runner fills in)',
      );
  }
}

/** What the apiserver would refuse in the runner pod spec, found before anything changes. */
function podRules(ctx: RuleContext): void {
  const r = ctx.file.runners;
  if (ctx.ok('runners.resources')) {
    for (const kind of ['cpu', 'memory'] as const) {
      const request = r.resources.requests?.[kind];
      const limit = r.resources.limits?.[kind];
      if (request !== undefined && limit !== undefined && quantityValue(request) > quantityValue(limit)) {
        ctx.fail(
          `runners.resources.requests.${kind}`,
          `${request} is more than the limit ${limit} (Kubernetes refuses a request above its limit)`,
        );
      }
    }
  }
  if (
    ctx.ok('runners.jobResources.memory') &&
    r.jobResources?.memory !== undefined &&
    dockerBytes(r.jobResources.memory) < 6 * 1024 * 1024
  ) {
    ctx.fail(
      'runners.jobResources.memory',
      `${r.jobResources.memory} is below Docker's minimum memory limit (6m)`,
    );
  }
  if (!ctx.reported('runners.tolerations')) {
    r.tolerations.forEach((t, i) => {
      const p = `runners.tolerations[${i}]`;
      if (!ctx.ok(p)) return;
      if (t.operator === 'Exists' && t.value !== undefined)
        ctx.fail(`${p}.value`, 'must be empty with operator Exists');
      if (t.key === undefined && t.operator !== 'Exists')
        ctx.fail(
          `${p}.operator`,
          'a toleration without a key must use operator Exists (it tolerates every taint)',
        );
      if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute')
        ctx.fail(`${p}.tolerationSeconds`, 'applies only with effect NoExecute');
    });
  }
  const k = ctx.file.kubernetes;
  const nodeLabel = k.nodeLabel ?? defaultNodeLabel(k.namespace);
  if (
    ctx.ok('runners.nodeSelector', 'kubernetes.nodeLabel', 'kubernetes.namespace') &&
    Object.hasOwn(r.nodeSelector, nodeLabel)
  ) {
    ctx.fail(
      `runners.nodeSelector`,
      `${nodeLabel} is kubernetes.nodeLabel, which runner-fleet sets on inventory nodes itself`,
    );
  }
}

/** Log options dockerd would refuse to start with. */
/**
 * The local driver compresses rotated files unless told not to, and refuses compression with a single file when a
 * container starts (moby daemon/logger/local/config.go validateConfig), not when dockerd starts: every container,
 * CI jobs included, would then fail to start while dockerd looks healthy.
 */
export const LOCAL_ONE_FILE =
  '1 with the local driver: every container start would fail ("compression cannot be enabled when max file count is 1": the local driver compresses rotated files by default), while dockerd itself starts fine; use maxFile 2 or more';

function dockerRules(ctx: RuleContext): void {
  if (!ctx.ok('docker.logs')) return;
  const logs = ctx.file.docker.logs;
  if (!logs) return;
  const opts = [logs.maxSize !== undefined && 'maxSize', logs.maxFile !== undefined && 'maxFile']
    .filter(Boolean)
    .join(' and ');
  if (opts && logs.driver !== 'json-file' && logs.driver !== 'local') {
    ctx.fail(
      'docker.logs.driver',
      `${opts} need${opts.includes(' and ') ? '' : 's'} driver json-file or local (other log drivers refuse these log-opts, and dockerd would not start)`,
    );
  }
  if (logs.driver === 'local' && logs.maxFile === 1) {
    ctx.fail('docker.logs.maxFile', LOCAL_ONE_FILE);
  }
  if (logs.driver === 'json-file' && (logs.maxFile ?? 1) > 1 && logs.maxSize === undefined) {
    ctx.fail('docker.logs.maxFile', 'needs maxSize with the json-file driver (it rotates only by size)');
  }
}

/** A runner asks for jobs every checkInterval seconds: a shorter wait for its first contact could never see one. */
function contactRules(ctx: RuleContext): void {
  if (!ctx.ok('runners.contactTimeout', 'runners.checkInterval')) return;
  const { contactTimeout, checkInterval } = ctx.file.runners;
  if (contactTimeout > 0 && contactTimeout < checkInterval)
    ctx.fail(
      'runners.contactTimeout',
      `${contactTimeout} s is shorter than runners.checkInterval (${checkInterval} s), how often a runner asks GitLab for jobs; use 0 to skip the wait`,
    );
}
