import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processInfo } from './procs.js';
import {
  OWNER_FILE,
  SlotBusyError,
  checkOwner,
  claimSlot,
  judgeOwner,
  readOwner,
  takeoverNote,
  type SlotOwner,
} from './slot-owner.js';

const owner = (pid: number, startTime = 5): SlotOwner => ({
  pid,
  startTime,
  command: 'vitest',
  since: 'then',
});

describe('judgeOwner', () => {
  const self = { pid: 10, startTime: 5 };
  it('no owner: free', () => {
    expect(judgeOwner(undefined, self, () => true)).toEqual({ kind: 'free' });
  });
  it('this process: mine', () => {
    expect(judgeOwner(owner(10), self, () => true)).toEqual({ kind: 'mine' });
  });
  it('same pid, other start time (a reused pid) is not this process', () => {
    expect(judgeOwner(owner(10, 4), self, () => false).kind).toBe('stale');
  });
  it('another live process: held; a dead one: stale', () => {
    expect(judgeOwner(owner(11), self, () => true)).toEqual({ kind: 'held', owner: owner(11) });
    expect(judgeOwner(owner(11), self, () => false)).toEqual({ kind: 'stale', owner: owner(11) });
  });
});

describe('takeoverNote', () => {
  it('says nothing for a free slot or our own, names the owner otherwise', () => {
    expect(takeoverNote({ kind: 'free' })).toBeUndefined();
    expect(takeoverNote({ kind: 'mine' })).toBeUndefined();
    expect(takeoverNote({ kind: 'stale', owner: owner(11) })).toBe(
      'pid 11 (vitest), which owned the slot, has exited: taking it over',
    );
    expect(takeoverNote({ kind: 'held', owner: owner(11) })).toContain('forced');
  });
});

describe('claimSlot and checkOwner on a real directory', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const fresh = () => (dir = mkdtempSync(join(tmpdir(), 'rf-slot-owner-')));
  // The parent of this test process is alive for as long as the test runs: it plays the other owner.
  const other = (): SlotOwner => ({
    pid: process.ppid,
    startTime: processInfo(process.ppid)!.startTime,
    command: 'npx vitest run test/e2e/real-jobs.test.ts',
    since: '2026-12-07T13:00:00.000Z',
  });

  it('claims a free slot, and claims again as the same process', () => {
    const root = join(fresh(), 'root');
    expect(claimSlot(root, 'up').kind).toBe('free');
    expect(readOwner(root)?.pid).toBe(process.pid);
    expect(claimSlot(root, 'up').kind).toBe('mine');
  });

  it('refuses a slot another live process owns, naming its pid and command and how to take over', () => {
    const root = fresh();
    writeFileSync(join(root, OWNER_FILE), JSON.stringify(other()));
    expect(() => claimSlot(root, 'bring a fleet up')).toThrow(SlotBusyError);
    let message = '';
    try {
      checkOwner(root, 'take the fleet down');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(`pid ${process.ppid} (npx vitest run test/e2e/real-jobs.test.ts)`);
    expect(message).toContain('down --force');
    expect(readOwner(root)?.pid).toBe(process.ppid);
  });

  it('takes over when forced, or when the owner is dead', () => {
    const root = fresh();
    writeFileSync(join(root, OWNER_FILE), JSON.stringify(other()));
    expect(claimSlot(root, 'up', true).kind).toBe('held');
    expect(readOwner(root)?.pid).toBe(process.pid);
    writeFileSync(join(root, OWNER_FILE), JSON.stringify({ ...other(), startTime: other().startTime + 1 }));
    expect(claimSlot(root, 'up').kind).toBe('stale');
    expect(JSON.parse(readFileSync(join(root, OWNER_FILE), 'utf8')).pid).toBe(process.pid);
  });
});
