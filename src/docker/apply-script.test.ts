// The apply round trip's shell, run for real with sh against a folder and stand-in docker/systemctl/snap commands:
// owned registries come and go, daemon.json keeps its mode and links, a reload that fails puts the old file back.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { fileFact, hostFacts, testNode } from './facts.fixture.js';
import { registryStatePath, sha256, type HostFacts } from './facts.js';
import { applyScript, LOG_CHECK_IMAGE, loadedMarkers, ROLLED_BACK } from './docker-converge.js';
import { planHost } from './docker-plan.js';

const REG = 'reg.lan:5000';
/** A registry the stand-in dockerd refuses (as a real one refuses a conflicting or invalid option). */
const POISON = 'poison.lan:5000';

let dir: string;
let dj: string;

// A dockerd stand-in: `loaded` holds the registries it runs with, `down` means it does not run. A reload (SIGHUP)
// of a file naming POISON fails inside dockerd (systemctl still exits 0, as `kill -HUP` does); a start fails.
const STANDINS = {
  docker: `#!/bin/sh
[ -e "$RF_T/down" ] && { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
case "$1 $2" in "image inspect") exit 1 ;; "import -") cat >/dev/null; echo "imported $3" >> "$RF_T/log"; exit 0 ;; esac
if [ "$1" = run ]; then
  echo "run $*" >> "$RF_T/log"
  [ -e "$RF_T/logfail" ] && { echo 'docker: Error response from daemon: failed to initialize logging driver: journald is not enabled on this host.' >&2; exit 125; }
  echo 'docker: Error response from daemon: OCI runtime create failed: exec: "/runner-fleet-log-check": no such file or directory: unknown.' >&2; exit 127
fi
[ "$2" = "--format" ] || exit 0
regs=$(cat "$RF_T/loaded" 2>/dev/null)
idx=""; for r in $regs; do idx="$idx\\"$r\\":{\\"Secure\\":false},"; done
echo "20.10.24 {\\"IndexConfigs\\":{\${idx%,}},\\"InsecureRegistryCIDRs\\":[\\"127.0.0.0/8\\"]}"`,
  load: `#!/bin/sh
# load MODE: reads $RF_DJ as dockerd would; MODE=start takes dockerd down when the file is refused
if grep -q ${POISON} "$RF_DJ" 2>/dev/null; then [ "$1" = start ] && touch "$RF_T/down"; echo refused >> "$RF_T/log"; [ "$1" = start ] && exit 1; exit 0; fi
rm -f "$RF_T/down"
if [ -e "$RF_DJ" ]; then tr -d '\\n ' < "$RF_DJ" | sed -n 's/.*"insecure-registries":\\[\\([^]]*\\)\\].*/\\1/p' | tr -d '"' | tr ',' ' ' > "$RF_T/loaded"; else : > "$RF_T/loaded"; fi
echo "loaded $1" >> "$RF_T/log"`,
  systemctl: `#!/bin/sh
case "$1" in reload) exec load reload ;; restart|start) exec load start ;; *) exit 0 ;; esac`,
  snap: `#!/bin/sh
[ "$1" = restart ] && exec load start; exit 0`,
};

function run(script: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-s'], {
    input: script,
    encoding: 'utf8',
    env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, RF_T: dir, RF_DJ: dj },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function factsNow(): HostFacts {
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);
  const loaded = read(join(dir, 'loaded'))?.trim().split(/\s+/).filter(Boolean) ?? [];
  return hostFacts({
    aptDaemonJson: fileFact(dj, read(dj)),
    registryState: { [dj]: fileFact(registryStatePath(dj), read(registryStatePath(dj))) },
    docker: {
      version: '20.10.24',
      indexConfigs: Object.fromEntries(loaded.map((r) => [r, { Secure: false }])),
      insecureCidrs: [],
    },
  });
}

/** Plans against the folder as it is, and runs the plan's apply script. */
function converge(registries: string[]) {
  const plan = planHost(testNode, registries, { ...factsNow(), runningDaemonJson: factsNow().aptDaemonJson });
  return { plan, ...run(applyScript(plan.steps, registries, plan.afterVerify, { verifyTries: 6 })) };
}

