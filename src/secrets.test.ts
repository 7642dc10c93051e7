import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from './errors.js';
import { parseInventory } from './inventory/schema.js';
import { SECRET_MAX_BYTES, readInventorySecrets, redact, registerSecret, secretValue } from './secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'rf-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An inventory naming a token and both cache keys by the given references. */
function inventory(token: string, accessKey: string, secretKey: string) {
  return parseInventory(
    `gitlab: { url: https://gitlab.lan, registry: gitlab.lan:5050, accessToken: "${token}" }
nodes: [{ name: pi1, host: 10.0.0.1 }]
runners:
  cache: { serverAddress: minio.lan:9000, bucketName: cache, accessKey: "${accessKey}", secretKey: "${secretKey}" }
`,
    join(dir, 'fleet.yaml'),
  );
}

const issuesOf = async (work: Promise<unknown>): Promise<string[]> => {
  try {
    await work;
  } catch (err) {
    if (err instanceof InputError) return err.issues;
    throw err;
  }
  return [];
};

const closedStdin = () => {
  const s = new PassThrough();
  s.end();
  return s;
};

describe('readInventorySecrets', () => {
  it('reads env: and regular file: references, trimmed, and registers them for redaction', async () => {
    writeFileSync(join(dir, 'token'), 'glpat-from-a-file-0001\n');
    const inv = await readInventorySecrets(
      inventory(`file:${join(dir, 'token')}`, 'env:RF_AK', 'env:RF_SK'),
      { env: { RF_AK: ' AKIAEXAMPLE ', RF_SK: 'secret-key-0001' }, stdin: closedStdin() },
    );
    expect(secretValue(inv, inv.gitlab.auth.kind === 'accessToken' ? inv.gitlab.auth.token : never())).toBe(
      'glpat-from-a-file-0001',
    );
    expect(secretValue(inv, inv.runners.cache!.accessKey)).toBe('AKIAEXAMPLE');
    expect(redact('key secret-key-0001 here')).toBe('key [REDACTED] here');
  });

  it('names every field whose reference cannot be read, in one error', async () => {
    const issues = await issuesOf(
      readInventorySecrets(inventory('env:RF_UNSET', 'env:RF_UNSET', `file:${join(dir, 'missing')}`), {
        env: {},
        stdin: closedStdin(),
      }),
    );
    expect(issues).toEqual([
      'gitlab.accessToken: environment variable RF_UNSET is not set',
      'runners.cache.accessKey: environment variable RF_UNSET is not set',
      `runners.cache.secretKey: cannot read ${join(dir, 'missing')} (ENOENT)`,
    ]);
  });

  it('refuses what is not a regular file at once, without opening or reading it (FIFO, /dev/zero, a directory)', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const started = Date.now();
    const issues = await issuesOf(
      readInventorySecrets(inventory(`file:${fifo}`, 'file:/dev/zero', `file:${dir}`), {
        env: {},
        stdin: closedStdin(),
        timeoutMs: 5000,
      }),
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(issues).toEqual([
      `gitlab.accessToken: ${fifo} is a named pipe, not a regular file (only a regular file, or file:/dev/stdin for a piped secret, is read)`,
      'runners.cache.accessKey: /dev/zero is a character device, not a regular file (only a regular file, or file:/dev/stdin for a piped secret, is read)',
      `runners.cache.secretKey: ${dir} is a directory, not a regular file (only a regular file, or file:/dev/stdin for a piped secret, is read)`,
    ]);
  });

  it('refuses a file larger than the limit, and an empty one', async () => {
    writeFileSync(join(dir, 'big'), 'x'.repeat(SECRET_MAX_BYTES + 1));
    writeFileSync(join(dir, 'empty'), '\n');
    const issues = await issuesOf(
      readInventorySecrets(inventory(`file:${join(dir, 'big')}`, `file:${join(dir, 'empty')}`, 'env:RF_SK'), {
        env: { RF_SK: 'x'.repeat(SECRET_MAX_BYTES + 1) },
        stdin: closedStdin(),
      }),
    );
    expect(issues).toEqual([
      `gitlab.accessToken: ${join(dir, 'big')} is larger than 64 KiB; a token or key is far smaller`,
      `runners.cache.accessKey: ${join(dir, 'empty')} is empty`,
      'runners.cache.secretKey: environment variable RF_SK is larger than 64 KiB',
    ]);
  });

  it('file:/dev/stdin is read once, for every field that names it', async () => {
    const stdin = new PassThrough();
    const read = readInventorySecrets(inventory('file:/dev/stdin', 'file:/dev/stdin', 'env:RF_SK'), {
      env: { RF_SK: 'sk-0001' },
      stdin,
    });
    stdin.end('piped-secret-0001\n');
    const inv = await read;
    expect(secretValue(inv, inv.runners.cache!.accessKey)).toBe('piped-secret-0001');
    expect(inv.secrets?.get('gitlab.accessToken')).toBe('piped-secret-0001');
  });

  it('file:/dev/stdin that never ends gives up after the timeout; a terminal or too much is refused', async () => {
    const silent = new PassThrough();
    const issues = await issuesOf(
      readInventorySecrets(inventory('file:/dev/stdin', 'env:RF_AK', 'env:RF_AK'), {
        env: { RF_AK: 'ak-0001' },
        stdin: silent,
        timeoutMs: 100,
      }),
    );
    expect(issues).toEqual(['gitlab.accessToken: /dev/stdin: nothing complete arrived within 0.1 s']);
    expect(silent.destroyed).toBe(true);

    const tty = Object.assign(new PassThrough(), { isTTY: true });
    expect(
      await issuesOf(
        readInventorySecrets(inventory('file:/dev/stdin', 'env:RF_AK', 'env:RF_AK'), {
          env: { RF_AK: 'ak-0001' },
          stdin: tty,
        }),
      ),
    ).toEqual([
      expect.stringMatching(/^gitlab\.accessToken: file:\/dev\/stdin is a terminal; pipe the secret in/),
    ]);

    const flood = new PassThrough();
    const flooded = readInventorySecrets(inventory('file:/dev/stdin', 'env:RF_AK', 'env:RF_AK'), {
      env: { RF_AK: 'ak-0001' },
      stdin: flood,
    });
    flood.write(Buffer.alloc(SECRET_MAX_BYTES + 1));
    expect(await issuesOf(flooded)).toEqual([
      'gitlab.accessToken: /dev/stdin is larger than 64 KiB; a token or key is far smaller',
    ]);
  });
});

