// The SSH adapter: one verified connection per node, exec with a per-connection channel bound, `sudo -n`.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { NodeSSH } from 'node-ssh';
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

function hostMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (globToRegExp(pattern.slice(1)).test(name)) return false;
    } else if (globToRegExp(pattern).test(name)) {
      matched = true;
    }
  }
  return matched;
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

/** The host keys known_hosts lists for `name`; `revoked` keys must be refused even if listed. */
export function knownKeysFor(knownHostsText: string, name: string): { keys: Buffer[]; revoked: Buffer[] } {
  const keys: Buffer[] = [];
  const revoked: Buffer[] = [];
  for (const raw of knownHostsText.split('\n')) {
    // OpenSSH skips leading spaces and tabs only, and splits fields on spaces and tabs.
    const line = raw.replace(/^[ \t]+/, '');
    if (!line || line.startsWith('#')) continue;
    const read = readMarker(line.split(/[ \t]+/));
    if (!read) continue; // invalid marker: the line is ignored, as OpenSSH does
    const { marker, rest: parts } = read;
    // Certificates are not offered by ssh2, so CA lines can never vouch for a plain host key.
    if (marker === 'cert-authority' || parts.length < 3) continue;
    if (!hostMatches(parts[0], name)) continue;
    // A key OpenSSH cannot decode makes the line invalid (ignored), not a key that matches by accident.
    if (!BASE64.test(parts[2])) continue;
    const key = Buffer.from(parts[2], 'base64');
    (marker === 'revoked' ? revoked : keys).push(key);
  }
  return { keys, revoked };
}

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
  let knownHosts: string;
  try {
    knownHosts = readFileSync(node.knownHosts, 'utf8');
  } catch (err) {
    throw new SshConnectError(
      node.name,
      `cannot read known_hosts ${node.knownHosts} (${(err as NodeJS.ErrnoException).code}); runner-fleet verifies host keys and never accepts unknown ones`,
    );
  }
  let privateKey: string;
  try {
    privateKey = readFileSync(node.identityFile, 'utf8');
  } catch (err) {
    throw new SshConnectError(
      node.name,
      `cannot read identity file ${node.identityFile} (${(err as NodeJS.ErrnoException).code})`,
    );
  }
  const name = knownHostsName(node.host, node.port);
  const { keys, revoked } = knownKeysFor(knownHosts, name);
  let refusal: string | undefined;
  const ssh = new NodeSSH();
  try {
    sshStats.connections++;
    const connecting = ssh.connect({
      host: node.host,
      port: node.port,
      username: node.user,
      privateKey,
      // The key alone: ssh2 would first try "none" to learn the methods, a round trip and the server's failure delay.
      authHandler: ['publickey'],
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