const insecure = () => JSON.parse(readFileSync(dj, 'utf8'))['insecure-registries'] as string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rf-apply-'));
  mkdirSync(join(dir, 'bin'));
  for (const [name, text] of Object.entries(STANDINS)) {
    writeFileSync(join(dir, 'bin', name), `${text}\n`);
    chmodSync(join(dir, 'bin', name), 0o755);
  }
  mkdirSync(join(dir, 'etc'));
  dj = join(dir, 'etc', 'daemon.json');
  writeFileSync(dj, '{"log-level":"warn","insecure-registries":["mine.lan:5000"]}\n');
  run('load reload');
});

describe('apply script: insecure-registries runner-fleet added', () => {
  it('records what it added, removes it once the inventory drops it, and never touches the rest', () => {
    const first = converge([REG, 'mine.lan:5000']);
    expect(first.code).toBe(0);
    expect(insecure()).toEqual(['mine.lan:5000', REG]);
    // mine.lan was there before: not runner-fleet's, so not recorded.
    expect(JSON.parse(readFileSync(registryStatePath(dj), 'utf8'))['insecure-registries-added']).toEqual([
      REG,
    ]);
    expect(statSync(registryStatePath(dj)).mode & 0o777).toBe(0o600);

    expect(converge([REG, 'mine.lan:5000']).plan.steps).toEqual([]); // a rerun changes nothing

    const dropped = converge([]);
    expect(dropped.plan.steps.map((s) => (s.kind === 'write-file' ? s.name : s.kind))).toEqual([
      'daemon.json',
      'reload-docker',
    ]);
    expect(dropped.code).toBe(0);
    expect(insecure()).toEqual(['mine.lan:5000']);
    expect(readFileSync(join(dir, 'loaded'), 'utf8').trim()).toBe('mine.lan:5000');
    expect(JSON.parse(readFileSync(registryStatePath(dj), 'utf8'))['insecure-registries-added']).toEqual([]);
    expect(converge([]).plan.steps).toEqual([]);
  });

  it('keeps a 0600 daemon.json 0600, and writes a symlinked one through to its target', () => {
    chmodSync(dj, 0o600);
    expect(converge([REG]).code).toBe(0);
    expect(statSync(dj).mode & 0o777).toBe(0o600);
    expect(statSync(`${dj}.runner-fleet.bak`).mode & 0o777).toBe(0o600);

    const target = join(dir, 'managed.json');
    writeFileSync(target, '{"insecure-registries":[]}\n', { mode: 0o640 });
    const link = join(dir, 'etc', 'linked.json');
    symlinkSync(target, link);
    dj = link;
    const r = converge([REG]);
    expect(r.code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(target);
    expect(JSON.parse(readFileSync(target, 'utf8'))['insecure-registries']).toEqual([REG]);
    expect(statSync(target).mode & 0o777).toBe(0o640);
  });

  it('puts the previous daemon.json back and brings Docker back when dockerd does not take the new one (apt reload)', () => {
    const before = readFileSync(dj, 'utf8');
    const r = converge([POISON]);
    expect(r.code).toBe(ROLLED_BACK);
    expect(r.stdout).toContain('@@rollback ok');
    expect(readFileSync(dj, 'utf8')).toBe(before);
    expect(readFileSync(join(dir, 'log'), 'utf8').trim().split('\n')).toEqual([
      'loaded reload',
      'refused',
      'loaded reload',
    ]);
    // Recorded before the write, so it is still known as runner-fleet's: the next run without it has nothing to remove.
    expect(JSON.parse(readFileSync(registryStatePath(dj), 'utf8'))['insecure-registries-added']).toEqual([
      POISON,
    ]);
    expect(converge([]).plan.steps).toEqual([]);
  });

  it('starts a dockerd that a restart with the new file took down (snap), with the previous file', () => {
    const before = readFileSync(dj, 'utf8');
    const facts = factsNow();
    const plan = planHost({ ...testNode, docker: 'snap' }, [POISON], {
      ...facts,
      aptDocker: false,
      snapDocker: true,
      runningDaemonJson: facts.aptDaemonJson,
    });
    expect(plan.steps.map((s) => s.kind)).toEqual(['write-file', 'write-file', 'reload-docker']);
    const r = run(applyScript(plan.steps, [POISON], plan.afterVerify, { verifyTries: 6 }));
    expect(r.code).toBe(ROLLED_BACK);
    expect(r.stdout).toContain('@@rollback ok');
    expect(readFileSync(dj, 'utf8')).toBe(before);
    expect(existsSync(join(dir, 'down'))).toBe(false);
  });

  it('removes a daemon.json it created when dockerd refuses it', () => {
    writeFileSync(dj, '');
    const facts = factsNow();
    const absent = { ...facts, aptDaemonJson: { path: dj, sha256: 'absent' as const } };
    spawnSync('rm', ['-f', dj]);
    const plan = planHost(testNode, [POISON], { ...absent, runningDaemonJson: absent.aptDaemonJson });
    const r = run(applyScript(plan.steps, [POISON], plan.afterVerify, { verifyTries: 6 }));
    expect(r.code).toBe(ROLLED_BACK);
    expect(existsSync(dj)).toBe(false);
    expect(sha256('')).toHaveLength(64);
  });
});

describe('apply script: docker.* settings are verified like registries', () => {
  it('a registry mirror the reloaded dockerd does not list puts the previous daemon.json back', () => {
    const before = readFileSync(dj, 'utf8');
    const settings = { registryMirrors: ['https://mirror.lan:5000'] };
    const plan = planHost(
      testNode,
      [REG],
      { ...factsNow(), runningDaemonJson: factsNow().aptDaemonJson },
      settings,
    );
    expect(loadedMarkers(settings)).toEqual(['"https://mirror.lan:5000/"']);
    const r = run(
      applyScript(plan.steps, [REG], plan.afterVerify, { verifyTries: 4, expect: loadedMarkers(settings) }),
    );
    expect(r.code).toBe(ROLLED_BACK);
    expect(r.stdout).toContain('@@rollback ok');
    expect(readFileSync(dj, 'utf8')).toBe(before);
  });
});

describe('apply script: a log settings change is proved by one throwaway container', () => {
  const settings = { registryMirrors: [], logs: { driver: 'journald' as const } };
  const planned = () => {
    const plan = planHost(
      testNode,
      [REG],
      { ...factsNow(), runningDaemonJson: factsNow().aptDaemonJson },
      settings,
    );
    expect(plan.steps.at(-1)).toMatchObject({ kind: 'reload-docker', action: 'restart' });
    return plan;
  };
  const log = () => readFileSync(join(dir, 'log'), 'utf8');

  it('a container that starts (its command missing, after the log driver started) passes; the image is made on the node', () => {
    const plan = planned();
    const r = run(applyScript(plan.steps, [REG], plan.afterVerify, { verifyTries: 4, containerCheck: true }));
    expect(r.code, r.stderr).toBe(0);
    expect(log()).toContain(`imported ${LOG_CHECK_IMAGE}`);
    expect(log()).toContain(
      `run run --rm --pull never --network none ${LOG_CHECK_IMAGE} /runner-fleet-log-check`,
    );
  });

  it('a log driver that fails every container start: the previous daemon.json back, dockerd restarted with it', () => {
    const before = readFileSync(dj, 'utf8');
    writeFileSync(join(dir, 'logfail'), '');
    const plan = planned();
    const r = run(applyScript(plan.steps, [REG], plan.afterVerify, { verifyTries: 4, containerCheck: true }));
    expect(r.code).toBe(ROLLED_BACK);
    expect(r.stdout).toContain('@@logcheck failed');
    expect(r.stdout).toContain('@@rollback ok');
    expect(r.stderr).toContain('failed to initialize logging driver: journald is not enabled on this host');
    expect(readFileSync(dj, 'utf8')).toBe(before);
    // Restarted for the change, then again for the rollback: only a start reads the log settings.
    expect(
      log()
        .split('\n')
        .filter((l) => l === 'loaded start'),
    ).toHaveLength(2);
  });
});
