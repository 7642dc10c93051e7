// Pinning an apt repository key with the openpgp library: primary key fingerprint, expiry, revocation, one key only.
import type * as OpenPgp from 'openpgp';

export interface KeyInfo {
  /** uppercase hex, no spaces */
  fingerprint: string;
  version: number;
  /** seconds since the epoch */
  createdAt: number;
  /** from the key's valid self-signatures; undefined: never expires */
  expiresAt?: number;
  /** the key carries a revocation signature (verified or not: apt's gpgv refuses a revoked key either way) */
  revoked: boolean;
}

export class KeyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFormatError';
  }
}

let library: Promise<typeof OpenPgp> | undefined;
/** Loaded on first use only: the library costs ~100 ms to import and only host placement needs it. */
const openpgp = () => (library ??= import('openpgp'));

const isBinary = (buf: Buffer) => buf.length > 0 && (buf[0] & 0x80) !== 0;

async function readKeys(input: Buffer | string): Promise<OpenPgp.Key[]> {
  const pgp = await openpgp();
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  if (buf.length === 0) throw new KeyFormatError('the key file is empty');
  // Binary OpenPGP always starts with a packet header, whose top bit is set; armor is ASCII.
  if (!isBinary(buf) && !buf.toString('utf8').includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) {
    throw new KeyFormatError('not an OpenPGP public key (no BEGIN/END PGP PUBLIC KEY BLOCK armor)');
  }
  try {
    return isBinary(buf)
      ? await pgp.readKeys({ binaryKeys: buf })
      : await pgp.readKeys({ armoredKeys: buf.toString('utf8') });
  } catch (err) {
    throw new KeyFormatError(`not a readable OpenPGP key: ${(err as Error).message}`);
  }
}

/** The key file's bytes as apt's binary keyring wants them (`gpg --dearmor`); binary input comes back unchanged. */
export async function dearmor(input: Buffer | string): Promise<Buffer> {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  if (isBinary(buf)) return buf;
  const pgp = await openpgp();
  try {
    const { type, data } = await pgp.unarmor(buf.toString('utf8'));
    if (type !== pgp.enums.armor.publicKey) throw new KeyFormatError('the armor is not a PUBLIC KEY BLOCK');
    return Buffer.from(data as Uint8Array);
  } catch (err) {
    if (err instanceof KeyFormatError) throw err;
    throw new KeyFormatError(`not a readable OpenPGP key: ${(err as Error).message}`);
  }
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

/**
 * The primary keys in a key file. apt trusts every primary key in a signed-by keyring, so a caller that pins
 * one fingerprint must also insist there is exactly one. Signatures on data are verified by apt's gpgv, not here.
 */
export async function inspectKeys(input: Buffer | string): Promise<KeyInfo[]> {
  const keys = await readKeys(input);
  return Promise.all(
    keys.map(async (key): Promise<KeyInfo> => {
      const expiry = await key.getExpirationTime();
      return {
        fingerprint: key.getFingerprint().toUpperCase(),
        version: key.keyPacket.version,
        createdAt: seconds(key.getCreationTime()),
        expiresAt: expiry instanceof Date ? seconds(expiry) : undefined,
        revoked: key.revocationSignatures.length > 0 || (await key.isRevoked()),
      };
    }),
  );
}

/** `F640 3F65 …` or `f6403f65…` → `F6403F65…`. */
export function normaliseFingerprint(text: string): string {
  return text.replace(/\s+/g, '').toUpperCase();
}

export function formatFingerprint(fpr: string): string {
  return fpr.replace(/(.{4})/g, '$1 ').trim();
}

export type PinRefusal =
  | { kind: 'unreadable'; message: string }
  | { kind: 'key-count'; found: string[]; want: string }
  | { kind: 'fingerprint'; found: string; want: string }
  | { kind: 'revoked'; fingerprint: string }
  | { kind: 'expired'; expiresAt: number };

export type PinCheck = { ok: true; key: KeyInfo } | { ok: false; refusal: PinRefusal; reason: string };

const day = (s: number) => new Date(s * 1000).toISOString().slice(0, 10);

export function describeRefusal(r: PinRefusal): string {
  switch (r.kind) {
    case 'unreadable':
      return r.message;
    case 'key-count':
      return `it holds ${r.found.length} primary keys (${r.found.join(', ')}); expected only ${r.want}`;
    case 'fingerprint':
      return `its fingerprint is ${formatFingerprint(r.found)}, expected ${formatFingerprint(r.want)}`;
    case 'revoked':
      return `the key ${formatFingerprint(r.fingerprint)} is revoked`;
    case 'expired':
      return `it expired on ${day(r.expiresAt)} (apt then fails with EXPKEYSIG)`;
  }
}

const refuse = (refusal: PinRefusal): PinCheck => ({ ok: false, refusal, reason: describeRefusal(refusal) });

/** Whether a key file holds exactly the pinned primary key, unrevoked and unexpired at `now` (seconds). Never throws. */
export async function checkPinnedKey(
  input: Buffer | string,
  fingerprint: string,
  now: number,
): Promise<PinCheck> {
  let keys: KeyInfo[];
  try {
    keys = await inspectKeys(input);
  } catch (err) {
    return refuse({ kind: 'unreadable', message: (err as Error).message });
  }
  const want = normaliseFingerprint(fingerprint);
  if (keys.length !== 1) return refuse({ kind: 'key-count', found: keys.map((k) => k.fingerprint), want });
  const [key] = keys;
  if (key.fingerprint !== want) return refuse({ kind: 'fingerprint', found: key.fingerprint, want });
  if (key.revoked) return refuse({ kind: 'revoked', fingerprint: key.fingerprint });
  if (key.expiresAt !== undefined && key.expiresAt <= now)
    return refuse({ kind: 'expired', expiresAt: key.expiresAt });
  return { ok: true, key };
}
