// The real gitlab-runner 17.9.3 for the test fleet: what the repository stand-in's `apt-get install gitlab-runner`
// unpacks on a node. Unpacked once from the shared build (sha256 checked) into the cache outside the checkout.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  createReadStream,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { $ } from 'zx';
import { nodeFile } from './paths.js';
import type { TestbedService } from './services.js';

export const GITLAB_RUNNER_VERSION = '17.9.3';
/** sha256 of the unpacked binary, from /work/shared/tools/gitlab-runner/README.md (tag v17.9.3, linux/amd64). */
export const GITLAB_RUNNER_SHA256 = '080c4e589e62b87b73b7d6857950fbdbd9a546f8408c677777c7d6ca5df3f56f';
export const SHARED_GITLAB_RUNNER_XZ = '/work/shared/tools/gitlab-runner/gitlab-runner.xz';
/** Where else to take gitlab-runner 17.9.3 from (say, one downloaded from GitLab): plain or .xz, sha256 checked. */
export const GITLAB_RUNNER_ENV = 'RUNNER_FLEET_GITLAB_RUNNER';

/** Where the repository stand-in looks on each node (scripts/testbed/standins/apt-get). */
export const NODE_REPOSITORY = '/var/cache/apt/archives/testbed-repository';

export class GitlabRunnerMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GitlabRunnerMissingError';
  }
}

function cacheRoot(): string {
  return process.env.RUNNER_FLEET_CACHE ?? join(homedir(), '.cache', 'runner-fleet');
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `../shared/tools/gitlab-runner` beside the checkout, and the machine's /work/shared. */
function sharedXzCandidates(): string[] {
  const here = join(
    import.meta.dirname,
    '..',
    '..',
    '..',
    'shared',
    'tools',
    'gitlab-runner',
    'gitlab-runner.xz',
  );
  return [...new Set([SHARED_GITLAB_RUNNER_XZ, here])];
}

/**
 * The path of the real gitlab-runner 17.9.3 on this machine, unpacked (from $RUNNER_FLEET_GITLAB_RUNNER, plain or .xz,
 * else the shared build) into `~/.cache/runner-fleet/bin/gitlab-runner-17.9.3`, the path the test images' build uses
 * too, and checked against its sha256 every time (a cache can rot). Throws GitlabRunnerMissingError saying what is
 * missing.
 */
export async function ensureGitlabRunner(): Promise<string> {
  const bin = join(cacheRoot(), 'bin', `gitlab-runner-${GITLAB_RUNNER_VERSION}`);
  if (existsSync(bin) && (await sha256File(bin)) === GITLAB_RUNNER_SHA256) return bin;
  const fromEnv = process.env[GITLAB_RUNNER_ENV];
  const candidates = fromEnv ? [fromEnv] : sharedXzCandidates();
  const src = candidates.find((c) => existsSync(c));
  if (!src) {
    throw new GitlabRunnerMissingError(
      fromEnv
        ? `${GITLAB_RUNNER_ENV}=${fromEnv}: no such file (it should be the gitlab-runner ${GITLAB_RUNNER_VERSION} linux/amd64 binary, plain or .xz)`
        : `the real gitlab-runner ${GITLAB_RUNNER_VERSION} is missing: no ${candidates.join(' or ')}; set ${GITLAB_RUNNER_ENV} to the binary (plain or .xz, e.g. downloaded from GitLab)`,
    );
  }
  mkdirSync(dirname(bin), { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}`;
  try {
    if (src.endsWith('.xz')) await $({ quiet: true })`xz -dc ${src} > ${tmp}`;
    else await $({ quiet: true })`cp ${src} ${tmp}`;
    const got = await sha256File(tmp);
    if (got !== GITLAB_RUNNER_SHA256)
      throw new GitlabRunnerMissingError(
        `${src}: unpacked sha256 ${got}, expected ${GITLAB_RUNNER_SHA256} (gitlab-runner ${GITLAB_RUNNER_VERSION}); refusing it`,
      );
    chmodSync(tmp, 0o755);
    renameSync(tmp, bin);
  } finally {
    rmSync(tmp, { force: true });
  }
  return bin;
}

/**
 * Testbed service: hands each node's repository stand-in the real binary (a symlink into the cache: the nodes see
 * this machine's /root). Without one it leaves the reason there instead, so `up` still works and only
 * `apt-get install gitlab-runner` fails, saying what is missing.
 */
export const gitlabRunnerPackageService: TestbedService = {
  name: 'gitlab-runner-package',
  async start(ctx) {
    let bin: string | undefined;
    let why = '';
    try {
      bin = await ensureGitlabRunner();
    } catch (err) {
      if (!(err instanceof GitlabRunnerMissingError)) throw err;
      why = err.message;
      ctx.log(`gitlab-runner package: ${why}`);
    }
    for (const node of ctx.nodes) {
      const repo = nodeFile(node.name, NODE_REPOSITORY, ctx.stateRoot);
      mkdirSync(repo, { recursive: true });
      for (const f of ['gitlab-runner', 'gitlab-runner.missing']) rmSync(join(repo, f), { force: true });
      if (bin) symlinkSync(bin, join(repo, 'gitlab-runner'));
      else writeFileSync(join(repo, 'gitlab-runner.missing'), `${why}\n`);
    }
    return {};
  },
  async stop() {},
};
