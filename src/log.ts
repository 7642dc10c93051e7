// Progress output on stderr: timestamped plain lines (no escape codes) unless stderr is a terminal.
import { redact } from './secrets.js';

export type Verbosity = 'quiet' | 'normal' | 'verbose';

export interface Logger {
  /** a step starting or finishing on a node (or 'gitlab' / 'cluster') */
  progress(scope: string, message: string): void;
  /** something that changed */
  change(scope: string, message: string): void;
  warn(scope: string, message: string): void;
  error(scope: string, message: string): void;
  /** remote commands and API calls, only with --verbose */
  debug(scope: string, message: string): void;
  /** final human summary */
  summary(text: string): void;
}

export function createLogger(opts: { verbosity: Verbosity; stream?: NodeJS.WriteStream; tty?: boolean }): Logger {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? Boolean(stream.isTTY);
  const start = Date.now();
  const paint = (code: string, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
  const line = (scope: string, message: string, color?: string) => {
    const stamp = tty ? `+${((Date.now() - start) / 1000).toFixed(1).padStart(5)}s` : new Date().toISOString();
    const text = `${stamp} ${scope.padEnd(12)} ${message}`;
    stream.write(`${redact(color ? paint(color, text) : text)}\n`);
  };
  return {
    progress: (s, m) => opts.verbosity !== 'quiet' && line(s, m),
    change: (s, m) => opts.verbosity !== 'quiet' && line(s, `changed: ${m}`, '33'),
    warn: (s, m) => line(s, `warning: ${m}`, '33'),
    error: (s, m) => line(s, `error: ${m}`, '31'),
    debug: (s, m) => opts.verbosity === 'verbose' && line(s, m, '2'),
    summary: (t) => stream.write(`${redact(t)}\n`),
  };
}

export const silentLogger: Logger = { progress() {}, change() {}, warn() {}, error() {}, debug() {}, summary() {} };
