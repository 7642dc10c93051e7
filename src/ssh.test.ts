import { execFileSync } from 'node:child_process';
import { createHmac, createVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2, { type ParsedKey } from 'ssh2';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  cachedSigner,
  keysFor,
  knownHostsName,
  parseKnownHosts,
  readIdentity,
  readKnownHosts,
} from './ssh.js';

/** known_hosts text asked about one name, as connectNode asks it (parsed once, then matched). */
const knownKeysFor = (text: string, name: string) => keysFor(parseKnownHosts(text), name);

const KEY = Buffer.from('key-one').toString('base64');
const OTHER = Buffer.from('key-two').toString('base64');

describe('known_hosts matching', () => {
  it('names non-standard ports in brackets', () => {
    expect(knownHostsName('10.0.0.1', 22)).toBe('10.0.0.1');
    expect(knownHostsName('10.0.0.1', 2201)).toBe('[10.0.0.1]:2201');
  });

  it('finds plain, wildcard and hashed entries, and honours negation and @revoked', () => {
    const salt = Buffer.from('0123456789abcdef0123');
    const hash = createHmac('sha1', salt).update('[pi3]:2203').digest('base64');
    const text = [
      `# comment`,
      `[pi1]:2201,other ssh-ed25519 ${KEY}`,
      `pi2* ssh-ed25519 ${OTHER}`,
      `|1|${salt.toString('base64')}|${hash} ssh-ed25519 ${KEY}`,
      `*,!pi9 ssh-rsa ${OTHER}`,
      `@revoked pi5 ssh-ed25519 ${KEY}`,
    ].join('\n');
    expect(knownKeysFor(text, '[pi1]:2201').keys.map((k) => k.toString())).toEqual(['key-one', 'key-two']);
    expect(knownKeysFor(text, 'pi2.lan').keys.map(String)).toEqual(['key-two', 'key-two']);
    expect(knownKeysFor(text, '[pi3]:2203').keys.map(String)).toContain('key-one');
    expect(knownKeysFor(text, 'pi9').keys).toEqual([]);
    expect(knownKeysFor(text, 'pi5').revoked.map(String)).toEqual(['key-one']);
  });
});

describe('known_hosts markers, as OpenSSH hostfile.c reads them', () => {
  const lines = (marker: string) => `${marker} pi7 ssh-ed25519 ${KEY}`;
  it('@revoked and @cert-authority are exact, case-sensitive words', () => {
    expect(knownKeysFor(lines('@revoked'), 'pi7')).toEqual({ keys: [], revoked: [Buffer.from('key-one')] });
    expect(knownKeysFor(lines('@cert-authority'), 'pi7')).toEqual({ keys: [], revoked: [] });
    expect(knownKeysFor(`\t ${lines('@revoked')}`, 'pi7').revoked).toHaveLength(1);
  });
  it.each([
    '@Revoked',
    '@REVOKED',
    '@revoked:',
    '@Cert-Authority',
    '@cert_authority',
    '@',
    '@revoked @revoked',
    '@revoked @cert-authority',
    '@foo',
  ])('a line marked %j is ignored: neither trusted nor revoked', (marker) => {
    expect(knownKeysFor(lines(marker), 'pi7')).toEqual({ keys: [], revoked: [] });
  });
  it('a key that is not base64 makes the line invalid', () => {
    expect(knownKeysFor('pi7 ssh-ed25519 not*base64', 'pi7').keys).toEqual([]);
  });
});

describe('known_hosts read once per run', () => {
  it('answers every node from one parse, and reads the file again once it changed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-kh-'));
    try {
      const path = join(dir, 'known_hosts');
      writeFileSync(path, `pi1 ssh-ed25519 ${KEY}\npi2 ssh-ed25519 ${OTHER}\n`);
      const first = readKnownHosts(path);
      expect(readKnownHosts(path)).toBe(first);
      expect(keysFor(first, 'pi2').keys.map(String)).toEqual(['key-two']);
      // A node re-keyed while the run goes on (or a test writing the same path): the new key, not the kept one.
      writeFileSync(path, `pi1 ssh-ed25519 ${OTHER}\n`);
      expect(keysFor(readKnownHosts(path), 'pi1').keys.map(String)).toEqual(['key-two']);
      expect(keysFor(readKnownHosts(path), 'pi2').keys).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the client key, parsed once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-id-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let made = 0;
  const keyOf = (type: string, bits?: number) => {
    const path = join(dir, `id_${type}_${++made}`);
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      type,
      ...(bits ? ['-b', String(bits)] : []),
      '-N',
      '',
      '-f',
      path,
    ]);
    return { path, text: readFileSync(path, 'utf8') };
  };
  const parse = (text: string) => ssh2.utils.parseKey(text) as ParsedKey;
  const data = Buffer.from('session id and userauth request');

  it('an ed25519 key signs through the kept KeyObject, and the signature verifies', () => {
    const { text } = keyOf('ed25519');
    const parsed = parse(text);
    const pemSign = vi.spyOn(parsed, 'sign');
    const key = cachedSigner(parsed);
    const sig = key.sign(data);
    expect(sig).toBeInstanceOf(Buffer);
    expect(parsed.verify(data, sig as Buffer)).toBe(true);
    expect(pemSign).not.toHaveBeenCalled();
    // What ssh2 reads from the key besides sign is the parsed key's own.
    expect(key.getPublicSSH().equals(parsed.getPublicSSH())).toBe(true);
    expect(ssh2.utils.parseKey(key as unknown as string)).toBe(key);
  });

  it('an RSA key signs with the hash ssh2 names (rsa-sha2-512), through the KeyObject', () => {
    const parsed = parse(keyOf('rsa', 2048).text);
    const pemSign = vi.spyOn(parsed, 'sign');
    const sig = cachedSigner(parsed).sign(data, 'sha512') as Buffer;
    expect(createVerify('sha512').update(data).verify(parsed.getPublicPEM()!, sig)).toBe(true);
    expect(pemSign).not.toHaveBeenCalled();
  });

  it('no hash named for a key that needs one (ECDSA): ssh2 signs, with its default for the key type', () => {
    const parsed = parse(keyOf('ecdsa', 256).text);
    const pemSign = vi.spyOn(parsed, 'sign');
    const sig = cachedSigner(parsed).sign(data);
    expect(pemSign).toHaveBeenCalledWith(data, undefined);
    expect(parsed.verify(data, sig as Buffer)).toBe(true);
  });

  it('a failing signature is returned as an error, as ssh2 expects, not thrown', () => {
    const parsed = parse(keyOf('ed25519').text);
    expect(cachedSigner(parsed).sign(data, 'no-such-hash')).toBeInstanceOf(Error);
  });

  it('readIdentity: one parse per file, an error for what is no private key', () => {
    const { path } = keyOf('ed25519');
    const key = readIdentity(path);
    expect(key).not.toBeInstanceOf(Error);
    expect(readIdentity(path)).toBe(key);
    const bad = join(dir, 'not-a-key');
    writeFileSync(bad, 'garbage\n');
    expect(readIdentity(bad)).toBeInstanceOf(Error);
    expect(readIdentity(`${path}.pub`)).toEqual(new Error('it holds no private key'));
  });
});
