import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { knownHostsName, knownKeysFor } from './ssh.js';

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
