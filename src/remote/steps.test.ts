// The @@begin/@@done protocol: scripts in markers, done and failed steps read back from the output.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { failedStep, readStepsRun, stepBlock, stepsScript } from './steps.js';

const run = (script: string) => {
  try {
    return {
      code: 0,
      stdout: execFileSync('sh', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    };
  } catch (err) {
    const e = err as { status: number; stdout: string };
    return { code: e.status, stdout: e.stdout };
  }
};

describe('remote steps', () => {
  const steps = ['true', 'false', 'true'];

  it('stops at the first failing step under set -e, and says which steps were done', () => {
    const r = run(`set -e\n${stepsScript(steps, (s) => s)}`);
    expect(r.code).toBe(1);
    expect(
      readStepsRun(
        steps.map((s, i) => `${i}:${s}`),
        r,
      ),
    ).toEqual({ done: ['0:true'], failed: '1:false' });
    expect(failedStep(['a', 'b', 'c'], r.stdout)).toBe('b');
  });

  it('a tolerated step sets its flag and lets the script go on', () => {
    const r = run(
      `set -e\nf=0\n${stepBlock(0, 'false', { tolerate: { detail: 'reload', flag: 'f' } })}\n${stepBlock(1, 'true')}\necho "f=$f"`,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('f=1');
    expect(readStepsRun(['a', 'b'], r)).toEqual({ done: ['b'] });
  });

  it('a script that fails outside any step names none', () => {
    expect(failedStep(['a'], '')).toBeUndefined();
    expect(readStepsRun(['a'], { code: 1, stdout: '' })).toEqual({ done: [], failed: 'a' });
  });
});
