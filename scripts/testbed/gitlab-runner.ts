// The real gitlab-runner 17.9.3 for the test fleet: what the repository stand-in's `apt-get install gitlab-runner`
// unpacks on a node. Unpacked once from the shared build (sha256 checked) into the cache outside the checkout.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { cacheRoot, nodeFile, REPO } from './paths.js';
import { sh } from './procs.js';
import type { TestbedService } from './services.js';

export const GITLAB_RUNNER_VERSION = '17.9.3';

/** The real binaries, linux/amd64: sha256 of each unpacked, from /work/shared/tools/gitlab-runner/README.md. */
const RUNNER_BINARIES = {
  'gitlab-runner': {
    sha256: '080c4e589e62b87b73b7d6857950fbdbd9a546f8408c677777c7d6ca5df3f56f',
    /** a binary to take instead (say, one downloaded from GitLab): plain or .xz, sha256 checked */
    env: 'RUNNER_FLEET_GITLAB_RUNNER',
  },
  'gitlab-runner-helper': {
    sha256: '14b6aaee016c09a9514319297706c9e9ec5d6dceb47f9cc63d1269d9c29d4de0',
    env: 'RUNNER_FLEET_GITLAB_RUNNER_HELPER',
  },
} as const;
export type RunnerBinary = keyof typeof RUNNER_BINARIES;

/** Where the repository stand-in looks on each node (scripts/testbed/standins/apt-get). */
export const NODE_REPOSITORY = '/var/cache/apt/archives/testbed-repository';

export class GitlabRunnerMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GitlabRunnerMissingError';
  }
}

/**
 * The shared builds' folder: $RUNNER_FLEET_SHARED_DIR, `../shared` beside the checkout, beside the main checkout
 * for a git worktree elsewhere (the parent of the shared .git directory), and this machine's /work/shared.
 */
function sharedToolDirs(): string[] {
  const dirs = [process.env.RUNNER_FLEET_SHARED_DIR, join(REPO, '..', 'shared')];
  const common = sh({
    sync: true,
    nothrow: true,
  })`git -C ${REPO} rev-parse --path-format=absolute --git-common-dir`;
  if (common.ok) dirs.push(join(dirname(dirname(common.stdout.trim())), 'shared'));
  dirs.push('/work/shared');
  return [
    ...new Set(dirs.filter((d): d is string => Boolean(d)).map((d) => resolve(d, 'tools', 'gitlab-runner'))),
  ];
}

/**
 * The file's sha256, remembered beside it with its size and mtime: hashing both binaries costs ~0.8 s of CPU, and
 * `up`, the image build and the tests each ask.
 */
function checkedSha256(path: string): string {
  const { size, mtimeMs } = statSync(path);
  const stamp = `${path}.sha256`;
  const [s, m, sum] = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim().split(' ') : [];
  if (Number(s) === size && Number(m) === mtimeMs && sum) return sum;
  const fresh = createHash('sha256').update(readFileSync(path)).digest('hex');
  writeFileSync(stamp, `${size} ${mtimeMs} ${fresh}\n`);
  return fresh;
}

/**
 * The path of one of the real gitlab-runner 17.9.3 binaries on this machine, unpacked (from its environment variable,
 * plain or .xz, else the shared build) into `<cacheRoot>/bin/<name>-17.9.3` and checked against its sha256 (a cache
 * can rot). The one place that unpacks them: the fleet's nodes, the test images and the tests all take it from here.
 * Synchronous, because a suite's describe.runIf needs the answer while the file is collected; the shell writes the
 * file, so its bytes never pass through this process. Throws GitlabRunnerMissingError saying what is missing.
 */
export function runnerBinary(which: RunnerBinary): string {
  const { sha256, env } = RUNNER_BINARIES[which];
  const bin = join(cacheRoot(), 'bin', `${which}-${GITLAB_RUNNER_VERSION}`);
  if (existsSync(bin) && checkedSha256(bin) === sha256) return bin;
  const fromEnv = process.env[env];
  const candidates = fromEnv ? [fromEnv] : sharedToolDirs().map((d) => join(d, `${which}.xz`));
  const src = candidates.find((c) => existsSync(c));
  if (!src) {
    throw new GitlabRunnerMissingError(
      fromEnv
        ? `${env}=${fromEnv}: no such file (it should be the ${which} ${GITLAB_RUNNER_VERSION} linux/amd64 binary, plain or .xz)`
        : `${which} ${GITLAB_RUNNER_VERSION} is missing: no ${candidates.join(' or ')}; set ${env} to the binary (plain or .xz, e.g. downloaded from GitLab)`,
    );
  }
  mkdirSync(dirname(bin), { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}`;
  try {
    if (src.endsWith('.xz')) {
      const r = sh({ sync: true, nothrow: true })`xz -dc ${src} > ${tmp}`;
      if (!r.ok)
        throw new GitlabRunnerMissingError(
          `xz -dc ${src} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`,
        );
    } else copyFileSync(src, tmp);
    const got = createHash('sha256').update(readFileSync(tmp)).digest('hex');
    if (got !== sha256)
      throw new GitlabRunnerMissingError(
        `${src}: unpacked sha256 ${got}, expected ${sha256} (${which} ${GITLAB_RUNNER_VERSION}); refusing it`,
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
  after: [],
  async start(ctx) {
    let bin: string | undefined;
    let why = '';
    try {
      bin = runnerBinary('gitlab-runner');
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
