// Runner manager ids: made the way gitlab-runner makes random ones, and every id gitlab-runner accepts is read back.
import { describe, expect, it } from 'vitest';
import { newSystemId, parseRecords } from './records.js';

const rec = (systemId: string) => ({
  node: 'pi1',
  mode: 'access',
  id: 1,
  token: 'glrt-records-test-token',
  systemId,
  settings: null,
  createdAt: '2026-01-01T00:00:00Z',
});

describe('system ids', () => {
  it('new ones are r_ and 12 alphanumerics (s_ means machine-derived upstream)', () => {
    const ids = Array.from({ length: 200 }, newSystemId);
    for (const id of ids) expect(id).toMatch(/^r_[0-9a-zA-Z]{12}$/);
    expect(new Set(ids).size).toBe(200);
    // Not only hex: the whole alphabet is used.
    expect(ids.join('')).toMatch(/[g-zG-Z]/);
  });

  it('records with any id gitlab-runner accepts are read; others are refused', () => {
    for (const id of ['s_0123456789ab', 'r_AbCdEf012345', 's_ZZZZZZZZZZZZ'])
      expect(parseRecords([rec(id)], 'test')[0].systemId).toBe(id);
    for (const id of ['x_0123456789ab', 'r_0123456789a', 'r_0123456789ab_', 's_01234567-9ab'])
      expect(() => parseRecords([rec(id)], 'test')).toThrow();
  });
});
