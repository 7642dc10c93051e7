// The per-node lock around the daemon.json edit, run for real with sh and util-linux flock on a temp lock file.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_LOCK_BUSY, withNodeLock } from './node-lock.js';

const hasFlock = spawnSync('sh', ['-c', 'command -v flock']).status === 0;
const run = (script: string) => spawnSync('sh', ['-s'], { input: script, encoding: 'utf8' });

describe.runIf(hasFlock)('withNodeLock', () => {
  it('runs the script under the lock, passes its output and exit code through, and leaves a 0600 lock file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-nodelock-'));
    const lockFile = join(dir, 'lock');
    const r = run(withNodeLock(`echo "it's here"; echo err >&2; exit 7`, { lockFile }));
    expect(r.status).toBe(7);
    expect(r.stdout).toBe("it's here\n");
    expect(r.stderr).toBe('err\n');
    expect(statSync(lockFile).mode & 0o777).toBe(0o600);
  });

  it('a second run fails with NODE_LOCK_BUSY, naming the lock, and runs nothing while another holds it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-nodelock-'));
    const lockFile = join(dir, 'lock');
    const holder = spawn('flock', [lockFile, 'sleep', '5'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      const r = run(withNodeLock(`touch ${join(dir, 'ran')}`, { lockFile, waitSeconds: 1 }));
      expect(r.status).toBe(NODE_LOCK_BUSY);
      expect(r.stderr).toContain(
        `another runner-fleet run held ${lockFile} on this node for 1s; nothing was changed`,
      );
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(existsSync(join(dir, 'ran'))).toBe(false);
    } finally {
      holder.kill();
    }
  });

  it('what the script starts in the background does not keep holding the lock', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-nodelock-'));
    const lockFile = join(dir, 'lock');
    // A daemon the edit (re)starts, as the rollback's dockerd start does.
    const first = run(withNodeLock('(sleep 5 >/dev/null 2>&1 &) ; echo started', { lockFile }));
    expect(first.status).toBe(0);
    const t0 = Date.now();
    const second = run(withNodeLock('echo second', { lockFile, waitSeconds: 3 }));
    expect(second.status, second.stderr).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a script with quotes, heredocs and a large body survives the trip', () => {
    const big = 'x'.repeat(300_000);
    const r = run(
      withNodeLock(`cat <<'EOF'\n'"$HOME"\nEOF\nv='${big}'; echo \${#v}`, {
        lockFile: join(mkdtempSync(join(tmpdir(), 'rf-nodelock-')), 'lock'),
      }),
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`'"$HOME"\n300000\n`);
  });
});
