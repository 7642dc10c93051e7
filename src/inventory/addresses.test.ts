// Registries as dockerd reads them, and node hosts compared by the address they reach.
import { describe, expect, it } from 'vitest';
import { hostIdentity, registryProblem } from './addresses.js';

describe('registryProblem (dockerd validateHostPort, port required and 1–65535)', () => {
  it.each([
    'gitlab.lan:5050',
    'reg:1',
    'REG-1.lan:65535',
    '10.0.0.5:5000',
    '[2001:db8::5]:5050',
    '[::1]:5000',
    'a.b-c.d:443',
  ])('accepts %s', (r) => {
    expect(registryProblem(r)).toBeUndefined();
  });
  it.each([
    ['reg.lan:99999', /invalid port "99999"/],
    ['reg.lan:0', /invalid port "0"/],
    ['reg.lan:65536', /invalid port/],
    ['reg.lan:+5000', /invalid port/],
    ['reg.lan:', /invalid port ""/],
    ['reg.lan', /port is required/],
    ['[..]:5000', /\[\.\.\] is not an IPv6 address/],
    ['[:::]:5000', /not an IPv6 address/],
    ['[fe80::1%eth0]:5000', /zones are not allowed/],
    ['2001:db8::5:5000', /IPv6 address goes in brackets/],
    ['-reg.lan:5000', /invalid host/],
    ['reg-.lan:5000', /invalid host/],
    ['reg..lan:5000', /invalid host/],
    ['reg.lan.:5000', /invalid host/],
    ['reg_1.lan:5000', /invalid host/],
    ['10.0.0.300:5000', /not an IPv4 address/],
    [':5000', /host is missing/],
    ['http://reg.lan:5000', /without a scheme/],
    ['10.0.0.0/8', /port is required/],
    [`${'a'.repeat(64)}.lan:5000`, /longer than 63/],
  ])('refuses %s', (r, why) => {
    expect(registryProblem(r)).toMatch(why);
  });
});

describe('hostIdentity', () => {
  it('gives every loopback spelling one identity', () => {
    const ids = [
      'localhost',
      'LOCALHOST',
      'localhost.',
      'pi.localhost',
      '127.0.0.1',
      '127.1',
      '0x7f.0.0.1',
      '2130706433',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
    ].map(hostIdentity);
    expect(new Set(ids).size).toBe(1);
  });
  it('keeps other addresses apart and normalises case and IPv6 spelling', () => {
    expect(hostIdentity('127.0.0.2')).not.toBe(hostIdentity('127.0.0.1'));
    expect(hostIdentity('Pi-01.LAN.')).toBe('pi-01.lan');
    expect(hostIdentity('2001:DB8:0:0::5')).toBe(hostIdentity('2001:db8::5'));
    expect(hostIdentity('::ffff:10.0.0.1')).toBe('10.0.0.1');
  });
});