describe('secretValue', () => {
  it('a reference that was not read up front is a bug, never a read', () => {
    const inv = inventory('env:RF_AK', 'env:RF_AK', 'env:RF_AK');
    expect(() => secretValue(inv, inv.runners.cache!.accessKey)).toThrow(
      'runners.cache.accessKey was not read before the run',
    );
  });
});

function never(): never {
  throw new Error('unreachable');
}

describe('redact', () => {
  it.each([
    ['a runner created in GitLab (POST /user/runners, instance)', 'glrt-t1_Ab3dEf6hIj9kLm2nOp5q'],
    ['a group runner created in GitLab', 'glrt-t2_zyxwvutsrqponmlkjihg'],
    ['a runner registered with a registration token', 't1_Ab3dEf6hIj9kLm2nOp5q'],
    ['a routable token (feature routable_runner_token)', 'glrt-t3_bzoxCnA6Mgp1OjEKdDoz.01.1a0gx6s3v'],
    ['a legacy runner token before partition prefixes', 'glrt-Ab3dEf6hIj9kLm2nOp5q'],
    ['a personal access token', 'glpat-Ab3dEf6hIj9kLm2nOp5q'],
    ['a registration token', 'GR1348941Ab3dEf6hIj9kLm2nOp5q'],
  ])('%s', (_, token) => {
    const out = redact(`POST /api/v4/runners/verify: 403 (token=${token}) "${token}"\n${token}.`);
    expect(out).not.toContain(token.slice(3, 12));
    expect(out).toBe('POST /api/v4/runners/verify: 403 (token=[REDACTED]) "[REDACTED]"\n[REDACTED].');
  });

  it('leaves ordinary words and ids alone', () => {
    const text = 'node pi1: t1_ready, runner #41 t2_x glrt- alone, image v1.2.3';
    expect(redact(text)).toBe(text);
  });

  it('hides a registered secret of any shape', () => {
    registerSecret('s3cr3t-cache-key');
    expect(redact('cache key s3cr3t-cache-key rejected')).toBe('cache key [REDACTED] rejected');
  });
});
