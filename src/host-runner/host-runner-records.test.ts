// HostRecordStore and the host-runner index on in-memory connections and a real temporary folder.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunnerRecord } from '../runners/records.js';
import type { ExecResult } from '../ssh.js';
import { RECORD_FILE } from './facts.js';
import { HostRecordStore, serialiseRecords } from './host-runner-records.js';
import { hostRunnerIndexPath, readHostRunnerIndex, writeHostRunnerIndex } from './state.js';

const TOKEN = 'glrt-recordstoretest1234';
const rec: RunnerRecord = {
  node: 'pi1',
  mode: 'access',
  id: 7,
  token: TOKEN,
  systemId: 's_0123456789ab',
  settings: null,
  createdAt: '2026-11-01T00:00:00.000Z',
};

function fakeConn(code = 0) {
  const scripts: string[] = [];
  return {
    scripts,
    exec: async (script: string): Promise<ExecResult> => {
      scripts.push(script);
      return { code, stdout: '', stderr: code ? 'mv: cannot move: Read-only file system' : '' };
    },
  };
}

describe('HostRecordStore', () => {
  it('loads what the gather read, without a round trip; writes only changes, root-only and without a backup', async () => {
    const conn = fakeConn();
    const store = new HostRecordStore(conn, 'pi1', serialiseRecords([rec]), { dryRun: false });
    expect(await store.load()).toEqual([rec]);
    await store.save([rec]);
    expect(conn.scripts).toEqual([]);
    await store.save([{ ...rec, id: 8 }]);
    expect(conn.scripts).toHaveLength(1);
    expect(conn.scripts[0]).toContain(`install -d -m 0700 '/etc/gitlab-runner'`);
    expect(conn.scripts[0]).toContain('chmod 0600');
    expect(conn.scripts[0]).not.toContain('runner-fleet.bak');
    // The token travels inside the base64 of the script only.
    expect(conn.scripts[0]).not.toContain(TOKEN);
    await store.save([]);
    expect(conn.scripts[1]).toBe(`rm -f '${RECORD_FILE}'`);
    expect(store.present).toBe(false);
  });

  it('never writes in a dry run; an absent file is no records', async () => {
    const conn = fakeConn();
    const store = new HostRecordStore(conn, 'pi1', undefined, { dryRun: true });
    expect(await store.load()).toEqual([]);
    await store.save([rec]);
    expect(conn.scripts).toEqual([]);
  });

  it('says which file is unreadable without quoting it, and why a save failed', async () => {
    const bad = new HostRecordStore(fakeConn(), 'pi1', `{"token": "${TOKEN}"`, { dryRun: false });
    await expect(bad.load()).rejects.toThrow(`pi1:${RECORD_FILE} is not valid JSON`);
    await expect(bad.load()).rejects.not.toThrow(TOKEN);
    const failing = new HostRecordStore(fakeConn(1), 'pi1', undefined, { dryRun: false });
    await expect(failing.save([rec])).rejects.toThrow(/cannot write pi1:.*Read-only file system/);
  });
});

describe('host-runner index', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-index-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const node = (name: string) => ({
    name,
    host: `10.0.0.${name.slice(2)}`,
    port: 22,
    user: 'pi',
    identityFile: '/k',
    knownHosts: '/kh',
    connectTimeout: 20,
  });

  it('sits beside the inventory, is written only on change, sorted, and removed when empty', () => {
    const path = hostRunnerIndexPath(join(dir, 'fleet.yaml'));
    expect(path).toBe(join(dir, 'fleet.state.json'));
    expect(readHostRunnerIndex(path)).toEqual([]);
    expect(writeHostRunnerIndex(path, [node('pi2'), node('pi1')])).toBe(true);
    expect(readHostRunnerIndex(path).map((n) => n.name)).toEqual(['pi1', 'pi2']);
    expect(writeHostRunnerIndex(path, [node('pi1'), node('pi2')])).toBe(false);
    expect(readFileSync(path, 'utf8')).not.toMatch(/token/i);
    expect(writeHostRunnerIndex(path, [])).toBe(true);
    expect(existsSync(path)).toBe(false);
  });
});
