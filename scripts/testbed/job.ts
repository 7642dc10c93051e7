// `testbed.ts job`: queue the ci-snippet's job on the GitLab stand-in, wait for a real runner to take it, stream its log, check the push.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { $ } from 'zx';
import { parseInventory } from '../../src/inventory/schema.js';
import type { Executor, Inventory } from '../../src/inventory/types.js';
import { REPO } from './paths.js';
import { GITLAB_REGISTRY } from './registry.js';

/** The project every testbed job builds: one Dockerfile on the test registry's base image. */
export const DEMO_PROJECT = 'fleet/demo';

export interface JobOptions {
  inventoryPath: string;
  executor: Executor;
  /** pin the job to this node's runner (each runner carries its node's name as a tag) */
  node?: string;
  /** extra job variables, e.g. a SLEEP the test uses to keep a job running */
  variables?: Record<string, string>;
  /** seconds to wait for a terminal state */
  timeout?: number;
  /** streamed trace text as it arrives */
  onTrace?: (chunk: string) => void;
  /** a shell line run before the snippet's script (tests use it to hold a job open) */
  beforeScript?: string[];
  /** another .gitlab-ci.yml job instead of the ci-snippet's (its name and the YAML text) */
  custom?: { job: string; yaml: string };
  /** the project the job runs in (default DEMO_PROJECT); GitLab paths may hold capitals, image names may not */
  project?: string;
  /** the stand-in's plain-HTTP URL for /_standin calls, when the inventory names its HTTPS one (a private CA) */
  standinUrl?: string;
  /** the project's Dockerfile instead of demoDockerfile's */
  dockerfile?: string;
}

export interface JobResult {
  id: number;
  status: string;
  runner: number | null;
  node: string | null;
  registry: string;
  image: string;
  /** the registry lists the image's tag after the job */
  pushed: boolean;
  failureReason: string | null;
  trace: string;
}

/** What GET /_standin/jobs/:id answers (test/gitlab/standin.ts). */
interface StandinJob {
  id: number;
  status: 'pending' | 'running' | 'success' | 'failed' | 'canceled';
  runnerId: number | null;
  systemId: string | null;
  failureReason: string | null;
  trace: string;
}

interface StandinRunnerState {
  id: number;
  description: string;
}

const TERMINAL = new Set(['success', 'failed', 'canceled']);

