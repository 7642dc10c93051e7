// The SSH adapter: one verified connection per node, exec with a per-connection channel bound, `sudo -n`.
import { createHmac, createPrivateKey, sign as signWith, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { NodeSSH } from 'node-ssh';
import ssh2, { type ParsedKey } from 'ssh2';
import { RemoteCommandError } from './errors.js';
import type { NodeSpec } from './inventory/types.js';
import { commandTrace } from './log.js';
import { redact } from './secrets.js';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What the benchmark reports: connections opened and command round trips, per node. */
export const sshStats = { connections: 0, roundTrips: 0 };

/** How a host appears in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
}

/** A known_hosts host field, compiled once: a hashed name (`|1|salt|hash`) or comma-separated globs, `!` negating. */
type HostMatcher =
  | { kind: 'hashed'; salt: Buffer; hash: string }
  | { kind: 'globs'; globs: { negated: boolean; re: RegExp }[] }
  | { kind: 'never' };

function hostMatcher(field: string): HostMatcher {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return { kind: 'never' };
    return { kind: 'hashed', salt: Buffer.from(salt, 'base64'), hash };
  }
  return {
    kind: 'globs',
    globs: field.split(',').map((pattern) => {
      const negated = pattern.startsWith('!');
      return { negated, re: globToRegExp(negated ? pattern.slice(1) : pattern) };
    }),
  };
}

function hostMatches(matcher: HostMatcher, name: string): boolean {
  switch (matcher.kind) {
    case 'never':
      return false;
    case 'hashed':
      return createHmac('sha1', matcher.salt).update(name).digest('base64') === matcher.hash;
    case 'globs': {
      let matched = false;
      for (const { negated, re } of matcher.globs) {
        if (!re.test(name)) continue;
        if (negated) return false;
        matched = true;
      }
      return matched;
    }
  }
}

type Marker = 'none' | 'cert-authority' | 'revoked';

/**
 * A line's marker as OpenSSH's hostfile.c (check_markers) reads it: at most one, compared case-sensitively
 * (`@cert-authority`, `@revoked`). Anything else starting with `@` (`@Revoked`, `@revoked@x`, two markers) is an
 * error, and OpenSSH then skips the whole line: such a line must never count as a trusted key.
 */
function readMarker(fields: string[]): { marker: Marker; rest: string[] } | undefined {
  if (!fields[0]?.startsWith('@')) return { marker: 'none', rest: fields };
  const word = fields[0];
  // hostfile.c: a marker is 2..31 bytes, terminated by whitespace, and only one is allowed.
  if (word.length < 2 || word.length > 31 || fields[1]?.startsWith('@')) return undefined;
  if (word === '@cert-authority') return { marker: 'cert-authority', rest: fields.slice(1) };
  if (word === '@revoked') return { marker: 'revoked', rest: fields.slice(1) };
  return undefined;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** One usable known_hosts line: CA lines and lines OpenSSH would ignore are left out when the file is read. */
export interface KnownHostsEntry {
  hosts: HostMatcher;
  revoked: boolean;
  key: Buffer;
}

/** Reads known_hosts once; `keysFor` then answers for each node without reading or compiling it again. */
export function parseKnownHosts(knownHostsText: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  for (const raw of knownHostsText.split('\n')) {
    // OpenSSH skips leading spaces and tabs only, and splits fields on spaces and tabs.
    const line = raw.replace(/^[ \t]+/, '');
    if (!line || line.startsWith('#')) continue;
    const read = readMarker(line.split(/[ \t]+/));
    if (!read) continue; // invalid marker: the line is ignored, as OpenSSH does
    const { marker, rest: parts } = read;
    // Certificates are not offered by ssh2, so CA lines can never vouch for a plain host key.
    if (marker === 'cert-authority' || parts.length < 3) continue;
    // A key OpenSSH cannot decode makes the line invalid (ignored), not a key that matches by accident.
    if (!BASE64.test(parts[2])) continue;
    entries.push({
      hosts: hostMatcher(parts[0]),
      revoked: marker === 'revoked',
      key: Buffer.from(parts[2], 'base64'),
    });
  }
  return entries;
}

/** The host keys known_hosts lists for `name`; `revoked` keys must be refused even if listed. */
export function keysFor(entries: KnownHostsEntry[], name: string): { keys: Buffer[]; revoked: Buffer[] } {
  const keys: Buffer[] = [];
  const revoked: Buffer[] = [];
  for (const e of entries) if (hostMatches(e.hosts, name)) (e.revoked ? revoked : keys).push(e.key);
  return { keys, revoked };
}

/**
 * The client key, parsed once. ssh2 signs with the key's PEM text, which node's crypto parses again for every
 * signature (OpenSSL's decoders: measured ~4 million instructions per connection, a fifth of a bare ssh2 connect and
 * exec); this signs with a KeyObject made once. Without a named hash, any key but an EdDSA one (which takes none)
 * goes to ssh2's own sign, so its default hash per key type stays its own.
 */
export function cachedSigner(parsed: ParsedKey): ParsedKey {
  const pem = parsed.getPrivatePEM();
  let keyObject: KeyObject | undefined;
  try {
    keyObject = pem ? createPrivateKey(pem) : undefined;
  } catch {
    keyObject = undefined; // ssh2's own sign reports it, as before
  }
  const eddsa = keyObject?.asymmetricKeyType === 'ed25519' || keyObject?.asymmetricKeyType === 'ed448';
  const sign = (data: Buffer, algo?: string): Buffer | Error => {
    if (!keyObject || (!algo && !eddsa)) return parsed.sign(data, algo);
    try {
      return signWith(algo || null, data, keyObject);
    } catch (err) {
      return err as Error;
    }
  };
  // The parsed key stays the prototype: ssh2 recognises it as parsed and reads its public half from it.
  return Object.create(parsed, { sign: { value: sign } }) as ParsedKey;
}

/**
 * What a connect reads from a file, kept for the run: one read and parse per file, not per node. A file that changed
 * since (inode, size, mtime or ctime) is read again.
 */
function readOncePerChange<T>(parse: (text: string) => T): (path: string) => T {
  const cache = new Map<string, { stamp: string; value: T }>();
  return (path) => {
    const st = statSync(path, { bigint: true });
    const stamp = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    const hit = cache.get(path);
    if (hit?.stamp === stamp) return hit.value;
    const value = parse(readFileSync(path, 'utf8'));
    cache.set(path, { stamp, value });
    return value;
  };
}

export const readKnownHosts = readOncePerChange(parseKnownHosts);

/** The identity file's key, ready to sign, or why it cannot be used. */
export const readIdentity = readOncePerChange((text): ParsedKey | Error => {
  const parsed = ssh2.utils.parseKey(text);
  if (parsed instanceof Error) return parsed;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key?.isPrivateKey()) return new Error('it holds no private key');
  return cachedSigner(key);
});

