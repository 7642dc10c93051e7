// The docker info record, run for real with sh: a stand-in `docker` counts its calls, a `sleep` plays dockerd (a real
// PID with a real start time), daemon.json is a file in a temporary folder. One test per way the record could lie.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  appendFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dockerInfoCachedFn } from './docker-info-cache.js';
import { DOCKER_INFO } from './facts.js';

const DOCKER_INFO_CACHED_FN = dockerInfoCachedFn(DOCKER_INFO);

// Prints what DOCKER_INFO prints; fails while $RF_T/fail exists.
const DOCKER = `#!/bin/sh
echo x >> "$RF_T/calls"
if [ -f "$RF_T/fail" ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi
cat "$RF_T/info"
`;

describe('docker_info_cached', () => {
  let dir: string;
  let dockerd: ChildProcess;
  let record: string;
  let daemonJson: string;

  const startDockerd = () => {
    dockerd = spawn('sleep', ['600'], { stdio: 'ignore' });
  };
  const info = (extra: string[] = []) => {
    const r = spawnSync(
      'sh',
      [
        '-c',
        `${DOCKER_INFO_CACHED_FN}\ndocker_info_cached "$@"`,
        'sh',
        record,
        String(dockerd.pid),
        daemonJson,
        ...extra,
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, RF_T: dir },
      },
    );
    return r.stdout;
  };
  const calls = () => {
    try {
      return readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n').length;
    } catch {
      return 0;
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-dinfo-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'docker'), DOCKER);
    chmodSync(join(dir, 'bin', 'docker'), 0o755);
    writeFileSync(join(dir, 'info'), '20.10.24 json-file {"IndexConfigs":{}}\n');
    record = join(dir, 'record');
    daemonJson = join(dir, 'daemon.json');
    writeFileSync(daemonJson, '{}\n');
    startDockerd();
  });
  afterEach(() => {
    dockerd.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('asks dockerd once, then answers from the record while nothing changed', () => {
    expect(info()).toBe('20.10.24 json-file {"IndexConfigs":{}}\n');
    expect(info()).toBe('20.10.24 json-file {"IndexConfigs":{}}\n');
    expect(calls()).toBe(1);
    expect(spawnSync('stat', ['-c', '%a', record], { encoding: 'utf8' }).stdout.trim()).toBe('600');
  });

  it('dockerd restarted (another PID): asks again', () => {
    info();
    dockerd.kill();
    startDockerd();
    writeFileSync(join(dir, 'info'), '20.10.24 json-file {"IndexConfigs":{"r:5000":{}}}\n');
    expect(info()).toContain('r:5000');
    expect(calls()).toBe(2);
  });

  it('the same PID with another start time (PID reused): asks again', () => {
    info();
    // The record's key, with the start time changed: what a reused PID looks like.
    const [key, ...rest] = readFileSync(record, 'utf8').split('\n');
    const parts = key.split(' ');
    parts[2] = String(Number(parts[2]) + 1);
    writeFileSync(record, [parts.join(' '), ...rest].join('\n'));
    info();
    expect(calls()).toBe(2);
  });

  it('daemon.json edited in place (same inode, new ctime): asks again', () => {
    info();
    appendFileSync(daemonJson, '\n');
    info();
    expect(calls()).toBe(2);
  });

  it('daemon.json replaced by another file with the same content (new inode): asks again', () => {
    info();
    writeFileSync(`${daemonJson}.new`, '{}\n');
    renameSync(`${daemonJson}.new`, daemonJson);
    info();
    expect(calls()).toBe(2);
  });

  it('a daemon.json appears where there was none: asks again', () => {
    const other = join(dir, 'snap-daemon.json');
    info([other]);
    writeFileSync(other, '{}\n');
    info([other]);
    expect(calls()).toBe(2);
  });

  it('a daemon.json stat cannot read (here: a stat without %.9Z): no record is used or written', () => {
    writeFileSync(join(dir, 'bin', 'stat'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(dir, 'bin', 'stat'), 0o755);
    info();
    info();
    expect(calls()).toBe(2);
  });

  it('record missing: asks again', () => {
    info();
    rmSync(record);
    info();
    expect(calls()).toBe(2);
  });

  it('record corrupt (garbage, cut short, key without the ok line): asks again and prints docker info, not the record', () => {
    info();
    const key = readFileSync(record, 'utf8').split('\n')[0];
    for (const bad of ['\u0000\u0001garbage', '', key, `${key}\n@@nope\nfake`]) {
      writeFileSync(record, bad);
      expect(info()).toBe('20.10.24 json-file {"IndexConfigs":{}}\n');
    }
    expect(calls()).toBe(5);
  });

  it('a failed docker info is never recorded', () => {
    writeFileSync(join(dir, 'fail'), '');
    expect(info()).toContain('Cannot connect');
    rmSync(join(dir, 'fail'));
    expect(info()).toBe('20.10.24 json-file {"IndexConfigs":{}}\n');
    expect(calls()).toBe(2);
    info();
    expect(calls()).toBe(2);
  });

  it('no running dockerd found (empty PID): always asks, records nothing', () => {
    const r = () =>
      spawnSync(
        'sh',
        ['-c', `${DOCKER_INFO_CACHED_FN}\ndocker_info_cached "$@"`, 'sh', record, '', daemonJson],
        {
          encoding: 'utf8',
          env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, RF_T: dir },
        },
      );
    r();
    r();
    expect(calls()).toBe(2);
  });
});
