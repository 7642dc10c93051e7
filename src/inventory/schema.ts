// Reads an inventory: YAML → the fields (fields.ts, valibot) → the cross-field rules (rules.ts) → an Inventory.
// Every problem names its path (`nodes[2].docker: …`); all of them are reported at once.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { InputError } from '../errors.js';
import {
  DEFAULT_IMAGES,
  GITLAB_RUNNER_REPOSITORY,
  LIMITS,
  checkFields,
  defaultNodeLabel,
  type FieldIssue,
} from './fields.js';
import { RuleContext, checkRules, type ParseOptions } from './rules.js';
import type { GitlabAuth, Inventory, PrivateCa } from './types.js';

export { LIMITS } from './fields.js';
export type { ParseOptions } from './rules.js';

/** Reads, parses and validates an inventory file. Throws InputError listing every problem. */
export function loadInventory(path: string, opts: ParseOptions = {}): Inventory {
  const abs = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(abs);
  } catch (err) {
    throw new InputError([
      `${path}: cannot read inventory (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    ]);
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
    throw new InputError(
      doc.errors.map((e) => `${source}: YAML ${e.message.split('\n')[0]}`),
      'inventory is not valid YAML',
    );
  }
  // YAML 1.2 core schema: `yes`/`no` stay strings, so a typo cannot silently become a boolean.
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: LIMITS.aliases });
  } catch (err) {
    // yaml throws a ReferenceError for "Excessive alias count" (an alias bomb) and for unresolved aliases.
    throw new InputError(
      [`${source}: YAML ${(err as Error).message.split('\n')[0]}`],
      'inventory is not valid YAML',
    );
  }
  const { output: file, issues } = checkFields(raw);
  const ctx = new RuleContext(file, issues);
  const { executor, placement } = checkRules(ctx, opts);
  if (issues.length > 0) throw new InputError(issues.map(formatIssue), `${source}: inventory is invalid`);

  const base = dirname(source);
  const expand = (p: string): string => {
    const home = p === '~' || p.startsWith('~/') ? homedir() + p.slice(1) : p;
    return isAbsolute(home) ? home : resolve(base, home);
  };
  const { registry, accessToken, runnerToken, registrationToken, caFile, ...gitlab } = file.gitlab;
  const ca = caFile === undefined ? undefined : readCa(expand(caFile.slice('file:'.length)));
  // rules.ts made sure at most one is set.
  const auth: GitlabAuth = accessToken
    ? { kind: 'accessToken', token: accessToken }
    : runnerToken
      ? { kind: 'runnerToken', token: runnerToken }
      : registrationToken
        ? { kind: 'registrationToken', token: registrationToken }
        : { kind: 'none' };
  const ssh = {
    ...file.ssh,
    identityFile: expand(file.ssh.identityFile),
    knownHosts: expand(file.ssh.knownHosts),
  };
  const repo = file.runners.packageRepository;
  const { version } = file.runners;
  // rules.ts made sure {version} appears only with runners.version.
  const withVersion = (image: string): string =>
    version === undefined ? image : image.split('{version}').join(version);
  const image =
    file.runners.image ?? (version === undefined ? DEFAULT_IMAGES.image : DEFAULT_IMAGES.versionedImage);
  return {
    source,
    gitlab: {
      ...gitlab,
      url: gitlab.url.replace(/\/+$/, ''),
      registries: [...new Set(registry)],
      auth,
      ...(ca ? { ca } : {}),
    },
    ssh,
    nodes: file.nodes.map((n) => ({
      ...n,
      port: n.port ?? ssh.port,
      user: n.user ?? ssh.user,
      identityFile: n.identityFile ? expand(n.identityFile) : ssh.identityFile,
      knownHosts: n.knownHosts ? expand(n.knownHosts) : ssh.knownHosts,
      connectTimeout: ssh.connectTimeout,
    })),
    kubernetes: {
      ...file.kubernetes,
      kubeconfig: file.kubernetes.kubeconfig ? expand(file.kubernetes.kubeconfig) : undefined,
      nodeLabel: file.kubernetes.nodeLabel ?? defaultNodeLabel(file.kubernetes.namespace),
    },
    runners: {
      ...file.runners,
      executor,
      placement,
      image: withVersion(image),
      helperImage: file.runners.helperImage === undefined ? undefined : withVersion(file.runners.helperImage),
      packageRepository: {
        url: repo.url,
        key:
          repo.key === undefined
            ? GITLAB_RUNNER_REPOSITORY.key
            : repo.key.kind === 'file'
              ? { kind: 'file', path: expand(repo.key.path) }
              : repo.key,
        fingerprint: repo.fingerprint ?? GITLAB_RUNNER_REPOSITORY.fingerprint,
      },
    },
    docker: file.docker,
    snap: file.snap,
  };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----/g;

/**
 * `gitlab.caFile`: read before anything is contacted, so a wrong path is bad input (exit 2). Only the certificate
 * blocks are kept: Go's AppendCertsFromPEM (dockerd, containerd, gitlab-runner) skips everything else anyway, and a
 * private key pasted into the same file must not travel to every node.
 */
export function readCa(path: string): PrivateCa {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError([
      `gitlab.caFile: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    ]);
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0)
    throw new InputError([`gitlab.caFile: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`]);
  return { path, pem: blocks.map((b) => b.replace(/\r\n/g, '\n')).join('\n') + '\n' };
}

function formatIssue(issue: FieldIssue): string {
  return issue.path === '' ? `(inventory): ${issue.message}` : `${issue.path}: ${issue.message}`;
}

/** Keeps the nodes named by --only; an unknown name is bad input. */
export function selectNodes(inv: Inventory, only: string[] | undefined): Inventory {
  if (!only || only.length === 0) return inv;
  const unknown = only.filter((n) => !inv.nodes.some((node) => node.name === n));
  if (unknown.length > 0)
    throw new InputError(unknown.map((n) => `--only: no node named "${n}" in the inventory`));
  return { ...inv, nodes: inv.nodes.filter((n) => only.includes(n.name)) };
}