/** Limits concurrent exec channels on one connection: OpenSSH allows 10 sessions per connection by default. */
class Semaphore {
  private waiting: (() => void)[] = [];
  private active = 0;
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export interface ExecOptions {
  /** run as root through `sudo -n` */
  sudo?: boolean;
  /** name of the step, for error messages */
  step?: string;
}

/** A connection to one node: SSH (`connectNode`), or a fake in tests. Always `close()` (or use `withNode`). */
export interface NodeConnection {
  readonly node: NodeSpec;
  /** Runs a shell script; never rejects on a non-zero exit (see `check`). */
  exec(script: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Like exec, but a non-zero exit rejects with a RemoteCommandError naming the step. */
  check(script: string, opts: ExecOptions & { step: string }): Promise<ExecResult>;
  close(): void;
}

class SshNodeConnection implements NodeConnection {
  private readonly channels = new Semaphore(6);
  constructor(
    readonly node: NodeSpec,
    private readonly ssh: NodeSSH,
  ) {}

  /** Runs a shell script; never rejects on a non-zero exit (see `check`). */
  async exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    // The script travels on stdin, so it never appears in the remote process list or in sudo logs.
    // File contents are embedded in the script (base64), so one channel carries a whole step.
    const command = opts.sudo ? 'sudo -n sh -s' : 'sh -s';
    const stdin = `${script}\n`;
    return this.channels.run(async () => {
      sshStats.roundTrips++;
      commandTrace.emit?.(this.node.name, `${opts.sudo ? 'sudo ' : ''}${opts.step ?? firstLine(script)}`);
      let r: Awaited<ReturnType<NodeSSH['execCommand']>>;
      try {
        r = await this.ssh.execCommand(command, { stdin });
      } catch (err) {
        // ssh2 says only "Unable to exec" or "Not connected": say which node, where and during what.
        const { user, host, port } = this.node;
        throw new SshConnectError(
          this.node.name,
          `lost the SSH connection to ${user}@${host}:${port} during ${opts.step ?? firstLine(script)} (${err instanceof Error ? err.message : String(err)}); nothing after it ran on this node`,
        );
      }
      if (
        opts.sudo &&
        r.code !== 0 &&
        /sudo: (a password is required|a terminal is required)/.test(r.stderr)
      ) {
        throw new RemoteCommandError(
          this.node.name,
          opts.step ?? 'sudo',
          r.code,
          `sudo on ${this.node.host} needs a password for ${this.node.user}; runner-fleet never types passwords: allow NOPASSWD for this user (e.g. /etc/sudoers.d/${this.node.user})`,
        );
      }
      return { code: r.code, stdout: r.stdout, stderr: redact(r.stderr) };
    });
  }

  /** Like exec, but a non-zero exit rejects with a RemoteCommandError naming the step. */
  async check(script: string, opts: ExecOptions & { step: string }): Promise<ExecResult> {
    const r = await this.exec(script, opts);
    if (r.code !== 0) throw new RemoteCommandError(this.node.name, opts.step, r.code, r.stderr || r.stdout);
    return r;
  }

