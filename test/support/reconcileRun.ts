// A reconcile run state over the fake GitLab and an in-memory store, for the unit tests of reconcile's phases.
import { Ledger } from '../../src/runners/reconcile/ledger.js';
import { RunReport, type ReconcileRun } from '../../src/runners/reconcile/run.js';
import type { RegistrationMode, RunnerRecord, RunnerSettings } from '../../src/runners/records.js';
import { FakeGitlab } from './fakeGitlabApi.js';
import { recordingLogger } from './logger.js';
import { MemoryRecordStore } from './memoryRecordStore.js';

export const ACCESS_TOKEN = 'glpat-unit0000000000000000';
export const NOW = '2026-06-01T00:00:00.000Z';
/** MemoryRecordStore's fleet */
export const FLEET = 'f00d00000001';

export interface FakeRun {
  run: ReconcileRun;
  api: FakeGitlab;
  store: MemoryRecordStore;
  log: ReturnType<typeof recordingLogger>;
  /** the records the ledger works on: pass these objects to the phases */
  records: RunnerRecord[];
}

/**
 * `records` are the ledger's own objects (the phases change them in place, as reconcile's plan actions do);
 * `store` starts with a copy of them.
 */
export function fakeRun(
  opts: {
    mode?: RegistrationMode | null;
    secret?: string;
    records?: RunnerRecord[];
    retireLater?: boolean;
    api?: FakeGitlab;
    store?: MemoryRecordStore;
  } = {},
): FakeRun {
  const api = opts.api ?? new FakeGitlab();
  const records = opts.records ?? [];
  const store = opts.store ?? new MemoryRecordStore(records);
  const log = recordingLogger();
  let systemIds = 0;
  const run: ReconcileRun = {
    api,
    mode: opts.mode === undefined ? 'access' : opts.mode,
    secret: 'secret' in opts ? opts.secret : ACCESS_TOKEN,
    ledger: new Ledger(records, store),
    report: new RunReport(log, false),
    verdicts: { updateForbidden: false },
    held: opts.retireLater ? [] : undefined,
    leftAloneSaid: new Set(),
    now: () => NOW,
    makeSystemId: () => `r_unit${String(++systemIds).padStart(8, '0')}`,
    fleetId: async () => FLEET,
  };
  return { run, api, store, log, records };
}

export function settingsFor(node: string, over: Partial<RunnerSettings> = {}): RunnerSettings {
  return {
    description: `fleet ${node}`,
    tagList: ['arm64', node],
    runUntagged: false,
    locked: false,
    accessLevel: 'not_protected',
    maximumTimeout: null,
    paused: false,
    runnerType: 'instance_type',
    ...over,
  };
}

/** A record of `node` for a runner the fake GitLab has (made there now), or for a token it does not know (`dead`). */
export function recordOf(
  api: FakeGitlab,
  node: string,
  over: Partial<RunnerRecord> & { dead?: boolean } = {},
): RunnerRecord {
  const { dead, ...rest } = over;
  const settings = settingsFor(node);
  const runner = dead
    ? undefined
    : api.addRunner({ tagList: settings.tagList, description: settings.description });
  return {
    node,
    mode: 'access',
    id: runner?.id ?? 999,
    token: runner?.token ?? `glrt-gone-${node}-000000000000`,
    systemId: 'r_aaaaaaaaaaaa',
    settings,
    createdAt: '2026-01-01T00:00:00.000Z',
    ...rest,
  };
}
