// A RecordStore in memory for tests: copies on the way in and out, counts saves.
import type { RecordStore, RunnerRecord } from '../../src/runners/records.js';

/** Keeps records in memory, copies on the way in and out. */
export class MemoryRecordStore implements RecordStore {
  saves = 0;
  private records: RunnerRecord[];

  constructor(initial: RunnerRecord[] = []) {
    this.records = structuredClone(initial);
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
