// Loggers for tests: one that drops everything, one that keeps every line for assertions.
import type { Logger } from '../../src/log.js';

export const silentLogger: Logger = {
  progress() {},
  change() {},
  warn() {},
  error() {},
  debug() {},
  summary() {},
  done() {},
};

/** A logger that keeps every line, by kind, for assertions. */
export function recordingLogger(): Logger & { lines: { kind: string; scope: string; message: string }[] } {
  const lines: { kind: string; scope: string; message: string }[] = [];
  const keep = (kind: string) => (scope: string, message: string) =>
    void lines.push({ kind, scope, message });
  return {
    lines,
    progress: keep('progress'),
    change: keep('change'),
    warn: keep('warn'),
    error: keep('error'),
    debug: keep('debug'),
    summary: (t) => void lines.push({ kind: 'summary', scope: '', message: t }),
    done: () => {},
  };
}
