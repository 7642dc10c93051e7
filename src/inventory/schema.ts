// Parses and validates inventory YAML into an Inventory; every problem names its path (`nodes[2].docker: …`).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { hostIdentity, registryProblem } from './addresses.js';
import { InputError } from '../errors.js';
import {
  EXECUTORS,
  GITLAB_RUNNER_REPOSITORY,
  PLACEMENTS,
  PULL_POLICIES,
  DIND_SERVICES,
  type AccessLevel,
  type DindService,
  type DockerChoice,
  type Executor,
  type GitlabAuth,
  type Inventory,
  type NodeSpec,
  type PackageRepository,
  type Placement,
  type PullPolicy,
  type RunnerType,
  type SecretRef,
} from './types.js';

type Obj = Record<string, unknown>;

const DEFAULT_IMAGES = {
  image: 'gitlab/gitlab-runner:alpine-v17.11.0',
  jobImage: 'alpine:3.20',
  dindImage: 'docker:27-dind',
  dockerCliImage: 'docker:27-cli',
};

/** Collects issues while reading an untyped tree; each accessor names the path it reads. */
class Reader {
  readonly issues: string[] = [];

  fail(path: string, message: string): void {
    this.issues.push(`${path}: ${message}`);
  }

  object(value: unknown, path: string, allowed: readonly string[], required = false): Obj | undefined {
    if (value === undefined || value === null) {
      if (required) this.fail(path, 'is required');
      return undefined;
    }
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.fail(path, `expected a mapping, got ${describe(value)}`);
      return undefined;
    }
    const obj = value as Obj;
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) this.fail(join(path, key), `unknown key (allowed: ${allowed.join(', ')})`);
    }
    return obj;
  }

  string(obj: Obj | undefined, key: string, path: string, opts: { required?: boolean; pattern?: RegExp; hint?: string; max?: number } = {}): string | undefined {
    const value = obj?.[key];
    const p = join(path, key);
    if (value === undefined || value === null) {
      if (opts.required) this.fail(p, 'is required');
      return undefined;
    }
    if (typeof value !== 'string' || value.trim() === '') {
      this.fail(p, `expected a non-empty string, got ${describe(value)}`);
      return undefined;
    }
    if (LONE_SURROGATE.test(value)) {
      this.fail(p, 'holds half a UTF-16 character (a YAML \\u escape of a lone surrogate); no file can carry it');
      return undefined;
    }
    if (opts.max !== undefined && charCount(value) > opts.max) {
      this.fail(p, `is ${charCount(value)} characters long; at most ${opts.max} allowed`);
      return undefined;
    }
    if (opts.pattern && !opts.pattern.test(value)) {
      this.fail(p, opts.hint ?? `does not match ${opts.pattern}`);
      return undefined;
    }
    return value;
  }

  int(obj: Obj | undefined, key: string, path: string, min: number, max: number): number | undefined {
    const value = obj?.[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(join(path, key), `expected an integer from ${min} to ${max}, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  bool(obj: Obj | undefined, key: string, path: string): boolean | undefined {
    const value = obj?.[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') {
      this.fail(join(path, key), `expected true or false, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  oneOf<T extends string>(obj: Obj | undefined, key: string, path: string, choices: readonly T[]): T | undefined {
    const value = obj?.[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || !choices.includes(value as T)) {
      this.fail(join(path, key), `expected ${choices.join(' | ')}, got ${describe(value)}`);
      return undefined;
    }
    return value as T;
  }

  stringList(obj: Obj | undefined, key: string, path: string, item?: { pattern: RegExp; hint: string } | { check: (v: string) => string | undefined }): string[] | undefined {
    const value = obj?.[key];
    if (value === undefined || value === null) return undefined;
    const list = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(list)) {
      this.fail(join(path, key), `expected a list of strings, got ${describe(value)}`);
      return undefined;
    }
    const out: string[] = [];
    list.forEach((v, i) => {
      const p = typeof value === 'string' ? join(path, key) : `${join(path, key)}[${i}]`;
      if (typeof v !== 'string' || v.trim() === '') this.fail(p, `expected a non-empty string, got ${describe(v)}`);
      else if (LONE_SURROGATE.test(v)) this.fail(p, 'holds half a UTF-16 character (a YAML \\u escape of a lone surrogate); no file can carry it');
      else {
        const problem = item && ('check' in item ? item.check(v) : item.pattern.test(v) ? undefined : item.hint);
        if (problem) this.fail(p, problem);
        else out.push(v);
      }
    });
    return out;
  }

  secret(obj: Obj | undefined, key: string, path: string): SecretRef | undefined {
    const value = obj?.[key];
    if (value === undefined || value === null) return undefined;
    const p = join(path, key);
    if (typeof value !== 'string' || !/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$/.test(value)) {
      // Never echo the value: it may be a pasted token.
      this.fail(p, 'expected a reference `env:NAME` or `file:PATH` (secrets are never written inline)');
      return undefined;
    }
    return { ref: value, path: p };
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Characters as GitLab (Ruby) and Kubernetes count them: code points, not UTF-16 units. */
function charCount(value: string): number {
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** RFC 1123 label: a Kubernetes namespace name (no dots, at most 63 characters). */
const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A label key: optional DNS-subdomain prefix (at most 253) and `/`, then a name of at most 63 characters. */
const LABEL_KEY = /^(?:(?=[a-z0-9.-]{1,253}\/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(?=[A-Za-z0-9._-]{1,63}$)[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** Limits of the systems the values end up in, checked before anything is contacted. */
export const LIMITS = {
  /** GitLab app/models/ci/runner.rb: `validates :description, length: { maximum: 1024 }` */
  description: 1024,
  /** GitLab Ci::Runner::TAG_LIST_MAX_LENGTH */
  tags: 50,
  /** GitLab app/models/ci/tag.rb: `validates :name, length: { maximum: 255 }` */
  tag: 255,
  /** Kubernetes node names are DNS subdomains (253); the config Secret's key `<node>.config.toml` must fit 253 too */
  nodeName: 253 - '.config.toml'.length,
  /** Kubernetes: a Secret holds at most 1 MiB (etcd's request limit) */
  secretBytes: 1024 * 1024,
  /** distribution/reference: 255 for the name, 128 for the tag, plus a digest; generous, only to bound sizes */
  image: 512,
  /** YAML anchors an inventory may dereference: enough for shared defaults, far from an alias bomb */
  aliases: 100,
} as const;

/** Upper estimate of the bytes the per-node Secrets hold (config.toml and records, base64), to fail before contact. */
function estimateSecretBytes(inv: { nodes: { name: string }[]; description: string; tags: string[]; url: string; images: string[]; registries: string[] }): number {
  const longest = inv.nodes.reduce((m, n) => Math.max(m, n.name.length), 0);
  const description = inv.description.split('{node}').join('x'.repeat(longest)).length;
  // ~1 KiB of fixed config.toml text and token/system id, plus every value that lands in it.
  const perNode = 1024 + description + inv.url.length + inv.images.reduce((a, i) => a + i.length, 0) + inv.registries.reduce((a, r) => a + r.length + 40, 0) + longest * 2;
  // The records hold each node's settings (description, tags) besides its token.
  const perRecord = 512 + description + inv.tags.reduce((a, t) => a + t.length + 3, 0) + longest;
  return Math.ceil((Math.max(perNode, perRecord) * inv.nodes.length * 4) / 3);
}

export interface ParseOptions {
  /** CLI overrides, validated like inventory values */
  executor?: string;
  placement?: string;
}

/** Reads, parses and validates an inventory file. Throws InputError listing every problem. */
export function loadInventory(path: string, opts: ParseOptions = {}): Inventory {
  const abs = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(abs);
  } catch (err) {
    throw new InputError([`${path}: cannot read inventory (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  let text: string;
  try {
    // fatal: a byte sequence that is not UTF-8 is an error, not a U+FFFD that ends up in a runner's description.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InputError([`${path}: the inventory is not valid UTF-8 text`], 'inventory is not valid YAML');
  }
  return parseInventory(text, abs, opts);
}

export function parseInventory(text: string, source: string, opts: ParseOptions = {}): Inventory {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new InputError(doc.errors.map((e) => `${source}: YAML ${e.message.split('\n')[0]}`), 'inventory is not valid YAML');
  }
  // YAML 1.2 core schema: `yes`/`no` stay strings, so a typo cannot silently become a boolean.
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: LIMITS.aliases });
  } catch (err) {
    // yaml throws a ReferenceError for "Excessive alias count" (an alias bomb) and for unresolved aliases.
    throw new InputError([`${source}: YAML ${(err as Error).message.split('\n')[0]}`], 'inventory is not valid YAML');
  }
  const r = new Reader();
  const base = dirname(source);
  const expand = (p: string): string => {
    const home = p === '~' || p.startsWith('~/') ? homedir() + p.slice(1) : p;
    return isAbsolute(home) ? home : resolve(base, home);
  };

  const top = r.object(raw, '', ['gitlab', 'ssh', 'nodes', 'kubernetes', 'runners'], true) ?? {};

  // gitlab
  const g = r.object(top.gitlab, 'gitlab', [
    'url', 'registry', 'accessToken', 'runnerToken', 'registrationToken', 'runnerType', 'groupId', 'projectId', 'timeout',
  ], true);
  const url = gitlabUrl(r, g);
  const registries = r.stringList(g, 'registry', 'gitlab', { check: registryProblem }) ?? [];
  if (g && (g.registry === undefined || registries.length === 0) && !r.issues.some((i) => i.startsWith('gitlab.registry'))) {
    r.fail('gitlab.registry', 'is required (one or more host:port)');
  }
  const tokens = (['accessToken', 'runnerToken', 'registrationToken'] as const)
    .map((kind) => ({ kind, token: r.secret(g, kind, 'gitlab') }))
    .filter((t) => t.token !== undefined);
  if (tokens.length > 1) {
    r.fail('gitlab', `set only one of accessToken, runnerToken, registrationToken (got ${tokens.map((t) => t.kind).join(', ')})`);
  }
  const auth: GitlabAuth = tokens.length === 1 ? ({ kind: tokens[0].kind, token: tokens[0].token! } as GitlabAuth) : { kind: 'none' };
  const runnerType = r.oneOf<RunnerType>(g, 'runnerType', 'gitlab', ['instance_type', 'group_type', 'project_type']) ?? 'instance_type';
  const groupId = r.int(g, 'groupId', 'gitlab', 1, Number.MAX_SAFE_INTEGER);
  const projectId = r.int(g, 'projectId', 'gitlab', 1, Number.MAX_SAFE_INTEGER);
  const gitlabTimeout = r.int(g, 'timeout', 'gitlab', 1, 600) ?? 30;
  if (runnerType === 'group_type' && groupId === undefined) r.fail('gitlab.groupId', 'is required when runnerType is group_type');
  if (runnerType === 'project_type' && projectId === undefined) r.fail('gitlab.projectId', 'is required when runnerType is project_type');

  // ssh defaults
  const s = r.object(top.ssh, 'ssh', ['user', 'port', 'identityFile', 'knownHosts', 'connectTimeout']);
  const ssh = {
    user: r.string(s, 'user', 'ssh') ?? 'pi',
    port: r.int(s, 'port', 'ssh', 1, 65535) ?? 22,
    identityFile: expand(r.string(s, 'identityFile', 'ssh') ?? '~/.ssh/id_ed25519'),
    knownHosts: expand(r.string(s, 'knownHosts', 'ssh') ?? '~/.ssh/known_hosts'),
    connectTimeout: r.int(s, 'connectTimeout', 'ssh', 1, 300) ?? 20,
  };

  // nodes
  const nodes: NodeSpec[] = [];
  if (!Array.isArray(top.nodes)) {
    r.fail('nodes', top.nodes === undefined ? 'is required (a list of nodes)' : `expected a list, got ${describe(top.nodes)}`);
  } else {
    if (top.nodes.length === 0) r.fail('nodes', 'is empty');
    const seenNames = new Map<string, number>();
    const seenHosts = new Map<string, { index: number; host: string }>();
    top.nodes.forEach((entry, i) => {
      const p = `nodes[${i}]`;
      const n = r.object(entry, p, ['name', 'host', 'port', 'user', 'identityFile', 'knownHosts', 'docker', 'microk8s'], true);
      if (!n) return;
      const name = r.string(n, 'name', p, { required: true, pattern: NODE_NAME, hint: 'expected a Kubernetes node name (lowercase letters, digits, - and .)', max: LIMITS.nodeName });
      const host = r.string(n, 'host', p, { required: true, pattern: /^[^\s@/]+$/, hint: 'expected a hostname or address' });
      const port = r.int(n, 'port', p, 1, 65535) ?? ssh.port;
      const docker = r.oneOf<DockerChoice>(n, 'docker', p, ['apt', 'snap', 'auto']) ?? 'auto';
      const user = r.string(n, 'user', p) ?? ssh.user;
      const identityFile = r.string(n, 'identityFile', p);
      const knownHosts = r.string(n, 'knownHosts', p);
      const microk8s = r.bool(n, 'microk8s', p) ?? true;
      if (name !== undefined) {
        if (seenNames.has(name)) r.fail(`${p}.name`, `duplicate node name "${name}" (also nodes[${seenNames.get(name)}])`);
        else seenNames.set(name, i);
      }
      if (host !== undefined) {
        // By what the address reaches: `localhost` and `127.0.0.1` on one port are one sshd, so one node.
        const key = `${hostIdentity(host)}:${port}`;
        if (seenHosts.has(key)) {
          const other = seenHosts.get(key)!;
          r.fail(`${p}.host`, `duplicate host ${host}:${port} (also nodes[${other.index}]${other.host === host ? '' : `, as ${other.host}: the same address`})`);
        } else seenHosts.set(key, { index: i, host });
      }
      if (name && host) {
        nodes.push({
          name,
          host,
          port,
          user,
          identityFile: identityFile ? expand(identityFile) : ssh.identityFile,
          knownHosts: knownHosts ? expand(knownHosts) : ssh.knownHosts,
          connectTimeout: ssh.connectTimeout,
          docker,
          microk8s,
        });
      }
    });
  }

  // kubernetes
  const k = r.object(top.kubernetes, 'kubernetes', ['kubeconfig', 'context', 'fromNode', 'namespace', 'rolloutTimeout', 'requestTimeout', 'nodeLabel']);
  const kubeconfig = r.string(k, 'kubeconfig', 'kubernetes');
  const fromNode = r.string(k, 'fromNode', 'kubernetes');
  if (kubeconfig && fromNode) r.fail('kubernetes', 'set kubeconfig or fromNode, not both');
  if (fromNode && !nodes.some((n) => n.name === fromNode)) r.fail('kubernetes.fromNode', `no node named "${fromNode}" in nodes`);
  const kubernetes = {
    kubeconfig: kubeconfig ? expand(kubeconfig) : undefined,
    context: r.string(k, 'context', 'kubernetes'),
    fromNode,
    namespace: r.string(k, 'namespace', 'kubernetes', { pattern: DNS_LABEL, hint: 'expected a Kubernetes namespace name (lowercase letters, digits and -, at most 63 characters)' }) ?? 'gitlab-runner',
    rolloutTimeout: r.int(k, 'rolloutTimeout', 'kubernetes', 1, 3600) ?? 300,
    requestTimeout: r.int(k, 'requestTimeout', 'kubernetes', 1, 600) ?? 30,
    nodeLabel: r.string(k, 'nodeLabel', 'kubernetes', { pattern: LABEL_KEY, hint: 'expected a Kubernetes label key (optional DNS prefix of at most 253 characters and /, then at most 63 letters, digits, -, _ or .)' }) ?? 'runner-fleet.dev/runner',
  };

  // runners
  const ru = r.object(top.runners, 'runners', [
    'executor', 'placement', 'tags', 'description', 'runUntagged', 'locked', 'accessLevel', 'maximumTimeout', 'paused',
    'concurrent', 'checkInterval', 'image', 'jobImage', 'dindImage', 'dockerCliImage', 'packageRepository',
    'helperImage', 'pullPolicy', 'dindService',
  ]);
  let executor = r.oneOf<Executor>(ru, 'executor', 'runners', EXECUTORS) ?? 'dood';
  if (opts.executor !== undefined) {
    if (!EXECUTORS.includes(opts.executor as Executor)) r.fail('--executor', `expected ${EXECUTORS.join(' | ')}, got ${describe(opts.executor)}`);
    else executor = opts.executor as Executor;
  }
  let placement = r.oneOf<Placement>(ru, 'placement', 'runners', PLACEMENTS) ?? 'cluster';
  if (opts.placement !== undefined) {
    if (!PLACEMENTS.includes(opts.placement as Placement)) r.fail('--placement', `expected ${PLACEMENTS.join(' | ')}, got ${describe(opts.placement)}`);
    else placement = opts.placement as Placement;
  }
  if (placement === 'host' && executor !== 'shell') {
    r.fail(opts.placement !== undefined ? '--placement' : 'runners.placement', `host placement needs the shell executor (executor is ${executor})`);
  }
  const packageRepository = readPackageRepository(r, ru, expand);
  const runners = {
    executor,
    placement,
    packageRepository,
    tags: r.stringList(ru, 'tags', 'runners', { check: tagProblem }) ?? [],
    description: r.string(ru, 'description', 'runners', { max: LIMITS.description }) ?? 'runner-fleet {node}',
    runUntagged: r.bool(ru, 'runUntagged', 'runners') ?? false,
    locked: r.bool(ru, 'locked', 'runners') ?? false,
    accessLevel: r.oneOf<AccessLevel>(ru, 'accessLevel', 'runners', ['not_protected', 'ref_protected']) ?? 'not_protected',
    maximumTimeout: r.int(ru, 'maximumTimeout', 'runners', 600, 30 * 24 * 3600),
    paused: r.bool(ru, 'paused', 'runners') ?? false,
    concurrent: r.int(ru, 'concurrent', 'runners', 1, 64) ?? 1,
    checkInterval: r.int(ru, 'checkInterval', 'runners', 1, 3600) ?? 3,
    image: r.string(ru, 'image', 'runners', { max: LIMITS.image }) ?? DEFAULT_IMAGES.image,
    jobImage: r.string(ru, 'jobImage', 'runners', { max: LIMITS.image }) ?? DEFAULT_IMAGES.jobImage,
    dindImage: r.string(ru, 'dindImage', 'runners', { max: LIMITS.image }) ?? DEFAULT_IMAGES.dindImage,
    dockerCliImage: r.string(ru, 'dockerCliImage', 'runners', { max: LIMITS.image }) ?? DEFAULT_IMAGES.dockerCliImage,
    helperImage: r.string(ru, 'helperImage', 'runners', {
      max: LIMITS.image,
      pattern: IMAGE_REF,
      hint: 'expected an image reference without spaces, e.g. registry.lan:5000/gitlab-runner-helper:{arch}-v${CI_RUNNER_VERSION}',
    }),
    pullPolicy: readPullPolicy(r, ru),
    dindService: r.oneOf<DindService>(ru, 'dindService', 'runners', DIND_SERVICES) ?? 'runner',
  };

  checkSizes(r, nodes, runners, url ?? '', registries);

  if (r.issues.length > 0) throw new InputError(r.issues, `${source}: inventory is invalid`);
  return {
    source,
    gitlab: { url: url!.replace(/\/+$/, ''), registries: [...new Set(registries)], auth, runnerType, groupId, projectId, timeout: gitlabTimeout },
    ssh,
    nodes,
    kubernetes,
    runners,
  };
}

/** An image reference as the runner passes it on: no white space or quotes; `{arch}` and `${CI_RUNNER_VERSION}` may stand in it. */
const IMAGE_REF = /^[^\s"'\\]+$/;

/** `runners.pullPolicy`: one policy or a list, each at most once, as gitlab-runner accepts them. */
function readPullPolicy(r: Reader, runners: Obj | undefined): PullPolicy[] | undefined {
  const list = r.stringList(runners, 'pullPolicy', 'runners');
  if (list === undefined) return undefined;
  const path = 'runners.pullPolicy';
  const out: PullPolicy[] = [];
  list.forEach((v, i) => {
    const p = typeof runners?.pullPolicy === 'string' ? path : `${path}[${i}]`;
    if (!PULL_POLICIES.includes(v as PullPolicy)) r.fail(p, `expected ${PULL_POLICIES.join(' | ')}, got ${describe(v)}`);
    else if (out.includes(v as PullPolicy)) r.fail(p, `${v} is listed twice`);
    else out.push(v as PullPolicy);
  });
  if (list.length === 0) r.fail(path, 'expected at least one policy');
  return out;
}

const HTTP_URL = /^https?:\/\/[^\s/]+(\/[^\s]*)?$/;

/**
 * `gitlab.url`: http(s), no user or password in it. Credentials in the URL would be printed in progress, the
 * report and status, and sent to every request's logs: refused before anything is contacted, and never echoed.
 */
function gitlabUrl(r: Reader, g: Obj | undefined): string | undefined {
  const value = r.string(g, 'url', 'gitlab', { required: true, pattern: HTTP_URL, hint: 'expected an http:// or https:// URL', max: 2048 });
  if (value === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    r.fail('gitlab.url', 'expected an http:// or https:// URL');
    return undefined;
  }
  if (parsed.username !== '' || parsed.password !== '' || /^https?:\/\/[^/]*@/.test(value)) {
    r.fail('gitlab.url', 'must not contain a user name or password (user:pass@…); give GitLab a token with accessToken, runnerToken or registrationToken');
    return undefined;
  }
  if (parsed.search !== '' || parsed.hash !== '') {
    r.fail('gitlab.url', 'expected the GitLab base URL, without ?query or #fragment');
    return undefined;
  }
  return value;
}

/** GitLab splits tag_list on commas, and keeps at most 255 characters per tag. */
function tagProblem(tag: string): string | undefined {
  if (!/^[^,\s][^,]*$/.test(tag)) return 'a tag cannot contain a comma or start with a space';
  if (charCount(tag) > LIMITS.tag) return `a tag is at most ${LIMITS.tag} characters (GitLab's limit)`;
  return undefined;
}

/** Sizes that would fail only in GitLab or Kubernetes, after other changes: checked here instead. */
function checkSizes(r: Reader, nodes: NodeSpec[], runners: { description: string; tags: string[]; image: string; jobImage: string; dindImage: string }, url: string, registries: string[]): void {
  if (runners.tags.length > LIMITS.tags) r.fail('runners.tags', `${runners.tags.length} tags; GitLab allows at most ${LIMITS.tags}`);
  const longest = nodes.reduce((m, n) => (n.name.length > m.length ? n.name : m), '');
  const expanded = charCount(runners.description.split('{node}').join(longest));
  if (expanded > LIMITS.description && charCount(runners.description) <= LIMITS.description) {
    r.fail('runners.description', `is ${expanded} characters long for node ${longest}; GitLab allows at most ${LIMITS.description}`);
  }
  const bytes = estimateSecretBytes({ nodes, description: runners.description, tags: runners.tags, url, images: [runners.image, runners.jobImage, runners.dindImage], registries });
  if (bytes > LIMITS.secretBytes) {
    r.fail('nodes', `${nodes.length} nodes with these settings need about ${Math.ceil(bytes / 1024)} KiB in one Secret; Kubernetes allows at most 1 MiB`);
  }
}

/** `runners.packageRepository`: GitLab's repository unless a mirror is named; a different key needs its fingerprint. */
function readPackageRepository(r: Reader, runners: Obj | undefined, expand: (p: string) => string): PackageRepository {
  const path = 'runners.packageRepository';
  const o = r.object(runners?.packageRepository, path, ['url', 'key', 'fingerprint']);
  const url = r.string(o, 'url', path, { pattern: HTTP_URL, hint: 'expected an http:// or https:// URL (the part before /<os>/)' });
  const keyText = r.string(o, 'key', path, { pattern: /^(https?:\/\/\S+|file:.+)$/, hint: 'expected an http(s):// URL or file:PATH' });
  const fingerprint = r.string(o, 'fingerprint', path, {
    pattern: /^\s*(?:[0-9A-Fa-f]{4}\s*){10}$|^\s*[0-9A-Fa-f]{64}\s*$/,
    hint: 'expected the key\'s full fingerprint (40 hex digits, spaces allowed)',
  });
  if (keyText !== undefined && fingerprint === undefined && !r.issues.some((i) => i.startsWith(`${path}.`))) {
    r.fail(`${path}.fingerprint`, 'is required when key is set (runner-fleet refuses a key whose fingerprint it cannot check)');
  }
  const key: PackageRepository['key'] =
    keyText === undefined ? GITLAB_RUNNER_REPOSITORY.key : keyText.startsWith('file:') ? { kind: 'file', path: expand(keyText.slice(5)) } : { kind: 'url', url: keyText };
  return {
    url: (url ?? GITLAB_RUNNER_REPOSITORY.url).replace(/\/+$/, ''),
    key,
    fingerprint: fingerprint ? fingerprint.replace(/\s+/g, '').toUpperCase() : GITLAB_RUNNER_REPOSITORY.fingerprint,
  };
}

/** Keeps the nodes named by --only; an unknown name is bad input. */
export function selectNodes(inv: Inventory, only: string[] | undefined): Inventory {
  if (!only || only.length === 0) return inv;
  const unknown = only.filter((n) => !inv.nodes.some((node) => node.name === n));
  if (unknown.length > 0) throw new InputError(unknown.map((n) => `--only: no node named "${n}" in the inventory`));
  return { ...inv, nodes: inv.nodes.filter((n) => only.includes(n.name)) };
}
