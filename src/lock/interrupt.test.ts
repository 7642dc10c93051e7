import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../log.js';
import { guardInterrupts } from './interrupt.js';

function logger(lines: string[]): Logger {
  const put = (scope: string, m: string) => lines.push(`${scope}: ${m}`);
  return { progress: put, change: put, warn: put, error: put, debug: put, summary: (t) => lines.push(t) };
}

const setup = (release: () => Promise<void>) => {
  const proc = new EventEmitter();
  const lines: string[] = [];
  const exits: number[] = [];
  const guard = guardInterrupts(release, {
    log: logger(lines),
    after: 'run apply again to finish.',
    proc: proc as unknown as Pick<NodeJS.Process, 'on' | 'off'>,
    exit: (c) => exits.push(c),
    releaseTimeoutMs: 50,
  });
  return { proc, lines, exits, guard };
};

describe('guardInterrupts', () => {
  it('SIGINT: says the stage, releases the lock, then exits 130', async () => {
    let released = false;
    const { proc, lines, exits, guard } = setup(async () => {
      released = true;
    });
    guard.stage('registering runners in GitLab');
    proc.emit('SIGINT');
    await new Promise((r) => setTimeout(r, 10));
    expect(released).toBe(true);
    expect(exits).toEqual([130]);
    expect(lines[0]).toBe(
      'run: interrupted (SIGINT) while registering runners in GitLab: giving the fleet lock back. What was done so far stays done; run apply again to finish.',
    );
  });

  it('SIGTERM with a release that hangs: exits 143 after the timeout; a second signal exits at once', async () => {
    const { proc, exits } = setup(() => new Promise(() => undefined));
    proc.emit('SIGTERM');
    proc.emit('SIGTERM');
    expect(exits).toEqual([143]);
    await new Promise((r) => setTimeout(r, 80));
    expect(exits).toEqual([143, 143]);
  });

  it('after dispose, signals are not ours any more', () => {
    const { proc, guard } = setup(async () => undefined);
    guard.dispose();
    expect(proc.listenerCount('SIGINT')).toBe(0);
    expect(proc.listenerCount('SIGTERM')).toBe(0);
  });
});
