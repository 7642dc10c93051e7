// A RecordStore in memory for tests: copies on the way in and out, counts saves.
import type { RecordStore, RunnerRecord } from '../../src/runners/records.js';

/** Keeps records in memory, copies on the way in and out. */
export class MemoryRecordStore implements RecordStore {
  saves = 0;
  private records: RunnerRecord[];

  constructor(
    initial: RunnerRecord[] = [],
    /** the fleet these records belong to (two stores with one id are one fleet) */
    readonly fleet = 'f00d00000001',
  ) {
    this.records = structuredClone(initial);
  }

  async fleetId(): Promise<string> {
    return this.fleet;
  }

  async load(): Promise<RunnerRecord[]> {
    return structuredClone(this.records);
  }

  async save(records: RunnerRecord[]): Promise<void> {
    this.saves++;
    this.records = structuredClone(records);
  }

  /** what was last saved, for assertions */
  get current(): RunnerRecord[] {
    return structuredClone(this.records);
  }
}
