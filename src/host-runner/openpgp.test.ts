// Key pinning: fingerprints of old- and new-format keys, expiry from self-signatures, one primary key only.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { armorPublicKey, checkPinnedKey, dearmor, inspectKeys, normaliseFingerprint, readPackets } from './openpgp.js';

// The test fleet's repository key (ed25519, no expiry), made with gpg for scripts/testbed.
const TESTBED_KEY = readFileSync(join(import.meta.dirname, '..', '..', 'scripts', 'testbed', 'repository', 'signing-key.asc'), 'utf8');
const TESTBED_FPR = 'A0D3D76DCDC5B3A395EAD8371EBFE911B8F8121F';

// Made with `gpg --faked-system-time 20200101T000000 --quick-gen-key … ed25519 sign 1y`: expired 2020-12-31.
const EXPIRED_KEY = `-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEXgvhABYJKwYBBAHaRw8BAQdAD/S6jmHjxzKHfHvZBgQCQcAQ2VyPYcKKUcxz
0YW2ts20RnJ1bm5lci1mbGVldCB1bml0IHRlc3Qga2V5IHRoYXQgZXhwaXJlZCA8
ZXhwaXJlZEBydW5uZXItZmxlZXQuaW52YWxpZD6IlgQTFggAPhYhBIEC4qikZ8bp
RxApw4vw7ypYc5BkBQJeC+EAAhsDBQkB4TOABQsJCAcCBhUKCQgLAgQWAgMBAh4B
AheAAAoJEIvw7ypYc5BkXjIBAJaeWNdutf/rif2Lrc++axZL0YugmO3PotR1XUKj
MTb7AQCRDSHTkX0mzC/93yp3DPljsqLLBXZXY39KNlLV9n/gBw==
=L1jc
-----END PGP PUBLIC KEY BLOCK-----
`;
const EXPIRED_FPR = '8102E2A8A467C6E9471029C38BF0EF2A58739064';

const NOW = Date.parse('2026-11-01T00:00:00Z') / 1000;

/** Re-encodes a packet with a new-format header, as GitLab's key is encoded (gpg writes old-format headers). */
function newFormat(tag: number, body: Buffer): Buffer {
  const len = body.length;
  const head = len < 192 ? Buffer.from([0xc0 | tag, len]) : Buffer.from([0xc0 | tag, ((len - 192) >> 8) + 192, (len - 192) & 0xff]);
  return Buffer.concat([head, body]);
}

describe('openpgp key pinning', () => {
  it('reads the fingerprint and creation time of an armored key, and no expiry', () => {
    const [key] = inspectKeys(TESTBED_KEY);
    expect(key.fingerprint).toBe(TESTBED_FPR);
    expect(key.version).toBe(4);
    expect(key.expiresAt).toBeUndefined();
    expect(checkPinnedKey(TESTBED_KEY, TESTBED_FPR.toLowerCase().replace(/(.{4})/g, '$1 '), NOW)).toMatchObject({ ok: true });
  });

  it('gives the same answer for binary keys and new-format packet headers', () => {
    const packets = readPackets(dearmor(TESTBED_KEY));
    const binary = Buffer.concat(packets.map((p) => newFormat(p.tag, p.body)));
    expect(inspectKeys(binary).map((k) => k.fingerprint)).toEqual([TESTBED_FPR]);
  });

  it('finds the expiry in the self-signature and refuses an expired key', () => {
    const [key] = inspectKeys(EXPIRED_KEY);
    expect(key.fingerprint).toBe(EXPIRED_FPR);
    expect(new Date(key.expiresAt! * 1000).toISOString().slice(0, 10)).toBe('2020-12-31');
    const r = checkPinnedKey(EXPIRED_KEY, EXPIRED_FPR, NOW);
    expect(r).toEqual({ ok: false, reason: 'it expired on 2020-12-31 (apt then fails with EXPKEYSIG)' });
  });

  it('refuses another key, and a file with a second primary key that apt would trust as well', () => {
    expect(checkPinnedKey(TESTBED_KEY, EXPIRED_FPR, NOW)).toMatchObject({ ok: false, reason: expect.stringContaining('expected 8102 E2A8') });
    const both = Buffer.concat([dearmor(TESTBED_KEY), dearmor(EXPIRED_KEY)]);
    const r = checkPinnedKey(both, TESTBED_FPR, NOW);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/holds 2 primary keys/);
  });

  it('armors binary keys the way gpg does (same base64 lines and CRC-24)', () => {
    expect(armorPublicKey(dearmor(TESTBED_KEY))).toBe(TESTBED_KEY);
  });

  it('refuses what is not a key, without throwing', () => {
    expect(checkPinnedKey('<html>404</html>', TESTBED_FPR, NOW)).toMatchObject({ ok: false, reason: expect.stringContaining('no BEGIN/END') });
    expect(checkPinnedKey(Buffer.from([0x99, 0x00, 0x10, 4]), TESTBED_FPR, NOW)).toMatchObject({ ok: false, reason: 'truncated packet' });
    expect(normaliseFingerprint('f640 3f65 44a3')).toBe('F6403F6544A3');
  });
});
