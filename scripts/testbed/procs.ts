// Local processes for the test fleet: the only testbed module that spawns, signals or reads /proc.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** reject on a non-zero exit (default true) */
  check?: boolean;
}

/** A local command that exited non-zero; carries what a person needs to see why. */
export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: RunResult,
  ) {
    const detail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-15).join('\n');
    super(`\`${argv.join(' ')}\` exited ${result.code}${detail ? `:\n${detail}` : ''}`);
    this.name = 'CommandError';
  }
}

/** Runs a command to completion, collecting its output. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    // A command that never reads stdin closes it early; that is not our failure.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    child.on('close', (code, signal) => {
      const result = {
        code: code ?? (signal ? 128 + signalNumber(signal) : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (result.code !== 0 && opts.check !== false) reject(new CommandError([cmd, ...args], result));
      else resolve(result);
    });
  });
}

/** Runs a command with this process's stdio; resolves to its exit code (128+n for a signal, like a shell). */
export function runInherit(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  const n: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return n[signal] ?? 0;
}

/**
 * Starts a long-lived process in its own session with stdio on a log file, and lets this process exit
 * without waiting for it. Returns its PID.
 */
export function spawnDaemon(cmd: string, args: string[], opts: { log: string; env?: NodeJS.ProcessEnv; cwd?: string }): number {
  const fd = openSync(opts.log, 'a');
  try {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? '/', detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', () => {});
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** e.g. `mnt:[4026532301]` */
  mntns: string;
  /** e.g. `net:[4026532305]` */
  netns: string;
  comm: string;
  cmdline: string;
  /** process start time in clock ticks since boot: tells a reused PID from the one we started */
  startTime: number;
}

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: the fields after it start at the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    return {
      pid,
      ppid: Number(fields[1]),
      mntns: readlinkSync(`/proc/${pid}/ns/mnt`),
      netns: readlinkSync(`/proc/${pid}/ns/net`),
      comm,
      cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').split('\0').join(' '),
      startTime: Number(fields[19]),
    };
  } catch {
    return undefined; // gone meanwhile, or a kernel thread
  }
}

/** Every live (non-zombie) process on the machine. */
export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = readProc(Number(entry));
    if (info) out.push(info);
  }
  return out;
}

export function processInfo(pid: number): ProcInfo | undefined {
  return readProc(pid);
}

export function isAlive(pid: number): boolean {
  return readProc(pid) !== undefined;
}

export function mountNamespace(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/**
 * Processes inside the given mount or network namespaces (`mnt:[…]`, `net:[…]`) plus all their descendants:
 * containers get namespaces of their own but are still children of the node's containerd-shim.
 */
export function processesOf(namespaces: Set<string>, procs = listProcesses()): ProcInfo[] {
  const picked = new Map<number, ProcInfo>();
  for (const p of procs) if (namespaces.has(p.mntns) || namespaces.has(p.netns)) picked.set(p.pid, p);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!picked.has(p.pid) && picked.has(p.ppid)) {
        picked.set(p.pid, p);
        grew = true;
      }
    }
  }
  return [...picked.values()];
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `test` is true; returns false on timeout. */
export async function waitFor(test: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await test()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** TERM, then KILL whatever is left after graceMs; resolves when all are gone (or after a last KILL). */
export async function terminate(pids: number[], graceMs: number): Promise<void> {
  if (pids.length === 0) return;
  for (const pid of pids) signal(pid, 'SIGTERM');
  if (await waitFor(() => pids.every((p) => !isAlive(p)), graceMs)) return;
  for (const pid of pids) if (isAlive(pid)) signal(pid, 'SIGKILL');
  await waitFor(() => pids.every((p) => !isAlive(p)), 5000);
}

export interface Memory {
  /** resident set, kB: counts shared pages once per process */
  rssKb: number;
  /** proportional set, kB: shared pages split between their users, so sums across nodes add up */
  pssKb: number;
}

export function memoryOf(pids: number[]): Memory {
  let rssKb = 0;
  let pssKb = 0;
  for (const pid of pids) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      rssKb += Number(/^Rss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      pssKb += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return { rssKb, pssKb };
}
