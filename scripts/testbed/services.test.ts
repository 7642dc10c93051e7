import { describe, expect, it } from 'vitest';
import { startPrepares, type TestbedService } from './services.js';

const noStart = async () => ({});
const noStop = async () => {};

describe('startPrepares: the prepare steps of an up', () => {
  it('hands each service its own result; a service without prepare gets undefined', async () => {
    const a: TestbedService<string> = {
      name: 'a',
      prepare: async () => 'bin-dir',
      start: noStart,
      stop: noStop,
    };
    const b: TestbedService = { name: 'b', start: noStart, stop: noStop };
    const p = startPrepares([a, b], () => {});
    expect(await p.result(a)).toBe('bin-dir');
    expect(await p.result(b)).toBeUndefined();
  });

  it('starts every prepare at once, before any start', () => {
    const started: string[] = [];
    const mk = (name: string): TestbedService => ({
      name,
      prepare: async () => void started.push(name),
      start: noStart,
      stop: noStop,
    });
    startPrepares([mk('x'), mk('y')], () => {});
    expect(started).toEqual(['x', 'y']);
  });

  it('a failed prepare rejects only its own service, and never as an unhandled rejection before that', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const bad: TestbedService = {
        name: 'bad',
        prepare: async () => {
          throw new Error('go build failed');
        },
        start: noStart,
        stop: noStop,
      };
      const p = startPrepares([bad], () => {});
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
      await expect(p.result(bad)).rejects.toThrow('go build failed');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('abort signals every prepare step and waits until each has settled', async () => {
    let settled = false;
    const slow: TestbedService = {
      name: 'slow',
      prepare: ({ signal }) =>
        new Promise((_, reject) =>
          signal.addEventListener('abort', () => {
            setTimeout(() => {
              settled = true;
              reject(new Error('killed'));
            }, 10);
          }),
        ),
      start: noStart,
      stop: noStop,
    };
    await startPrepares([slow], () => {}).abort();
    expect(settled).toBe(true);
  });
});
