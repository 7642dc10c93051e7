// Local processes for the test fleet: the only testbed module that spawns, signals or reads /proc.
// Commands that run to completion go through zx (`sh` below); only daemons are spawned by hand (spawnDaemon).
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { $, type ProcessOutput } from 'zx';

/**
 * zx for the fleet's commands: quiet (callers print what matters; zx would echo every stderr line), stdin at
 * /dev/null (a command that reads stdin must get EOF, not wait on a pipe nobody closes; with `input` give
 * `stdio: 'pipe'` too). A non-zero exit rejects with zx's ProcessOutput: exitCode and stderr (its message
 * names no command, and under tsx its caller location is zx's own frame, not ours). `.nothrow()` or
 * `{ nothrow: true }` where the caller reads the code. Arguments go through zx's quoting.
 */
export const sh = $({ quiet: true, stdio: ['ignore', 'pipe', 'pipe'] });

/** What a finished command left, as execOnNode has always returned it (the suites read `.code`). */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A settled ProcessOutput as a RunResult: death by a signal reads 128+n, as a shell reports it. */
export function resultOf(out: ProcessOutput): RunResult {
  const signo = out.signal ? (constants.signals[out.signal] ?? 0) : undefined;
  return {
    code: out.exitCode ?? (signo !== undefined ? 128 + signo : 1),
    stdout: out.stdout,
    stderr: out.stderr,
  };
}

/**
 * Starts a long-lived process in its own session with stdio on a log file, and lets this process exit
 * without waiting for it. Returns its PID. Not zx: `$` runs a command to completion through a shell and
 * collects its output; a daemon must outlive this process (`up` returns, the CLI exits), write to its own
 * log file descriptor and carry no shell between us and its PID (the fleet signals and records that PID).
 */
export function spawnDaemon(
  cmd: string,
  args: string[],
  opts: { log: string; env?: NodeJS.ProcessEnv; cwd?: string },
): number {
  const fd = openSync(opts.log, 'a');
  try {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd ?? '/',
      detached: true,
      stdio: ['ignore', fd, fd],
    });
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
export async function waitFor(
  test: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 100,
): Promise<boolean> {
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
