// Key pinning with the openpgp library: fingerprint of armored and binary keys, expiry, revocation, one primary key only.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { TESTBED_REPOSITORY_FINGERPRINT } from '#testbed';
import { checkPinnedKey, dearmor, inspectKeys, normaliseFingerprint } from './openpgp.js';

// The test fleet's repository key (ed25519, no expiry), made with gpg for scripts/testbed.
const TESTBED_KEY = readFileSync(
  join(import.meta.dirname, '..', '..', 'scripts', 'testbed', 'repository', 'signing-key.asc'),
  'utf8',
);
const TESTBED_BINARY = readFileSync(
  join(import.meta.dirname, '..', '..', 'scripts', 'testbed', 'repository', 'signing-key.gpg'),
);
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

/** A fresh ed25519 key made by the library, as of `date`; `expiresAfter` in seconds. */
async function generated(date: Date, expiresAfter = 0) {
  return openpgp.generateKey({
    userIDs: [{ name: 'runner-fleet unit test', email: 'test@runner-fleet.invalid' }],
    date,
    keyExpirationTime: expiresAfter,
    format: 'object',
  });
}

describe('openpgp key pinning', () => {
  it('reads the fingerprint and creation time of an armored key, and no expiry', async () => {
    const [key] = await inspectKeys(TESTBED_KEY);
    expect(key).toMatchObject({ fingerprint: TESTBED_FPR, version: 4, revoked: false });
    expect(key.expiresAt).toBeUndefined();
    expect(TESTBED_REPOSITORY_FINGERPRINT).toBe(TESTBED_FPR);
    expect(
      await checkPinnedKey(TESTBED_KEY, TESTBED_FPR.toLowerCase().replace(/(.{4})/g, '$1 '), NOW),
    ).toMatchObject({ ok: true });
  });

  it('gives the same answer for the binary keyring (gpg --dearmor), and dearmors to exactly those bytes', async () => {
    expect((await inspectKeys(TESTBED_BINARY)).map((k) => k.fingerprint)).toEqual([TESTBED_FPR]);
    expect(await checkPinnedKey(TESTBED_BINARY, TESTBED_FPR, NOW)).toMatchObject({ ok: true });
    expect((await dearmor(TESTBED_KEY)).equals(TESTBED_BINARY)).toBe(true);
    expect(await dearmor(TESTBED_BINARY)).toBe(TESTBED_BINARY);
  });

  it('finds the expiry in the self-signature and refuses an expired key (gpg-made and library-made)', async () => {
    const [key] = await inspectKeys(EXPIRED_KEY);
    expect(key.fingerprint).toBe(EXPIRED_FPR);
    expect(new Date(key.expiresAt! * 1000).toISOString().slice(0, 10)).toBe('2020-12-31');
    expect(await checkPinnedKey(EXPIRED_KEY, EXPIRED_FPR, NOW)).toMatchObject({
      ok: false,
      reason: 'it expired on 2020-12-31 (apt then fails with EXPKEYSIG)',
    });

    const { publicKey } = await generated(new Date('2025-01-01T00:00:00Z'), 86_400 * 30);
    const fpr = publicKey.getFingerprint();
    const r = await checkPinnedKey(publicKey.armor(), fpr, NOW);
    expect(r).toMatchObject({
      ok: false,
      refusal: { kind: 'expired' },
      reason: 'it expired on 2025-01-31 (apt then fails with EXPKEYSIG)',
    });
    // Before it expired, the same key is fine.
    expect(
      await checkPinnedKey(publicKey.armor(), fpr, Date.parse('2025-01-15T00:00:00Z') / 1000),
    ).toMatchObject({ ok: true });
  });

  it('refuses a revoked key, armored or binary', async () => {
    const { privateKey } = await generated(new Date('2025-01-01T00:00:00Z'));
    const { publicKey: revoked } = await openpgp.revokeKey({
      key: privateKey,
      format: 'object',
      date: new Date('2025-06-01T00:00:00Z'),
    });
    const fpr = revoked.getFingerprint();
    const [info] = await inspectKeys(revoked.armor());
    expect(info.revoked).toBe(true);
    for (const form of [revoked.armor(), Buffer.from(revoked.write())]) {
      expect(await checkPinnedKey(form, fpr, NOW)).toMatchObject({
        ok: false,
        refusal: { kind: 'revoked' },
        reason: expect.stringContaining('is revoked'),
      });
    }
    // The unrevoked key it came from passes.
    expect(await checkPinnedKey(privateKey.toPublic().armor(), fpr, NOW)).toMatchObject({ ok: true });
  });

  it('refuses another key, and a file with a second primary key that apt would trust as well', async () => {
    expect(await checkPinnedKey(TESTBED_KEY, EXPIRED_FPR, NOW)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('expected 8102 E2A8'),
    });
    const both = Buffer.concat([await dearmor(TESTBED_KEY), await dearmor(EXPIRED_KEY)]);
    const r = await checkPinnedKey(both, TESTBED_FPR, NOW);
    expect(r).toMatchObject({
      ok: false,
      refusal: { kind: 'key-count' },
      reason: expect.stringMatching(/holds 2 primary keys/),
    });
  });

  it('refuses what is not a key, without throwing', async () => {
    expect(await checkPinnedKey('<html>404</html>', TESTBED_FPR, NOW)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('no BEGIN/END'),
    });
    expect(await checkPinnedKey(Buffer.from([0x99, 0x00, 0x10, 4]), TESTBED_FPR, NOW)).toMatchObject({
      ok: false,
      refusal: { kind: 'unreadable' },
    });
    expect(await checkPinnedKey('', TESTBED_FPR, NOW)).toMatchObject({
      ok: false,
      reason: 'the key file is empty',
    });
    expect(
      await checkPinnedKey(
        '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n',
        TESTBED_FPR,
        NOW,
      ),
    ).toMatchObject({ ok: false, refusal: { kind: 'unreadable' } });
    expect(normaliseFingerprint('f640 3f65 44a3')).toBe('F6403F6544A3');
  });
});
