// Secret references (env:NAME, file:PATH): every one in the inventory read once, before anything is contacted, and
// every resolved secret redacted from text.
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { InputError } from './errors.js';
import type { Inventory, SecretRef } from './inventory/types.js';

const known = new Set<string>();
// GitLab 17.9 runner tokens (Ci::Runner#prefix_for_new_and_legacy_runner): `glrt-t1_…` when created in GitLab,
// `t1_…` (t2_ group, t3_ project) when registered with a registration token, 20 characters after the prefix; a
// routable token (Authn::TokenField::Generator::RoutableToken) carries `.01.` and nine base-36 characters after it.
const ROUTABLE_TAIL = String.raw`(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?`;
const TOKEN_PATTERNS = [
  new RegExp(String.raw`\bglrt-[A-Za-z0-9_-]{6,}${ROUTABLE_TAIL}`, 'g'),
  new RegExp(String.raw`\bt[1-3]_[A-Za-z0-9_-]{20,}${ROUTABLE_TAIL}`, 'g'),
  /\bglpat-[A-Za-z0-9_-]{6,}/g,
  /\bGR1348941[A-Za-z0-9_-]{6,}/g,
];

/** Remembers a secret value so that redact() hides it wherever it shows up later. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) known.add(value);
}

/** Replaces every known secret and anything shaped like a GitLab token with [REDACTED]. */
export function redact(text: string): string {
  let out = text;
  for (const s of known) out = out.split(s).join('[REDACTED]');
  for (const re of TOKEN_PATTERNS) out = out.replace(re, '[REDACTED]');
  // Credentials in a URL (`http://user:pass@host`): the inventory refuses them, but a message may quote one anyway.
  out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1[REDACTED]@');
  return out;
}

/** Tokens and keys are short; anything larger is a wrong path (a log, an image, /dev/zero), never read whole. */
export const SECRET_MAX_BYTES = 64 * 1024;
/** A secret that has not arrived by then never will (stdin nobody writes to). */
export const SECRET_READ_TIMEOUT_MS = 10_000;
/** The one file: reference that is not a regular file: the secret piped into runner-fleet, read once. */
export const STDIN_REF = 'file:/dev/stdin';

/** Every secret reference the inventory holds, each with the inventory path that names it. */
export function inventorySecretRefs(inv: Inventory): SecretRef[] {
  const auth = inv.gitlab.auth;
  const cache = inv.runners.cache;
  return [
    ...(auth.kind === 'none' ? [] : [auth.token]),
    ...(cache ? [cache.accessKey, cache.secretKey] : []),
  ];
}

/** Where a command reads stdin from; injectable so tests need not touch the process's own. */
export interface SecretSources {
  env: NodeJS.ProcessEnv;
  /** absent: the process's own, touched only when a reference names it (creating it would hold a pipe open) */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; destroy?: () => void };
  timeoutMs: number;
}

/**
 * Reads every reference of the inventory once (a reference named by several fields is read once for all of them)
 * and returns the inventory carrying the values; nothing else reads a reference. Every field whose reference cannot
 * be read is named in one InputError (exit 2): nothing has been contacted yet.
 */
export async function readInventorySecrets(
  inv: Inventory,
  sources: Partial<SecretSources> = {},
): Promise<Inventory> {
  const src: SecretSources = {
    env: sources.env ?? process.env,
    stdin: sources.stdin,
    timeoutMs: sources.timeoutMs ?? SECRET_READ_TIMEOUT_MS,
  };
  const refs = inventorySecretRefs(inv);
  const reads = new Map<string, Promise<string>>();
  for (const { ref } of refs) {
    if (reads.has(ref)) continue;
    const read = readRef(ref, src);
    read.catch(() => undefined); // awaited below, in order; never an unhandled rejection meanwhile
    reads.set(ref, read);
  }
  const values = new Map<string, string>();
  const issues: string[] = [];
  for (const r of refs) {
    try {
      const value = await reads.get(r.ref)!;
      registerSecret(value);
      values.set(r.path, value);
    } catch (err) {
      if (!(err instanceof SecretReadError)) throw err;
      issues.push(`${r.path}: ${err.message}`);
    }
  }
  if (issues.length > 0) throw new InputError(issues, 'cannot read the secrets the inventory names');
  return { ...inv, secrets: values };
}

