// The package repository's signing key: fetched once per run on this machine (URL or file), checked against the pinned fingerprint.
import { readFileSync } from 'node:fs';
import type { PackageRepository } from '../inventory/types.js';
import { commandTrace } from '../log.js';
import { checkPinnedKey, dearmor, formatFingerprint } from './openpgp.js';

export function describeKeySource(repo: PackageRepository): string {
  return repo.key.kind === 'url' ? repo.key.url : repo.key.path;
}

/**
 * The key as binary bytes ready for the node's .gpg keyring (what `gpg --dearmor` writes). Throws, naming the source, when it cannot be read
 * or is not exactly the pinned, unexpired key: the nodes then get no repository rather than an unchecked one.
 */
export async function loadRepositoryKey(
  repo: PackageRepository,
  now: number,
  opts: { timeoutMs?: number } = {},
): Promise<Buffer> {
  const where = describeKeySource(repo);
  let bytes: Buffer;
  if (repo.key.kind === 'file') {
    try {
      bytes = readFileSync(repo.key.path);
    } catch (err) {
      throw new Error(
        `runners.packageRepository.key: cannot read ${where} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  } else {
    commandTrace.emit?.('http', `GET ${where}`);
    let res: Response;
    try {
      res = await fetch(where, { signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000), redirect: 'follow' });
    } catch (err) {
      throw new Error(
        `cannot fetch the gitlab-runner repository key from ${where}: ${(err as Error).message}`,
      );
    }
    if (!res.ok)
      throw new Error(`cannot fetch the gitlab-runner repository key from ${where}: HTTP ${res.status}`);
    bytes = Buffer.from(await res.arrayBuffer());
  }
  const check = await checkPinnedKey(bytes, repo.fingerprint, now);
  if (!check.ok)
    throw new Error(
      `the repository key from ${where} is refused (pinned ${formatFingerprint(repo.fingerprint)}): ${check.reason}`,
    );
  return dearmor(bytes);
}
