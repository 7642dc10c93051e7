// Pure checks of the addresses an inventory names: registries as dockerd reads them, node hosts compared by what they reach.
import { isIPv4, isIPv6 } from 'node:net';

/**
 * One component of a registry host name, as distribution/reference's domainNameComponent (which dockerd's
 * validateHostPort matches): letters and digits, hyphens inside.
 */
const DOMAIN_COMPONENT = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;

/**
 * Why `value` is not a registry dockerd would load from `insecure-registries` (moby registry/config.go:
 * newServiceConfig → validateHostPort), or undefined when it is one. Stricter than dockerd where dockerd would
 * accept something that can never work, because one bad entry keeps dockerd from starting, or makes a reload fail:
 * - a port is required and must be 1–65535 in decimal digits (dockerd takes 0, and `+5000` after an IP address);
 * - a bracketed IPv6 address must be a real one without a zone (dockerd's pattern takes `[:::]`);
 * - a name made only of digits and dots must be a dotted-quad IPv4 address (dockerd takes `10.0.0.300` as a name);
 * - DNS limits: 63 characters per component, 253 in all;
 * - no scheme (dockerd strips `http://` with a warning, and `docker info` then lists a different name than the
 *   file holds), no CIDR (not a registry).
 */
export function registryProblem(value: string): string | undefined {
  if (value.includes('://')) return 'expected host:port without a scheme (e.g. gitlab.lan:5050)';
  if (/\s/.test(value)) return 'expected host:port without spaces';
  let host: string;
  let port: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(value);
  if (bracketed) {
    [, host, port] = bracketed;
    if (host.includes('%') || !isIPv6(host))
      return `[${host}] is not an IPv6 address (zones are not allowed)`;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return 'expected host:port (the port is required, e.g. gitlab.lan:5050)';
    host = value.slice(0, colon);
    port = value.slice(colon + 1);
    if (host.includes(':') || host.startsWith('['))
      return 'an IPv6 address goes in brackets: [2001:db8::5]:5050';
    if (host === '') return 'the host is missing';
    if (host.length > 253) return 'the host name is longer than 253 characters';
    const parts = host.split('.');
    const bad = parts.find((p) => !DOMAIN_COMPONENT.test(p) || p.length > 63);
    if (bad !== undefined) {
      return bad === '' || bad.length <= 63
        ? `invalid host ${JSON.stringify(host)} (letters, digits and inner hyphens between dots, as dockerd requires)`
        : `invalid host ${JSON.stringify(host)}: a name component is longer than 63 characters`;
    }
    if (parts.every((p) => /^[0-9]+$/.test(p)) && !isIPv4(host)) return `${host} is not an IPv4 address`;
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    return `invalid port ${JSON.stringify(port)} (expected 1–65535; dockerd refuses to start with it)`;
  }
  return undefined;
}

/**
 * One registry however it is spelled: host names are case-insensitive, an IPv6 address is compared compressed and a
 * port by its number (`Registry.LAN:05000` is `registry.lan:5000`). Only for `value`s registryProblem accepts.
 */
export function registryIdentity(value: string): string {
  const colon = value.lastIndexOf(':');
  const host = value.slice(0, colon).toLowerCase();
  const port = Number(value.slice(colon + 1));
  if (!host.startsWith('[')) return `${host}:${port}`;
  try {
    return `${new URL(`http://${host}/`).hostname}:${port}`;
  } catch {
    return `${host}:${port}`;
  }
}

/**
 * Why `value` is not an address gitlab-runner's metrics listener can bind (an IP address literal: Go's
 * net.Listen takes a name too, but a name resolving to another address on each node binds somewhere unplanned).
 */
export function listenAddressProblem(value: string): string | undefined {
  if (isIPv4(value) || (isIPv6(value) && !value.includes('%'))) return undefined;
  return 'expected an IP address such as 127.0.0.1, 0.0.0.0 (every interface) or :: (no brackets, no port)';
}

const LOOPBACK = 'loopback';

/**
 * What a node's `host` reaches, so two spellings of one address on one port are caught as the same node:
 * case and a trailing dot do not matter; IPv4 in any form getaddrinfo takes (`127.1`, `0x7f.0.0.1`, `2130706433`)
 * is its dotted quad (WHATWG URL host parsing does exactly that); IPv6 is compressed and lowercased, IPv4-mapped
 * IPv6 is the IPv4 address; and `localhost`, `*.localhost` (RFC 6761), 127.0.0.1 and ::1 are all the local host.
 * Other 127.x addresses stay distinct: an sshd can listen on one of them only.
 */
export function hostIdentity(host: string): string {
  let h = host.trim().toLowerCase().replace(/\.$/, '');
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (isIPv6(h) && !h.includes('%')) {
    try {
      h = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    } catch {
      /* keep it as written */
    }
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
    if (mapped) {
      const hi = parseInt(mapped[1], 16);
      const lo = parseInt(mapped[2], 16);
      h = [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
    }
  } else {
    try {
      h = new URL(`http://${h}/`).hostname;
    } catch {
      /* not a URL host: compare as written (lowercase) */
    }
  }
  if (h === 'localhost' || h.endsWith('.localhost') || h === '127.0.0.1' || h === '::1') return LOOPBACK;
  return h;
}