async function call<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`GitLab stand-in ${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : {}) as T;
}

/** What a held job's trace shows once its script runs (see `holdJob`). */
const HOLD_MARK = 'holding the job open';

/** A before_script line that keeps a job running for `seconds`: tests change things under a running job with it. */
export const holdJob = (seconds: number): string => `echo ${HOLD_MARK}; sleep ${seconds}`;

/** Resolves once a running job's trace shows `holdJob`'s line; throws after `timeoutMs`, saying what the jobs were. */
export async function whenJobHeld(gitlabUrl: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let jobs: StandinJob[] = [];
  while (Date.now() < deadline) {
    jobs = await call<StandinJob[]>(gitlabUrl, 'GET', '/_standin/jobs');
    if (jobs.some((j) => j.status === 'running' && j.trace.includes(HOLD_MARK))) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `no job reached its held script within ${timeoutMs / 1000} s; jobs: ${jobs.map((j) => `#${j.id} ${j.status}`).join(', ') || 'none'}`,
  );
}

/** The Dockerfile the demo project holds: built FROM the test registry's base image, so the build needs the registry too. */
export function demoDockerfile(registry: string): string {
  return [
    `FROM ${registry}/runner-fleet/base:1`,
    'RUN echo "built by a runner-fleet CI job" > /built-by-ci.txt',
    'CMD ["cat", "/built-by-ci.txt"]',
    '',
  ].join('\n');
}

/** The ci-snippet job, as `provision.ts ci-snippet` prints it, optionally pinned to one node's tag. */
async function snippetFor(opts: JobOptions, inv: Inventory): Promise<{ yaml: string; job: string }> {
  const out = await $({
    cwd: REPO,
    quiet: true,
  })`${join(REPO, 'node_modules', '.bin', 'tsx')} provision.ts ci-snippet --inventory ${opts.inventoryPath} --executor ${opts.executor}`;
  const doc = parseYaml(out.stdout) as Record<string, Record<string, unknown>>;
  const [job] = Object.keys(doc);
  if (opts.node) {
    if (!inv.nodes.some((n) => n.name === opts.node))
      throw new Error(`--node: no node ${opts.node} in ${opts.inventoryPath}`);
    doc[job].tags = [opts.node];
  }
  if (opts.variables)
    doc[job].variables = { ...(doc[job].variables as Record<string, string>), ...opts.variables };
  if (opts.beforeScript) doc[job].before_script = opts.beforeScript;
  return { yaml: opts.node || opts.variables || opts.beforeScript ? stringifyYaml(doc) : out.stdout, job };
}

/** Which inventory node a runner belongs to: its description is runners.description with {node} filled in. */
function nodeOfRunner(inv: Inventory, description: string | undefined): string | null {
  if (description === undefined) return null;
  return (
    inv.nodes.find((n) => inv.runners.description.split('{node}').join(n.name) === description)?.name ?? null
  );
}

export async function runCiJob(opts: JobOptions): Promise<JobResult> {
  const inv = parseInventory(readFileSync(opts.inventoryPath, 'utf8'), opts.inventoryPath);
  const base = opts.standinUrl ?? inv.gitlab.url;
  const registry = inv.gitlab.registries[0];
  const { yaml, job } = opts.custom ?? (await snippetFor(opts, inv));
  const project = await call<{ path: string; sha: string }>(base, 'POST', '/_standin/projects', {
    path: opts.project ?? DEMO_PROJECT,
    // The base image is on the test registry, not on GitLab's (where only jobs push).
    files: {
      Dockerfile:
        opts.dockerfile ??
        demoDockerfile(inv.gitlab.registries.find((r) => r !== GITLAB_REGISTRY) ?? registry),
    },
  });
  const { id } = await call<{ id: number }>(base, 'POST', '/_standin/jobs', {
    project: project.path,
    ciYaml: yaml,
    job,
  });
  const deadline = Date.now() + (opts.timeout ?? 300) * 1000;
  let seen = 0;
  let state: StandinJob;
  for (;;) {
    state = await call<StandinJob>(base, 'GET', `/_standin/jobs/${id}`);
    if (state.trace.length > seen) {
      opts.onTrace?.(state.trace.slice(seen));
      seen = state.trace.length;
    }
    if (TERMINAL.has(state.status)) break;
    if (Date.now() > deadline)
      throw new Error(
        `job ${id} still ${state.status} after ${opts.timeout ?? 300} s (no runner took it, or it hangs)`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
  // The snippet's image: the project path lowercased (on GitLab's registry that is its CI_REGISTRY_IMAGE).
  const repository = project.path.toLowerCase();
  const image = `${registry}/${repository}:${project.sha.slice(0, 8)}`;
  const runners = (await call<{ runners: StandinRunnerState[] }>(base, 'GET', '/_standin/state')).runners;
  return {
    id,
    status: state.status,
    runner: state.runnerId,
    node: nodeOfRunner(inv, runners.find((r) => r.id === state.runnerId)?.description),
    registry,
    image,
    pushed: await registryHasTag(registry, repository, project.sha.slice(0, 8), base),
    failureReason: state.failureReason,
    trace: state.trace,
  };
}

/**
 * The Docker Registry HTTP API's tag list (the registry is plain HTTP on a test-host address). GitLab's registry
 * answers only with a token: GitLab's own full-access one, from the stand-in at `gitlabUrl`.
 */
export async function registryHasTag(
  registry: string,
  repository: string,
  tag: string,
  gitlabUrl?: string,
): Promise<boolean> {
  try {
    const url = `http://${registry}/v2/${repository}/tags/list`;
    let res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (res.status === 401 && gitlabUrl) {
      const { token } = await call<{ token: string }>(
        gitlabUrl,
        'GET',
        `/_standin/registry-token?repository=${encodeURIComponent(repository)}`,
      );
      res = await fetch(url, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(5000),
      });
    }
    if (!res.ok) return false;
    const body = (await res.json()) as { tags?: string[] | null };
    return (body.tags ?? []).includes(tag);
  } catch {
    return false;
  }
}
