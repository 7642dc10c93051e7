// HostRecordStore: the registration record of a host-placed runner, kept in a root-only file on its node.
import { atomicWriteScript } from '../docker/docker-converge.js';
import { sha256, shQuote } from '../docker/facts.js';
import { parseRecords, type RecordStore, type RunnerRecord } from '../runners/records.js';
import type { NodeConnection } from '../ssh.js';
import { RECORD_FILE, RUNNER_DIR } from './facts.js';

export function serialiseRecords(records: RunnerRecord[]): string {
  return `${JSON.stringify(records, null, 2)}\n`;
}

/**
 * The node's own records in RECORD_FILE (0600, root). `text` is the file as the gather read it (undefined: absent),
 * so loading costs no round trip; a save writes only when the records changed, and an empty list removes the file.
 * With `dryRun` nothing is ever written.
 */
export class HostRecordStore implements RecordStore {
  saves = 0;

  constructor(
    private readonly conn: Pick<NodeConnection, 'exec'>,
    private readonly node: string,
    private text: string | undefined,
    private readonly opts: { dryRun: boolean },
  ) {}

  /** whether the node has a record file (after the last save) */
  get present(): boolean {
    return this.text !== undefined;
  }

  get source(): string {
    return `${this.node}:${RECORD_FILE}`;
  }

  async load(): Promise<RunnerRecord[]> {
    if (this.text === undefined || this.text.trim() === '') return [];
    let raw: unknown;
    try {
      raw = JSON.parse(this.text);
    } catch {
      // Never quote the text: it holds a token.
      throw new Error(
        `${this.source} is not valid JSON; move it aside (the runner it names may need deleting in GitLab by hand)`,
      );
    }
    return parseRecords(raw, this.source);
  }

  async save(records: RunnerRecord[]): Promise<void> {
    if (this.opts.dryRun) return;
    const next = records.length > 0 ? serialiseRecords(records) : undefined;
    if (next === this.text) return;
    const expect = this.text === undefined ? 'absent' : sha256(this.text);
    const script =
      next === undefined
        ? `rm -f ${shQuote(RECORD_FILE)}`
        : `install -d -m 0700 ${shQuote(RUNNER_DIR)}\n${atomicWriteScript(RECORD_FILE, next, expect, '0600', { backup: false })}`;
    // exec, not check: on failure only stderr (never the script, which carries the token) goes into the message.
    const r = await this.conn.exec(script, { sudo: true, step: 'save runner record' });
    if (r.code !== 0)
      throw new Error(
        `cannot write ${this.source} (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ') || 'no output'}`,
      );
    this.saves++;
    this.text = next;
  }
}
