import { describe, expect, it } from 'vitest';
import { creationMarker, parseCreationMarker } from './registration-plan.js';
import { judgeStray, strayLeftAlone } from './strays.js';

const note = (mark: string) => `Managed by runner-fleet for node pi1. ${mark}`;

describe('creation marks', () => {
  it('name the fleet, the node and the attempt, and read back', () => {
    expect(creationMarker('a1b2c3', 'pi1', 'deadbeef')).toBe(
      '[runner-fleet fleet=a1b2c3 node=pi1 attempt=deadbeef]',
    );
    expect(parseCreationMarker(note(creationMarker('a1b2c3', 'pi1', 'deadbeef')))).toEqual({
      fleet: 'a1b2c3',
      node: 'pi1',
      attempt: 'deadbeef',
    });
  });

  it('marks written before fleets were named still read, without a fleet', () => {
    expect(parseCreationMarker(note('[runner-fleet node=pi1 attempt=deadbeef]'))).toEqual({
      node: 'pi1',
      attempt: 'deadbeef',
    });
    expect(parseCreationMarker('by hand')).toBeUndefined();
    expect(parseCreationMarker(null)).toBeUndefined();
  });
});

describe('judgeStray', () => {
  const ours = note(creationMarker('f1', 'pi1', 'aaaa1111'));
  const cases: [string, { maintenance_note: unknown; contacted_at?: string | null }, string][] = [
    ['this fleet, this node, never contacted', { maintenance_note: ours, contacted_at: null }, 'ours'],
    ['no mark', { maintenance_note: 'by hand' }, 'unmarked'],
    ['this fleet, another node', { maintenance_note: note(creationMarker('f1', 'pi2', 'a1')) }, 'unmarked'],
    [
      'another fleet, same node name',
      { maintenance_note: note(creationMarker('f2', 'pi1', 'a1')) },
      'other-fleet',
    ],
    [
      'an old mark naming no fleet',
      { maintenance_note: note('[runner-fleet node=pi1 attempt=a1]') },
      'fleetless',
    ],
    [
      'this fleet but contacted by a runner',
      { maintenance_note: ours, contacted_at: '2026-12-07T10:00:00Z' },
      'in-use',
    ],
  ];
  it.each(cases)('%s', (_name, candidate, kind) => {
    const j = judgeStray({ id: 7, ...candidate }, 'f1', 'pi1');
    expect(j.kind).toBe(kind);
    // Only the ones left alone on purpose get a word; another fleet's runners are not even mentioned.
    expect(strayLeftAlone(7, 'pi1', j) !== undefined).toBe(kind === 'fleetless' || kind === 'in-use');
  });
});
