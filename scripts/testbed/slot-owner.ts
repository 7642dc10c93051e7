// Who owns a test fleet slot: a lock file in the slot's state root naming the process that brought the fleet up.
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processInfo } from './procs.js';

/** The lock file's name inside the state root. */
export const OWNER_FILE = 'owner.json';

/** The process that owns a slot; startTime tells a reused PID from the owner. */
export interface SlotOwner {
  pid: number;
  startTime: number;
  command: string;
  /** ISO time of the claim */
  since: string;
}

/** What a process may do with a slot, given its recorded owner. */
export type OwnerVerdict =
  | { kind: 'free' }
  | { kind: 'mine' }
  | { kind: 'stale'; owner: SlotOwner }
  | { kind: 'held'; owner: SlotOwner };

/** Pure: `alive` says whether the owner (same pid, same start time) still runs. */
export function judgeOwner(
  owner: SlotOwner | undefined,
  self: Pick<SlotOwner, 'pid' | 'startTime'>,
  alive: (o: SlotOwner) => boolean,
): OwnerVerdict {
  if (!owner) return { kind: 'free' };
  if (owner.pid === self.pid && owner.startTime === self.startTime) return { kind: 'mine' };
  return alive(owner) ? { kind: 'held', owner } : { kind: 'stale', owner };
}

/** Another live process owns the slot. */
export class SlotBusyError extends Error {
  constructor(
    readonly root: string,
    readonly owner: SlotOwner,
    action: string,
  ) {
    super(
      `cannot ${action}: the test fleet in ${root} belongs to pid ${owner.pid} (${owner.command}), running since ` +
        `${owner.since}. Wait for it to finish, use another slot (RUNNER_FLEET_TESTBED_SLOT), or take the fleet ` +
        'over with `scripts/testbed.ts down --force` or `up --force` (a dead owner is taken over automatically)',
    );
    this.name = 'SlotBusyError';
  }
}

/** A line for the log when a process takes a slot over (undefined when there was no one to take it from). */
export function takeoverNote(verdict: OwnerVerdict): string | undefined {
  switch (verdict.kind) {
    case 'free':
    case 'mine':
      return undefined;
    case 'stale':
      return `pid ${verdict.owner.pid} (${verdict.owner.command}), which owned the slot, has exited: taking it over`;
    case 'held':
      return `forced: taking the slot over from pid ${verdict.owner.pid} (${verdict.owner.command}), still running`;
  }
}

export function readOwner(root: string): SlotOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(join(root, OWNER_FILE), 'utf8')) as SlotOwner;
    return Number.isInteger(o.pid) && Number.isInteger(o.startTime) ? o : undefined;
  } catch {
    return undefined;
  }
}

function selfOwner(): SlotOwner {
  const command = process.argv
    .map((a) => a.replace(/^.*\/node_modules\//, ''))
    .join(' ')
    .slice(0, 200);
  return {
    pid: process.pid,
    startTime: processInfo(process.pid)?.startTime ?? 0,
    command,
    since: new Date().toISOString(),
  };
}

const ownerAlive = (o: SlotOwner) => processInfo(o.pid)?.startTime === o.startTime;

/** Throws SlotBusyError when another live process owns the slot (unless force); returns the verdict otherwise. */
export function checkOwner(root: string, action: string, force = false): OwnerVerdict {
  const verdict = judgeOwner(readOwner(root), selfOwner(), ownerAlive);
  if (verdict.kind === 'held' && !force) throw new SlotBusyError(root, verdict.owner, action);
  return verdict;
}

/**
 * Makes this process the slot's owner (creating the state root if needed). The file appears whole (hard link of a
 * complete temp file): of two processes claiming a free slot at once, one gets EEXIST and checks again.
 */
export function claimSlot(root: string, action: string, force = false): OwnerVerdict {
  mkdirSync(root, { recursive: true });
  const lock = join(root, OWNER_FILE);
  const tmp = `${lock}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(selfOwner())}\n`);
  try {
    const verdict = checkOwner(root, action, force);
    if (verdict.kind === 'free' && !existsSync(lock)) {
      try {
        linkSync(tmp, lock);
        return verdict;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        return claimSlot(root, action, force);
      }
    }
    renameSync(tmp, lock);
    return verdict;
  } finally {
    rmSync(tmp, { force: true });
  }
}