/** The value of a reference read by readInventorySecrets; a reference it did not read is a bug, not bad input. */
export function secretValue(inv: Inventory, ref: SecretRef): string {
  const value = inv.secrets?.get(ref.path);
  if (value === undefined)
    throw new Error(`${ref.path} was not read before the run (every reference is read once, up front)`);
  return value;
}

class SecretReadError extends Error {}

async function readRef(ref: string, src: SecretSources): Promise<string> {
  let text: string;
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    text = src.env[name] ?? '';
    if (text.trim() === '') throw new SecretReadError(`environment variable ${name} is not set`);
    if (Buffer.byteLength(text) > SECRET_MAX_BYTES)
      throw new SecretReadError(`environment variable ${name} is larger than ${SECRET_MAX_BYTES / 1024} KiB`);
    return text.trim();
  }
  const file = ref.slice(5);
  const stdin = ref === STDIN_REF ? (src.stdin ?? process.stdin) : undefined;
  text = await withTimeout(
    stdin ? readStdin(stdin) : readRegularFile(file),
    src.timeoutMs,
    () => stdin?.destroy?.(),
    `${file}: nothing complete arrived within ${src.timeoutMs / 1000} s`,
  );
  if (text.trim() === '') throw new SecretReadError(`${file} is empty`);
  return text.trim();
}

function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => void, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new SecretReadError(message));
    }, ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

const KINDS: [keyof import('node:fs').Stats, string][] = [
  ['isDirectory', 'a directory'],
  ['isFIFO', 'a named pipe'],
  ['isCharacterDevice', 'a character device'],
  ['isBlockDevice', 'a block device'],
  ['isSocket', 'a socket'],
];

/**
 * A regular file, at most SECRET_MAX_BYTES. Checked before it is opened (opening a FIFO blocks until a writer comes,
 * opening a device may do something), and again on the open file, in case it was swapped in between.
 */
async function readRegularFile(file: string): Promise<string> {
  const notRegular = (st: import('node:fs').Stats) => {
    const kind = KINDS.find(([is]) => (st[is] as () => boolean).call(st))?.[1] ?? 'not a regular file';
    return new SecretReadError(
      `${file} is ${kind}, not a regular file (only a regular file, or ${STDIN_REF} for a piped secret, is read)`,
    );
  };
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    throw new SecretReadError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!st.isFile()) throw notRegular(st);
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new SecretReadError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw notRegular(opened);
    const buf = Buffer.alloc(SECRET_MAX_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > SECRET_MAX_BYTES) throw tooLarge(file);
    }
    return buf.subarray(0, length).toString('utf8');
  } finally {
    await handle.close();
  }
}

const tooLarge = (what: string) =>
  new SecretReadError(`${what} is larger than ${SECRET_MAX_BYTES / 1024} KiB; a token or key is far smaller`);

/** stdin until its end, once: a pipe (`pass show x | runner-fleet …`) or a redirected file, never a terminal. */
function readStdin(stdin: NonNullable<SecretSources['stdin']>): Promise<string> {
  if (stdin.isTTY)
    return Promise.reject(
      new SecretReadError(
        `${STDIN_REF} is a terminal; pipe the secret in instead (e.g. \`pass show gitlab | npx tsx provision.ts …\`)`,
      ),
    );
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    stdin.on('data', (chunk: Buffer | string) => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      length += b.length;
      if (length > SECRET_MAX_BYTES) {
        stdin.destroy?.();
        reject(tooLarge('/dev/stdin'));
      } else chunks.push(b);
    });
    stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stdin.on('error', (err: NodeJS.ErrnoException) =>
      reject(new SecretReadError(`cannot read /dev/stdin (${err.code ?? err.message})`)),
    );
  });
}
