// Runs one benchmarked command: wall time, GNU time's max RSS, and the peak memory of its whole process tree.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resultOf, sh } from '#testbed';

export interface Measured {
  argv: string[];
  code: number;
  wallMs: number;
  stdout: string;
  stderr: string;
  /** GNU time's %M: the largest single process of the tree (wait4's ru_maxrss), kB */
  maxRssKb: number;
  /** GNU time's %U + %S: CPU seconds of the tool and the children it waited for (not the remote side) */
  cpuS: number;
  /** 1-minute load average when the command started: other work on this machine skews wall times */
  load1: number;
  /** sampled every `sampleMs`: peak of the summed PSS / RSS of every process carrying this run's tag, kB */
  treePeakPssKb: number;
  treePeakRssKb: number;
  /** processes seen with the tag (the tool, its children, and daemons it left behind such as ssh ControlMasters) */
  processesSeen: number;
}

export interface MeasureOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  sampleMs?: number;
  timeoutMs?: number;
}

const TAG = 'RUNNER_FLEET_BENCH_TAG';

/**
 * Finds the processes of one run by an environment variable every descendant inherits. Walking the parent chain
 * would miss ssh ControlMasters, which daemonise away from ansible-playbook but keep its environment.
 */
class TreeSampler {
  private known = new Map<string, boolean>();
  private seen = new Set<string>();
  peakPss = 0;
  peakRss = 0;
  constructor(private readonly needle: string) {}

  sample(): void {
    let pss = 0;
    let rss = 0;
    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
      const id = this.identity(e);
      if (!id) continue;
      let mine = this.known.get(id);
      if (mine === undefined) {
        try {
          mine = readFileSync(`/proc/${e}/environ`, 'latin1').includes(this.needle);
        } catch {
          continue; // gone, or a kernel thread
        }
        // A process's environment does not change after exec as far as we care: decide once per process.
        this.known.set(id, mine);
      }
      if (!mine) continue;
      this.seen.add(id);
      try {
        const rollup = readFileSync(`/proc/${e}/smaps_rollup`, 'latin1');
        rss += Number(/^Rss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
        pss += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      } catch {
        // exited meanwhile
      }
    }
    this.peakPss = Math.max(this.peakPss, pss);
    this.peakRss = Math.max(this.peakRss, rss);
  }

  /** pid + start time, so a reused pid is not mistaken for one already classified. */
  private identity(pid: string): string | undefined {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') return undefined;
      return `${pid}:${fields[19]}`;
    } catch {
      return undefined;
    }
  }

  get processes(): number {
    return this.seen.size;
  }
}

/** Runs argv under /usr/bin/time; never rejects on a non-zero exit. */
export async function measure(argv: string[], opts: MeasureOptions = {}): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-bench-'));
  const timeFile = join(dir, 'time');
  const tag = randomUUID();
  const env = { ...(opts.env ?? process.env), [TAG]: tag };
  const sampler = new TreeSampler(`${TAG}=${tag}`);
  const started = performance.now();
  const load1 = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  const timer = setInterval(() => sampler.sample(), opts.sampleMs ?? 100);
  // bash execs its last command, so the tree is time and the tool, as with a direct spawn. zx's timeout TERMs the
  // whole tree (time does not pass signals on).
  const { code, stdout, stderr } = resultOf(
    await sh({
      env,
      cwd: opts.cwd,
      nothrow: true,
      timeout: opts.timeoutMs,
    })`/usr/bin/time -f ${'%M %U %S'} -o ${timeFile} -- ${argv}`,
  );
  const wallMs = performance.now() - started;
  clearInterval(timer);
  let maxRssKb = 0;
  let cpuS = 0;
  try {
    // GNU time writes "Command exited with non-zero status N" before the format line.
    const [rss, user, sys] = (readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '')
      .split(' ')
      .map(Number);
    maxRssKb = rss;
    cpuS = user + sys;
  } catch {
    // time itself failed; leave 0
  }
  rmSync(dir, { recursive: true, force: true });
  return {
    argv,
    code,
    wallMs,
    stdout,
    stderr,
    maxRssKb,
    cpuS,
    load1,
    treePeakPssKb: sampler.peakPss,
    treePeakRssKb: sampler.peakRss,
    processesSeen: sampler.processes,
  };
}

/** Median of a sample; NaN for an empty one. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
