// Just enough OpenPGP (RFC 4880 / 9580) to pin an apt repository key: dearmor, list packets, primary key fingerprint, expiry.
import { createHash } from 'node:crypto';

/** One packet: its tag and body (header stripped). */
export interface Packet {
  tag: number;
  body: Buffer;
}

export interface KeyInfo {
  /** uppercase hex, no spaces */
  fingerprint: string;
  version: number;
  /** seconds since the epoch */
  createdAt: number;
  /** from the newest self-signature that sets one; undefined: never expires */
  expiresAt?: number;
}

export class KeyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFormatError';
  }
}

const PUBLIC_KEY = 6;
const SIGNATURE = 2;
const USER_ID = 13;

/** The bytes of an ASCII-armored block (headers and the CRC line dropped), or the input itself when it is binary. */
export function dearmor(input: Buffer | string): Buffer {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  // Binary OpenPGP always starts with a packet header, whose top bit is set; armor is ASCII.
  if (buf.length > 0 && (buf[0] & 0x80) !== 0) return buf;
  const text = buf.toString('utf8').replace(/\r/g, '');
  const begin = text.indexOf('-----BEGIN PGP PUBLIC KEY BLOCK-----');
  const end = text.indexOf('-----END PGP PUBLIC KEY BLOCK-----');
  if (begin < 0 || end < begin) throw new KeyFormatError('not an OpenPGP public key (no BEGIN/END PGP PUBLIC KEY BLOCK armor)');
  const lines = text.slice(begin, end).split('\n').slice(1);
  // Armor headers (`Comment: …`) end at the first empty line, when there are any.
  const blank = lines.findIndex((l) => l.trim() === '');
  const hasHeaders = blank >= 0 && lines.slice(0, blank).every((l) => /^[A-Za-z-]+: /.test(l));
  const body = (hasHeaders ? lines.slice(blank + 1) : lines).filter((l) => l.trim() !== '' && !l.startsWith('='));
  const b64 = body.join('');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new KeyFormatError('the armored key is not valid base64');
  return Buffer.from(b64, 'base64');
}

/** Splits binary OpenPGP into packets; old and new header formats, definite lengths only (keys never use partial ones). */
export function readPackets(data: Buffer): Packet[] {
  const packets: Packet[] = [];
  let i = 0;
  while (i < data.length) {
    const h = data[i];
    if ((h & 0x80) === 0) throw new KeyFormatError(`byte ${i}: not a packet header`);
    let tag: number;
    let len: number;
    let start: number;
    if (h & 0x40) {
      tag = h & 0x3f;
      const o1 = data[i + 1];
      if (o1 === undefined) throw new KeyFormatError('truncated packet header');
      if (o1 < 192) {
        len = o1;
        start = i + 2;
      } else if (o1 < 224) {
        len = ((o1 - 192) << 8) + data[i + 2] + 192;
        start = i + 3;
      } else if (o1 === 255) {
        len = data.readUInt32BE(i + 2);
        start = i + 6;
      } else {
        throw new KeyFormatError('partial body lengths do not occur in keys');
      }
    } else {
      tag = (h >> 2) & 0x0f;
      const type = h & 3;
      if (type === 0) {
        len = data[i + 1];
        start = i + 2;
      } else if (type === 1) {
        len = data.readUInt16BE(i + 1);
        start = i + 3;
      } else if (type === 2) {
        len = data.readUInt32BE(i + 1);
        start = i + 5;
      } else {
        throw new KeyFormatError('indeterminate packet lengths do not occur in keys');
      }
    }
    if (start + len > data.length) throw new KeyFormatError('truncated packet');
    packets.push({ tag, body: data.subarray(start, start + len) });
    i = start + len;
  }
  return packets;
}

/** v4: SHA-1 over 0x99, a 2-octet length and the key body; v5/v6: SHA-256 over 0x9A/0x9B and a 4-octet length. */
export function fingerprintOf(keyBody: Buffer): string {
  const version = keyBody[0];
  if (version === 4) {
    const head = Buffer.from([0x99, keyBody.length >> 8, keyBody.length & 0xff]);
    return createHash('sha1').update(head).update(keyBody).digest('hex').toUpperCase();
  }
  if (version === 5 || version === 6) {
    const head = Buffer.alloc(5);
    head[0] = version === 5 ? 0x9a : 0x9b;
    head.writeUInt32BE(keyBody.length, 1);
    return createHash('sha256').update(head).update(keyBody).digest('hex').toUpperCase();
  }
  throw new KeyFormatError(`unsupported key version ${version}`);
}

/** Subpackets of one signature area: type → data (the critical bit dropped). */
function subpackets(area: Buffer): { type: number; data: Buffer }[] {
  const out: { type: number; data: Buffer }[] = [];
  let i = 0;
  while (i < area.length) {
    const o1 = area[i];
    let len: number;
    let start: number;
    if (o1 < 192) {
      len = o1;
      start = i + 1;
    } else if (o1 < 255) {
      len = ((o1 - 192) << 8) + area[i + 1] + 192;
      start = i + 2;
    } else {
      len = area.readUInt32BE(i + 1);
      start = i + 5;
    }
    if (len < 1 || start + len > area.length) break;
    out.push({ type: area[start] & 0x7f, data: area.subarray(start + 1, start + len) });
    i = start + len;
  }
  return out;
}

