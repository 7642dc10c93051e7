// The progress logger: plain timestamped lines without a terminal, live lines redrawn in place with one, quiet and verbose.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, formatElapsed, formatLiveLine } from './log.js';

function sink(opts: { tty: boolean; columns?: number }) {
  let text = '';
  const stream = Object.assign(
    new Writable({
      write(chunk, _enc, cb) {
        text += String(chunk);
        cb();
      },
    }),
    { isTTY: opts.tty, columns: opts.columns ?? 80 },
  );
  return {
    stream,
    get text() {
      return text;
    },
  };
}

// eslint-disable-next-line no-control-regex
const ESC = /\x1b/;

describe('createLogger without a terminal', () => {
  it('prints timestamped plain lines and no escape codes', () => {
    const out = sink({ tty: false });
    const log = createLogger({ verbosity: 'normal', stream: out.stream });
    log.progress('pi1', 'connecting');
    log.change('pi1', 'wrote daemon.json');
    log.done?.('pi1', true, 'changed 1');
    log.error('pi2', 'connection refused');
    log.summary('Summary\n  pi1 ok');
    expect(out.text).not.toMatch(ESC);
    const lines = out.text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z pi1\s+connecting$/);
    expect(lines[1]).toMatch(/pi1\s+changed: wrote daemon\.json$/);
    expect(lines[2]).toMatch(/pi1\s+changed 1$/);
    expect(lines[3]).toMatch(/pi2\s+error: connection refused$/);
    expect(lines.slice(4)).toEqual(['Summary', '  pi1 ok']);
  });

  it('--quiet: errors and the summary only; --verbose: remote commands too; secrets never', () => {
    const quiet = sink({ tty: false });
    const q = createLogger({ verbosity: 'quiet', stream: quiet.stream });
    q.progress('pi1', 'connecting');
    q.change('pi1', 'x');
    q.debug('pi1', 'sudo gather facts');
    q.error('pi1', 'boom glrt-abcdefghijk');
    q.summary('done');
    expect(quiet.text).toMatch(/^\S+ pi1\s+error: boom \[REDACTED\]\ndone\n$/);
    const verbose = sink({ tty: false });
    createLogger({ verbosity: 'verbose', stream: verbose.stream }).debug('pi1', 'sudo gather facts');
    expect(verbose.text).toMatch(/pi1\s+\$ sudo gather facts\n$/);
  });
});

describe('createLogger on a terminal', () => {
  it('keeps one live line per scope, redraws them in place, prints changes above them, freezes them at the summary', () => {
    const out = sink({ tty: true });
    let t = 0;
    const log = createLogger({ verbosity: 'normal', stream: out.stream, now: () => t, tickMs: 0 });
    log.progress('pi1', 'connecting');
    log.progress('pi2', 'connecting');
    t = 1500;
    log.progress('pi1', 'converging Docker');
    log.change('pi1', 'wrote daemon.json');
    t = 2500;
    log.done?.('pi1', true, 'changed 1');
    log.summary('Summary');
    // Each redraw moves the cursor up over the block and erases it.
    expect(out.text).toContain('\x1b[2A\r\x1b[J');
    const screen = render(out.text);
    expect(screen).toEqual([
      expect.stringMatching(/^\s+1\.5s pi1\s+changed: wrote daemon\.json$/),
      expect.stringMatching(/^\+ pi1\s+2\.5s {2}changed 1$/),
      expect.stringMatching(/^\+ pi2\s+2\.5s {2}connecting$/),
      'Summary',
    ]);
  });

  it('cuts live lines to the terminal width', () => {
    const line = formatLiveLine('pi1', { step: 'x'.repeat(200), started: 0 }, 1000, 0, 60);
    expect(line.length).toBeLessThanOrEqual(59);
    expect(line.endsWith('…')).toBe(true);
    expect(formatElapsed(65_000)).toBe('1m05s');
  });
});

/** Replays the cursor-up / erase-down / colour codes the logger uses into the final screen lines. */
function render(text: string): string[] {
  const screen: string[] = [];
  let row = 0;
  // eslint-disable-next-line no-control-regex
  const tokens = text.split(/(\x1b\[\d*[AJm]|\r|\n)/).filter((s) => s !== '');
  for (const tok of tokens) {
    const up = tok.match(/^\x1b\[(\d+)A$/); // eslint-disable-line no-control-regex
    if (up) row = Math.max(0, row - Number(up[1]));
    else if (tok === '\x1b[J') screen.length = row;
    // eslint-disable-next-line no-control-regex
    else if (/^\x1b\[\d*m$/.test(tok) || tok === '\r') continue;
    else if (tok === '\n') row++;
    else screen[row] = (screen[row] ?? '') + tok;
  }
  return screen.filter((l) => l !== undefined);
}