  close(): void {
    this.ssh.dispose();
  }
}

/** The first line of a script that says something, for --verbose when the caller named no step. */
function firstLine(script: string): string {
  const line =
    script
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l && !l.startsWith('#')) ?? '';
  return line.length > 80 ? `${line.slice(0, 79)}…` : line;
}

export class SshConnectError extends Error {
  constructor(
    readonly nodeName: string,
    message: string,
  ) {
    super(message);
    this.name = 'SshConnectError';
  }
}

/** Opens one SSH connection to a node, refusing any host key that known_hosts does not list. */
export async function connectNode(node: NodeSpec): Promise<NodeConnection> {
  const where = `${node.user}@${node.host}:${node.port}`;
  let known: KnownHostsEntry[];
  try {
    known = readKnownHosts(node.knownHosts);
  } catch (err) {
    throw new SshConnectError(
      node.name,
      `cannot read known_hosts ${node.knownHosts} (${(err as NodeJS.ErrnoException).code}); runner-fleet verifies host keys and never accepts unknown ones`,
    );
  }
  let key: ParsedKey | Error;
  try {
    key = readIdentity(node.identityFile);
  } catch (err) {
    throw new SshConnectError(
      node.name,
      `cannot read identity file ${node.identityFile} (${(err as NodeJS.ErrnoException).code})`,
    );
  }
  if (key instanceof Error)
    throw new SshConnectError(
      node.name,
      `cannot connect to ${where}: cannot use identity file ${node.identityFile}: ${redact(key.message)}`,
    );
  const name = knownHostsName(node.host, node.port);
  const { keys, revoked } = keysFor(known, name);
  let refusal: string | undefined;
  const ssh = new NodeSSH();
  try {
    sshStats.connections++;
    const connecting = ssh.connect({
      host: node.host,
      port: node.port,
      username: node.user,
      // The key alone: ssh2 would first try "none" to learn the methods, a round trip and the server's failure delay.
      authHandler: [{ type: 'publickey', username: node.user, key }],
      readyTimeout: node.connectTimeout * 1000,
      keepaliveInterval: 15_000,
      hostVerifier: (key: Buffer) => {
        if (revoked.some((k) => k.equals(key)))
          refusal = `host key of ${name} is marked @revoked in ${node.knownHosts}`;
        else if (keys.length === 0)
          refusal = `${name} is not in ${node.knownHosts}; check its fingerprint, then add it (ssh-keyscan -p ${node.port} ${node.host} >> ${node.knownHosts})`;
        else if (!keys.some((k) => k.equals(key)))
          refusal = `HOST KEY MISMATCH for ${name}: the key it presented is not the one in ${node.knownHosts} (reinstalled node, or someone in the middle); refusing to connect`;
        return refusal === undefined;
      },
    });
    // ssh2 leaves Nagle's algorithm on. Off from the first byte, not after the handshake: the handshake's small
    // packets then wait for delayed ACKs too (measured here: the userauth service request took 42 ms instead of 2).
    // node-ssh has made its ssh2 client by now (its connect is synchronous up to the socket).
    ssh.connection?.once('connect', () => ssh.connection?.setNoDelay(true));
    await connecting;
  } catch (err) {
    ssh.dispose();
    const reason = refusal ?? describeConnectError(err);
    throw new SshConnectError(node.name, `cannot connect to ${where}: ${reason}`);
  }
  ssh.connection?.setNoDelay(true); // the same, should a node-ssh version make its client later than above
  return new SshNodeConnection(node, ssh);
}

export type NodeConnector = (node: NodeSpec) => Promise<NodeConnection>;
let connector: NodeConnector = connectNode;

/**
 * Replaces how withNode connects, and returns the previous connector: tests answer with a fake connection
 * (test/support/fakeNode.ts) instead of mocking a module.
 */
export function setNodeConnector(next: NodeConnector): NodeConnector {
  const previous = connector;
  connector = next;
  return previous;
}

/** Connects to the node, runs `fn` on the connection and closes it, whatever happens. */
export async function withNode<T>(node: NodeSpec, fn: (conn: NodeConnection) => Promise<T>): Promise<T> {
  const conn = await connector(node);
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}

function describeConnectError(err: unknown): string {
  const e = err as { code?: string; level?: string; message?: string };
  if (e.code === 'ECONNREFUSED') return 'connection refused (is sshd running on that port?)';
  if (e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH') return 'host unreachable';
  if (e.code === 'ENOTFOUND') return 'host name not found';
  if (e.level === 'client-authentication')
    return 'authentication failed (is the public key in ~/.ssh/authorized_keys of that user?)';
  if (/Timed out/i.test(e.message ?? '')) return 'timed out while connecting';
  return redact(e.message ?? String(err));
}
