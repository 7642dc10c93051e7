// redact(): known secrets and every GitLab token shape, including the ones GitLab 17.9 issues.
import { describe, expect, it } from 'vitest';
import { redact, registerSecret } from './secrets.js';

describe('redact', () => {
  it.each([
    ['a runner created in GitLab (POST /user/runners, instance)', 'glrt-t1_Ab3dEf6hIj9kLm2nOp5q'],
    ['a group runner created in GitLab', 'glrt-t2_zyxwvutsrqponmlkjihg'],
    ['a runner registered with a registration token', 't1_Ab3dEf6hIj9kLm2nOp5q'],
    ['a routable token (feature routable_runner_token)', 'glrt-t3_bzoxCnA6Mgp1OjEKdDoz.01.1a0gx6s3v'],
    ['a legacy runner token before partition prefixes', 'glrt-Ab3dEf6hIj9kLm2nOp5q'],
    ['a personal access token', 'glpat-Ab3dEf6hIj9kLm2nOp5q'],
    ['a registration token', 'GR1348941Ab3dEf6hIj9kLm2nOp5q'],
  ])('%s', (_, token) => {
    const out = redact(`POST /api/v4/runners/verify: 403 (token=${token}) "${token}"\n${token}.`);
    expect(out).not.toContain(token.slice(3, 12));
    expect(out).toBe('POST /api/v4/runners/verify: 403 (token=[REDACTED]) "[REDACTED]"\n[REDACTED].');
  });

  it('leaves ordinary words and ids alone', () => {
    const text = 'node pi1: t1_ready, runner #41 t2_x glrt- alone, image v1.2.3';
    expect(redact(text)).toBe(text);
  });

  it('hides a registered secret of any shape', () => {
    registerSecret('s3cr3t-cache-key');
    expect(redact('cache key s3cr3t-cache-key rejected')).toBe('cache key [REDACTED] rejected');
  });
});
