// Parses and validates inventory YAML into an Inventory; every problem names its path (`nodes[2].docker: …`).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { InputError } from '../errors.js';
import {
  EXECUTORS,
  GITLAB_RUNNER_REPOSITORY,
  PLACEMENTS,
  PULL_POLICIES,
  type AccessLevel,
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

  string(obj: Obj | undefined, key: string, path: string, opts: { required?: boolean; pattern?: RegExp; hint?: string } = {}): string | undefined {
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

  stringList(obj: Obj | undefined, key: string, path: string, item?: { pattern: RegExp; hint: string }): string[] | undefined {
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
      else if (item && !item.pattern.test(v)) this.fail(p, item.hint);
      else out.push(v);
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

const HOST_PORT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$/;
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface ParseOptions {
  /** CLI overrides, validated like inventory values */
  executor?: string;
  placement?: string;
}

/** Reads, parses and validates an inventory file. Throws InputError listing every problem. */
export function loadInventory(path: string, opts: ParseOptions = {}): Inventory {
  const abs = resolve(path);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new InputError([`${path}: cannot read inventory (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  return parseInventory(text, abs, opts);
}

export function parseInventory(text: string, source: string, opts: ParseOptions = {}): Inventory {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new InputError(doc.errors.map((e) => `${source}: YAML ${e.message.split('\n')[0]}`), 'inventory is not valid YAML');
  }
  // YAML 1.2 core schema: `yes`/`no` stay strings, so a typo cannot silently become a boolean.
  const raw = doc.toJS() as unknown;
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
  const url = r.string(g, 'url', 'gitlab', { required: true, pattern: /^https?:\/\/[^\s/]+(\/[^\s]*)?$/, hint: 'expected an http:// or https:// URL' });
  const registryHint = 'expected host:port without a scheme (e.g. gitlab.lan:5050)';
  const registries = r.stringList(g, 'registry', 'gitlab', { pattern: HOST_PORT, hint: registryHint }) ?? [];
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
    const seenHosts = new Map<string, number>();
    top.nodes.forEach((entry, i) => {
      const p = `nodes[${i}]`;
      const n = r.object(entry, p, ['name', 'host', 'port', 'user', 'identityFile', 'knownHosts', 'docker', 'microk8s'], true);
      if (!n) return;
      const name = r.string(n, 'name', p, { required: true, pattern: NODE_NAME, hint: 'expected a Kubernetes node name (lowercase letters, digits, - and .)' });
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
        const key = `${host}:${port}`;
        if (seenHosts.has(key)) r.fail(`${p}.host`, `duplicate host ${key} (also nodes[${seenHosts.get(key)}])`);
        else seenHosts.set(key, i);
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
  const k = r.object(top.kubernetes, 'kubernetes', ['kubeconfig', 'context', 'fromNode', 'namespace', 'rolloutTimeout', 'nodeLabel']);
  const kubeconfig = r.string(k, 'kubeconfig', 'kubernetes');
  const fromNode = r.string(k, 'fromNode', 'kubernetes');
  if (kubeconfig && fromNode) r.fail('kubernetes', 'set kubeconfig or fromNode, not both');
  if (fromNode && !nodes.some((n) => n.name === fromNode)) r.fail('kubernetes.fromNode', `no node named "${fromNode}" in nodes`);
  const kubernetes = {
    kubeconfig: kubeconfig ? expand(kubeconfig) : undefined,
    context: r.string(k, 'context', 'kubernetes'),
    fromNode,
    namespace: r.string(k, 'namespace', 'kubernetes', { pattern: NODE_NAME, hint: 'expected a Kubernetes namespace name' }) ?? 'gitlab-runner',
    rolloutTimeout: r.int(k, 'rolloutTimeout', 'kubernetes', 1, 3600) ?? 300,
    nodeLabel: r.string(k, 'nodeLabel', 'kubernetes', { pattern: /^([a-z0-9.-]+\/)?[A-Za-z0-9._-]+$/, hint: 'expected a label key' }) ?? 'runner-fleet.dev/runner',
  };

  // runners
  const ru = r.object(top.runners, 'runners', [
    'executor', 'placement', 'tags', 'description', 'runUntagged', 'locked', 'accessLevel', 'maximumTimeout', 'paused',
    'concurrent', 'checkInterval', 'image', 'jobImage', 'dindImage', 'dockerCliImage', 'packageRepository',
    'helperImage', 'pullPolicy',
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
    tags: r.stringList(ru, 'tags', 'runners', { pattern: /^[^,\s][^,]*$/, hint: 'a tag cannot contain a comma' }) ?? [],
    description: r.string(ru, 'description', 'runners') ?? 'runner-fleet {node}',
    runUntagged: r.bool(ru, 'runUntagged', 'runners') ?? false,
    locked: r.bool(ru, 'locked', 'runners') ?? false,
    accessLevel: r.oneOf<AccessLevel>(ru, 'accessLevel', 'runners', ['not_protected', 'ref_protected']) ?? 'not_protected',
    maximumTimeout: r.int(ru, 'maximumTimeout', 'runners', 600, 30 * 24 * 3600),
    paused: r.bool(ru, 'paused', 'runners') ?? false,
    concurrent: r.int(ru, 'concurrent', 'runners', 1, 64) ?? 1,
    checkInterval: r.int(ru, 'checkInterval', 'runners', 1, 3600) ?? 3,
    image: r.string(ru, 'image', 'runners') ?? DEFAULT_IMAGES.image,
    jobImage: r.string(ru, 'jobImage', 'runners') ?? DEFAULT_IMAGES.jobImage,
    dindImage: r.string(ru, 'dindImage', 'runners') ?? DEFAULT_IMAGES.dindImage,
    dockerCliImage: r.string(ru, 'dockerCliImage', 'runners') ?? DEFAULT_IMAGES.dockerCliImage,
    helperImage: r.string(ru, 'helperImage', 'runners', { pattern: IMAGE_REF, hint: 'expected an image reference without spaces, e.g. registry.lan:5000/gitlab-runner-helper:{arch}-v${CI_RUNNER_VERSION}' }),
    pullPolicy: readPullPolicy(r, ru),
  };

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
