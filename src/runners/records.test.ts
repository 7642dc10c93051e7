// Token rotation timing: half a token's lifetime, from when it was issued.
import { describe, expect, it } from 'vitest';
import { tokenRotationDue, type RunnerRecord } from './records.js';

const rec = (over: Partial<RunnerRecord>): RunnerRecord => ({
  node: 'pi1',
  mode: 'access',
  id: 1,
  token: 'glrt-x',
  systemId: 'r_0123456789ab',
  settings: null,
  createdAt: '2026-01-01T00:00:00.000Z',
  ...over,
});

describe('tokenRotationDue', () => {
  it('never for a token without expiry', () => {
    expect(tokenRotationDue(rec({ tokenExpiresAt: null }), new Date('2030-01-01'))).toBe(false);
  });

  it('from half the lifetime on, counted from when the token was issued', () => {
    const r = rec({ tokenExpiresAt: '2026-01-11T00:00:00.000Z' });
    expect(tokenRotationDue(r, new Date('2026-01-05T23:59:00Z'))).toBe(false);
    expect(tokenRotationDue(r, new Date('2026-01-06T00:00:00Z'))).toBe(true);
    const rotated = {
      ...r,
      tokenObtainedAt: '2026-01-06T00:00:00.000Z',
      tokenExpiresAt: '2026-01-16T00:00:00.000Z',
    };
    expect(tokenRotationDue(rotated, new Date('2026-01-10T00:00:00Z'))).toBe(false);
    expect(tokenRotationDue(rotated, new Date('2026-01-11T00:00:00Z'))).toBe(true);
  });
});
