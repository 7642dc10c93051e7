// Progress output on stderr: a live line per node redrawn in place on a terminal; timestamped plain lines (no escape codes) otherwise.
import { redact } from './secrets.js';

export type Verbosity = 'quiet' | 'normal' | 'verbose';

export interface Logger {
  /** a step starting on a node (or 'gitlab' / 'cluster'); on a terminal it replaces that scope's live line */
  progress(scope: string, message: string): void;
  /** something that changed */
  change(scope: string, message: string): void;
  warn(scope: string, message: string): void;
  error(scope: string, message: string): void;
  /** remote commands and API calls, only with --verbose */
  debug(scope: string, message: string): void;
  /** final human summary */
  summary(text: string): void;
  /**
   * The scope finished: its live line stops its clock and shows `message`. Optional so that other Logger
   * implementations (tests) keep compiling; a scope that never says so is stopped by summary().
   */
  done?(scope: string, ok: boolean, message?: string): void;
}

export interface LoggerOptions {
  verbosity: Verbosity;
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** default: whether the stream is a terminal */
  tty?: boolean;
  /** default Date.now; tests pass a fake clock */
  now?: () => number;
  /** redraw period of the live lines, ms (0: only on events) */
  tickMs?: number;
}

interface LiveLine {
  step: string;
  started: number;
  ended?: number;
  ok?: boolean;
}

const SPINNER = ['|', '/', '-', '\\'];

/** `3.2s`, `1m05s` */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}

/** One live line, cut to the terminal's width so that it never wraps (a wrapped line breaks the redraw). */
export function formatLiveLine(
  scope: string,
  line: LiveLine,
  now: number,
  frame: number,
  columns: number,
): string {
  const mark = line.ended === undefined ? SPINNER[frame % SPINNER.length] : line.ok === false ? 'x' : '+';
  const elapsed = formatElapsed((line.ended ?? now) - line.started);
  const head = `${mark} ${scope.padEnd(12)} ${elapsed.padStart(6)}  `;
  const room = Math.max(10, columns - 1 - head.length);
  const step = line.step.length > room ? `${line.step.slice(0, room - 1)}…` : line.step;
  return `${head}${step}`;
}

export function createLogger(opts: LoggerOptions): Logger {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? Boolean(stream.isTTY);
  const now = opts.now ?? Date.now;
  const start = now();
  const quiet = opts.verbosity === 'quiet';
  const paint = (code: string, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
  const write = (text: string) => stream.write(redact(text));

  // Terminal only: the live block sits below every permanent line and is redrawn in place.
  const live = new Map<string, LiveLine>();
  let drawn = 0;
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  const columns = () => (stream.columns && stream.columns > 20 ? stream.columns : 100);
  const clearBlock = () => {
    // Cursor up to the block's first line, then erase to the end of the screen.
    if (drawn > 0) write(`\x1b[${drawn}A\r\x1b[J`);
    drawn = 0;
  };
  const drawBlock = () => {
    const t = now();
    const lines = [...live].map(([scope, line]) => formatLiveLine(scope, line, t, frame, columns()));
    if (lines.length > 0) write(`${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  const redraw = () => {
    frame++;
    clearBlock();
    drawBlock();
    if ([...live.values()].every((l) => l.ended !== undefined)) stopTimer();
  };
  const startTimer = () => {
    const tick = opts.tickMs ?? 200;
    if (timer || tick <= 0) return;
    timer = setInterval(redraw, tick);
    // Never keeps the process alive on its own.
    timer.unref();
  };
  const stopTimer = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };

  /** A line that stays: above the live block on a terminal, with a timestamp otherwise. */
  const line = (scope: string, message: string, color?: string) => {
    if (tty) {
      const text = `${formatElapsed(now() - start).padStart(7)} ${scope.padEnd(12)} ${message}`;
      clearBlock();
      write(`${color ? paint(color, text) : text}\n`);
      drawBlock();
    } else {
      write(`${new Date(now()).toISOString()} ${scope.padEnd(12)} ${message}\n`);
    }
  };

  const setLive = (scope: string, step: string) => {
    const current = live.get(scope);
    if (current && current.ended === undefined) current.step = step;
    else live.set(scope, { step, started: now() });
    redraw();
    startTimer();
  };

  return {
    progress(scope, message) {
      if (quiet) return;
      if (tty) setLive(scope, message);
      else line(scope, message);
    },
    change: (s, m) => !quiet && line(s, `changed: ${m}`, '33'),
    warn: (s, m) => line(s, `warning: ${m}`, '33'),
    error: (s, m) => line(s, `error: ${m}`, '31'),
    debug: (s, m) => opts.verbosity === 'verbose' && line(s, `$ ${m}`, '2'),
    done(scope, ok, message) {
      if (quiet) return;
      if (!tty) {
        if (message) line(scope, message);
        return;
      }
      const current = live.get(scope) ?? { step: '', started: now() };
      live.set(scope, { ...current, step: message ?? current.step, ended: now(), ok });
      redraw();
    },
    summary(text) {
      if (tty) {
        // Every clock stops; the final block stays on screen above the summary.
        const t = now();
        for (const l of live.values()) if (l.ended === undefined) l.ended = t;
        stopTimer();
        clearBlock();
        drawBlock();
        drawn = 0;
      }
      write(`${text}\n`);
    },
  };
}

/**
 * Where the adapters (SSH, GitLab, Kubernetes) report each remote command or API call: provision.ts points
 * it at Logger.debug under --verbose. Step names and paths only, never a script body or a request body.
 */
export const commandTrace: { emit?: (scope: string, what: string) => void } = {};
