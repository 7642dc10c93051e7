// The stand-in's project repositories: made with the git CLI as bare repositories under the state dir and served over
// git's "dumb" HTTP protocol (plain files after `git update-server-info`, gitprotocol-http(5)), which needs no git
// daemon and no CGI. Dumb HTTP cannot serve shallow fetches, so jobs get git_info.depth 0 (a full fetch).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

// A fixed identity and no user/system config, so commits do not depend on the machine's git setup.
const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'GitLab stand-in',
  GIT_AUTHOR_EMAIL: 'standin@example.invalid',
  GIT_COMMITTER_NAME: 'GitLab stand-in',
  GIT_COMMITTER_EMAIL: 'standin@example.invalid',
  GIT_TERMINAL_PROMPT: '0',
};

async function git(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run('git', args, { cwd, env: GIT_ENV, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** Where a project's bare repository lives: <stateDir>/repos/<group>/<project>.git */
export const repoDir = (stateDir: string, path: string) => join(stateDir, 'repos', `${path}.git`);

/**
 * Creates the bare repository (if new) and commits `files` on main: one commit per call, the first one a root
 * commit. Returns the new commit's sha and the one before it (GitLab's before_sha: zeros for a new branch).
 */
export async function commitFiles(
  stateDir: string,
  path: string,
  files: Record<string, string>,
): Promise<{ sha: string; beforeSha: string }> {
  const bare = repoDir(stateDir, path);
  const fresh = !existsSync(join(bare, 'HEAD'));
  if (fresh) {
    mkdirSync(dirname(bare), { recursive: true });
    await git(['init', '--bare', '--quiet', '--initial-branch=main', bare]);
  }
  const work = mkdtempSync(join(stateDir, 'work-'));
  try {
    if (fresh) await git(['init', '--quiet', '--initial-branch=main'], work);
    else await git(['clone', '--quiet', '--branch', 'main', bare, '.'], work);
    for (const [name, content] of Object.entries(files)) {
      const target = resolve(work, name);
      if (!target.startsWith(work + sep) || name.split(/[\\/]/).includes('.git'))
        throw new Error(`file name ${name} leaves the repository`);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, content);
    }
    await git(['add', '--all'], work);
    await git(['commit', '--quiet', '--allow-empty', '-m', fresh ? 'Initial commit' : 'Update files'], work);
    const beforeSha = fresh ? '0'.repeat(40) : await git(['rev-parse', 'HEAD~1'], work);
    const sha = await git(['rev-parse', 'HEAD'], work);
    await git(['push', '--quiet', bare, 'HEAD:refs/heads/main'], work);
    await git(['update-server-info'], bare);
    return { sha, beforeSha };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * GitLab keeps refs/pipelines/<id> for every pipeline (Ci::PersistentRef) and lists it first in the job's refspecs
 * (Ci::BuildRunnerPresenter#refspecs), so the stand-in writes it too; the runner fetches it.
 */
export async function writePipelineRef(
  stateDir: string,
  path: string,
  pipelineId: number,
  sha: string,
): Promise<void> {
  const bare = repoDir(stateDir, path);
  await git(['update-ref', `refs/pipelines/${pipelineId}`, sha], bare);
  await git(['update-server-info'], bare);
}

/**
 * A file of the dumb protocol (info/refs, HEAD, objects/...), or null. Only the paths git's dumb HTTP client asks
 * for are served, never config or hooks.
 */
export function dumbHttpFile(
  stateDir: string,
  path: string,
  file: string,
): { body: Buffer; type: string } | null {
  if (
    !/^(HEAD|info\/refs|objects\/info\/(packs|alternates|http-alternates)|objects\/[0-9a-f]{2}\/[0-9a-f]{38,62}|objects\/pack\/pack-[0-9a-f]{40,64}\.(pack|idx))$/.test(
      file,
    )
  )
    return null;
  const full = join(repoDir(stateDir, path), file);
  if (!existsSync(full) || !statSync(full).isFile()) return null;
  const type = file.endsWith('.pack')
    ? 'application/x-git-packed-objects'
    : file.endsWith('.idx')
      ? 'application/x-git-packed-objects-toc'
      : file.startsWith('objects/') && !file.startsWith('objects/info')
        ? 'application/x-git-loose-object'
        : 'text/plain';
  return { body: readFileSync(full), type };
}
