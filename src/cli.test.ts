// Command-line parsing: typed request or an InputError naming the flag.
import { describe, expect, it } from 'vitest';
import { InputError } from './errors.js';
import { DEFAULT_CONCURRENCY, parseCli } from './cli.js';

describe('parseCli --concurrency', () => {
  it('defaults to DEFAULT_CONCURRENCY (32): a fleet of up to 32 nodes connects in one wave', () => {
    expect(parseCli(['plan']).concurrency).toBe(DEFAULT_CONCURRENCY);
    expect(DEFAULT_CONCURRENCY).toBe(32);
  });

  it.each(['1', '10', '200', '007'])('accepts %j', (v) => {
    expect(parseCli(['plan', '--concurrency', v]).concurrency).toBe(Number(v));
  });
  it.each(['0x10', '1e1', ' 5', '5 ', '5.0', '+5', '-1', '0', '201', '', 'ten', '1_0'])(
    'refuses %j (decimal integers only)',
    (v) => {
      expect(() => parseCli(['plan', `--concurrency=${v}`])).toThrow(InputError);
      expect(() => parseCli(['plan', `--concurrency=${v}`])).toThrow(
        /--concurrency: expected a decimal integer from 1 to 200/,
      );
    },
  );
});