/** Hashed-area facts of a v4/v5/v6 signature that matter for a key's lifetime; undefined for other versions. */
function signatureFacts(body: Buffer): { type: number; createdAt?: number; keyExpiresAfter?: number } | undefined {
  const version = body[0];
  if (version !== 4 && version !== 5 && version !== 6) return undefined;
  const type = body[1];
  const hashedLen = version === 6 ? body.readUInt32BE(4) : body.readUInt16BE(4);
  const hashedStart = version === 6 ? 8 : 6;
  const facts: { type: number; createdAt?: number; keyExpiresAfter?: number } = { type };
  for (const sp of subpackets(body.subarray(hashedStart, hashedStart + hashedLen))) {
    if (sp.type === 2 && sp.data.length === 4) facts.createdAt = sp.data.readUInt32BE(0);
    if (sp.type === 9 && sp.data.length === 4) facts.keyExpiresAfter = sp.data.readUInt32BE(0);
  }
  return facts;
}

/**
 * The primary keys in a key file. apt trusts every primary key in a signed-by keyring, so a caller that pins
 * one fingerprint must also insist there is exactly one. Signatures are not verified here: apt's gpgv does that.
 */
export function inspectKeys(input: Buffer | string): KeyInfo[] {
  const packets = readPackets(dearmor(input));
  if (packets.length === 0) throw new KeyFormatError('the key file is empty');
  if (packets[0].tag !== PUBLIC_KEY) throw new KeyFormatError(`expected a public key packet first, found packet type ${packets[0].tag}`);
  const keys: (KeyInfo & { newestSelfSig: number })[] = [];
  let current: (KeyInfo & { newestSelfSig: number }) | undefined;
  let afterUserId = false;
  for (const p of packets) {
    if (p.tag === PUBLIC_KEY) {
      const version = p.body[0];
      current = { fingerprint: fingerprintOf(p.body), version, createdAt: p.body.readUInt32BE(1), newestSelfSig: -1 };
      keys.push(current);
      afterUserId = false;
    } else if (p.tag === USER_ID) {
      afterUserId = true;
    } else if (p.tag === SIGNATURE && current) {
      const s = signatureFacts(p.body);
      // Self-certifications (0x10-0x13) on a user ID, or a direct-key signature (0x1f), carry the key's expiry.
      const selfCert = (afterUserId && s && s.type >= 0x10 && s.type <= 0x13) || s?.type === 0x1f;
      if (s && selfCert && (s.createdAt ?? 0) >= current.newestSelfSig) {
        current.newestSelfSig = s.createdAt ?? 0;
        current.expiresAt = s.keyExpiresAfter ? current.createdAt + s.keyExpiresAfter : undefined;
      }
    } else if (p.tag === 14) {
      // A subkey: signatures after it bind the subkey and say nothing about the primary key's lifetime.
      afterUserId = false;
    }
  }
  return keys.map(({ newestSelfSig: _unused, ...k }) => k);
}

/** `F640 3F65 …` or `f6403f65…` → `F6403F65…`. */
export function normaliseFingerprint(text: string): string {
  return text.replace(/\s+/g, '').toUpperCase();
}

export function formatFingerprint(fpr: string): string {
  return fpr.replace(/(.{4})/g, '$1 ').trim();
}

export type PinCheck = { ok: true; key: KeyInfo } | { ok: false; reason: string };

/** Whether a key file holds exactly the pinned primary key, unexpired at `now` (seconds). Never throws. */
export function checkPinnedKey(input: Buffer | string, fingerprint: string, now: number): PinCheck {
  let keys: KeyInfo[];
  try {
    keys = inspectKeys(input);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  const want = normaliseFingerprint(fingerprint);
  if (keys.length !== 1) return { ok: false, reason: `it holds ${keys.length} primary keys (${keys.map((k) => k.fingerprint).join(', ')}); expected only ${want}` };
  const [key] = keys;
  if (key.fingerprint !== want) return { ok: false, reason: `its fingerprint is ${formatFingerprint(key.fingerprint)}, expected ${formatFingerprint(want)}` };
  if (key.expiresAt !== undefined && key.expiresAt <= now) {
    return { ok: false, reason: `it expired on ${new Date(key.expiresAt * 1000).toISOString().slice(0, 10)} (apt then fails with EXPKEYSIG)` };
  }
  return { ok: true, key };
}

/** CRC-24 of RFC 4880 section 6.1, for the armor checksum line. */
function crc24(data: Buffer): number {
  let crc = 0xb704ce;
  for (const byte of data) {
    crc ^= byte << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

/** ASCII armor for binary key bytes: apt reads a signed-by keyring as armor only when the file ends in .asc. */
export function armorPublicKey(bytes: Buffer): string {
  const b64 = bytes.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  const crc = Buffer.from([(crc24(bytes) >> 16) & 0xff, (crc24(bytes) >> 8) & 0xff, crc24(bytes) & 0xff]).toString('base64');
  return `-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n${b64}\n=${crc}\n-----END PGP PUBLIC KEY BLOCK-----\n`;
}
