// Chaos: one converge while SSH sessions are killed, GitLab slows past its timeout, the
// apiserver freezes and a second apply starts. Then: no partial file on any node, no runner in GitLab the records do
// not hold (unless the report named it as a lost create), every node converged or named, and a clean rerun converges
// and leaves nothing to change.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { down, execOnNode, type FleetInfo, nodeFile, startNodeSshd, stopNodeSshd, up } from '#testbed';
import { KubeClient } from '../../src/kube/client.js';
import { readSecretRecords, writeVersionedRecords } from '../../src/kube/records-secret.js';
import type { RunReport } from '../../src/report.js';
import {
  readInventory,
  standinControl,
  standinState,
  writeVariant,
  type InventoryDoc,
  withoutPrepull,
} from '../support/fleet.js';
import { REPO } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('chaos end to end (test fleet)');
const NS = 'gitlab-runner';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Children of a process, from /proc (the node's sshd's sessions: processes of the fleet this test started). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Every process below `pid`, with its command line. */
function descendantsOf(pid: number): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const child of childrenOf(pid)) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${child}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      /* gone meanwhile */
    }
    out.push({ pid: child, cmdline }, ...descendantsOf(child));
  }
  return out;
}

/**
 * Resolves once one of the node's SSH sessions runs a command matching `pattern` (or after `timeoutMs`): a drop
 * timed by what the node is doing, not by a guess at how long it takes.
 */
async function whenNodeRuns(name: string, pattern: RegExp, timeoutMs: number): Promise<boolean> {
  const sshd = Number(readFileSync(nodeFile(name, '/run/sshd.pid'), 'utf8').trim());
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (descendantsOf(sshd).some((p) => pattern.test(p.cmdline))) return true;
    await sleep(10);
  }
  return false;
}

/** Kills the SSH sessions open to the node, by PID, and stops its listening sshd: the node drops off mid-run. */
async function dropNode(name: string): Promise<number> {
  const sshd = Number(readFileSync(nodeFile(name, '/run/sshd.pid'), 'utf8').trim());
  const sessions = childrenOf(sshd);
  await stopNodeSshd(name);
  for (const pid of sessions) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* ended by itself */
    }
  }
  return sessions.length;
}

/** The apiserver of the fleet's cluster (scripts/testbed/extra-services.ts puts it under services/cluster/k8s). */
function apiserverPid(fleet: FleetInfo): number {
  const pids = JSON.parse(
    readFileSync(join(fleet.stateDir, 'services', 'cluster', 'k8s', 'pids.json'), 'utf8'),
  ) as { component: string; pid: number }[];
  return pids.find((p) => p.component === 'kube-apiserver')!.pid;
}

interface Run {
  code: number | null;
  stderr: string;
  report?: RunReport;
}

/** A run's processes, stopped and continued together. */
interface ProcessGroup {
  pause(): void;
  resume(): void;
}

/** provision.ts apply, with a callback on every line it prints to stderr (its progress, plain lines without a terminal). */
function apply(
  inventory: string,
  onLine: (line: string, group: ProcessGroup) => void = () => {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      join(REPO, 'node_modules', '.bin', 'tsx'),
      [join(REPO, 'provision.ts'), '--inventory', inventory, '--executor', 'dood', '--json'],
      {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group (tsx and the node it starts), so the test can pause and resume the whole run.
        detached: true,
      },
    );
    const group: ProcessGroup = {
      pause: () => process.kill(-child.pid!, 'SIGSTOP'),
      resume: () => process.kill(-child.pid!, 'SIGCONT'),
    };
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l, group);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      let report: RunReport | undefined;
      try {
        report = stdout.trim() ? (JSON.parse(stdout.trim().split('\n').pop()!) as RunReport) : undefined;
      } catch {
        /* the assertions say what was printed */
      }
      resolve({ code, stderr, report });
    });
  });
}

describe.runIf(canRun)('chaos: a converge under fire', () => {
  let fleet: FleetInfo;
  let base: InventoryDoc;
  let gitlabUrl: string;
  let client: KubeClient;
  let frozen: number | undefined;
  const nodes = () => fleet.nodes.map((n) => n.name);

  beforeAll(async () => {
    fleet = await up({ nodes: 3 });
    withoutPrepull(fleet.inventory);
    base = readInventory(fleet.inventory);
    base.runners = { ...base.runners, tags: ['arm64', 'pi'], executor: 'dood' };
    // Short limits, so that a slow GitLab and a frozen apiserver show within the test's time.
    base.gitlab.timeout = 3;
    base.kubernetes.requestTimeout = 5;
    gitlabUrl = base.gitlab.url;
    client = KubeClient.load({ kubeconfig: base.kubernetes.kubeconfig });
  });

  afterAll(async () => {
    if (frozen) process.kill(frozen, 'SIGCONT');
    if (canRun) await down();
  });

  /** Runners in GitLab other than the preset shared one, with the attempt marker runner-fleet put on them. */
  const gitlabRunners = async () =>
    (await standinState(gitlabUrl)).runners
      .filter((r) => r.createdVia !== 'preset')
      .map((r) => ({ id: r.id, attempt: /attempt=([0-9a-z]+)\]/.exec(r.maintenanceNote ?? '')?.[1] }));
  const recordIds = async () =>
    (await readSecretRecords<{ id?: number; retiredAt?: string }>(client, NS)).map((r) => r.id);

  /** No temp or half-written file next to what runner-fleet writes, and every daemon.json still parses. */
  async function checkNoPartialFiles(): Promise<void> {
    for (const name of nodes()) {
      const r = await execOnNode(name, [
        'sh',
        '-c',
        'for d in /etc/docker /var/snap/docker/current/config; do [ -d "$d" ] && find "$d" -name ".*runner-fleet*" -print; done; ' +
          'for f in /etc/docker/daemon.json /var/snap/docker/current/config/daemon.json; do [ -f "$f" ] && echo "@@file $f" && cat "$f" && echo "@@end"; done; true',
      ]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      const leftovers = r.stdout.split('\n').filter((l) => l.startsWith('/'));
      expect(leftovers, `${name}: temp files left`).toEqual([]);
      for (const m of r.stdout.matchAll(/@@file (\S+)\n([\s\S]*?)@@end/g)) {
        expect(() => JSON.parse(m[2]), `${name}: ${m[1]} is not whole JSON`).not.toThrow();
      }
    }
  }

  it('kills sessions, slows GitLab, freezes the apiserver and starts a second apply: nothing is lost, orphaned or half-done', async () => {
    const path = writeVariant(fleet.inventory, base, () => {});
    const pid = apiserverPid(fleet);
    // A run killed before this one lost the answer to pi1's create: GitLab has the runner, no record holds it. That
    // run had kept its fleet id on the records Secret before creating, and marked the runner with it.
    await writeVersionedRecords(client, NS, [], { records: [] }, undefined, 'c4a05f1ee7');
    const accessToken = readFileSync(base.gitlab.accessToken.slice('file:'.length), 'utf8').trim();
    const res = await fetch(`${gitlabUrl}/api/v4/user/runners`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': accessToken, 'content-type': 'application/json' },
      body: JSON.stringify({
        runner_type: 'instance_type',
        description: 'pi1',
        tag_list: ['arm64', 'pi', 'pi1'],
        maintenance_note:
          'Managed by runner-fleet for node pi1. [runner-fleet fleet=c4a05f1ee7 node=pi1 attempt=deadbeef]',
      }),
    });
    expect(res.status).toBe(201);
    const strayId = ((await res.json()) as { id: number }).id;
    const events: string[] = [];
    let second: Promise<Run> | undefined;
    const chaos: Promise<unknown>[] = [];
    let dropped = false;
    let slowed = false;
    let froze = false;

    const first = await apply(path, (line, firstRun) => {
      // The host phase has begun, so the first run holds the fleet lock: a second apply now must fail fast. The
      // first run is paused until the second has ended (well within the lease's 60 s): on a loaded machine the
      // second's start-up could otherwise outlast the whole first run, and it would find the lock free.
      if (!second && /connecting to/.test(line)) {
        events.push('second apply (first paused)');
        firstRun.pause();
        second = apply(path).finally(() => {
          firstRun.resume();
          events.push('first resumed');
        });
      }
      // pi3 (no Docker yet, the longest apply) drops off while its Docker is being converged.
      if (!dropped && /^\S+ pi3 +converging Docker/.test(line)) {
        dropped = true;
        // Dropped while its apt-get installs Docker: timed by what pi3 does, not by a guess at how long it takes.
        chaos.push(
          whenNodeRuns('pi3', /apt-get\b.*\binstall\b/, 60_000)
            .then(async (seen) => [seen, await dropNode('pi3')] as const)
            .then(([seen, n]) =>
              events.push(`pi3 dropped (${n} sessions killed${seen ? ', during apt-get install' : ''})`),
            ),
        );
      }
      // GitLab answers slower than gitlab.timeout for 5 s, from the first GitLab step on.
      if (!slowed && /^\S+ gitlab +reconciling runners/.test(line)) {
        slowed = true;
        events.push('gitlab slow');
        chaos.push(
          standinControl(gitlabUrl, 'delay', 'POST', { ms: 4500 })
            .then(() => sleep(5000))
            .then(() => standinControl(gitlabUrl, 'delay', 'POST', { ms: 0 }))
            .then(() => events.push('gitlab fast again')),
        );
      }
      // The apiserver freezes for 8 s (longer than kubernetes.requestTimeout) once the cluster phase starts, and
      // once the second apply has read the lock: frozen before, it would fail on the timeout, not on the lock (a
      // loaded machine can start it later than a short host phase ends).
      if (!froze && /^\S+ cluster +(converging namespace|planning|converging)/.test(line)) {
        froze = true;
        chaos.push(
          (second ?? Promise.resolve())
            .then(() => {
              frozen = pid;
              process.kill(pid, 'SIGSTOP');
              events.push('apiserver frozen');
              return sleep(8000);
            })
            .then(() => {
              process.kill(pid, 'SIGCONT');
              frozen = undefined;
              events.push('apiserver thawed');
            }),
        );
      }
    });
    await Promise.all(chaos);
    const other = await second;
    console.log(`chaos timeline: ${events.join(' → ')}; first run exit ${first.code}`);
    const r1 = first.report;
    console.log(
      `first run: ${r1?.nodes.map((n) => `${n.name} ${n.ok ? 'ok' : `FAILED (${n.error})`}`).join('; ')}; gitlab ${r1?.gitlab?.ok ? 'ok' : `FAILED (${r1?.gitlab?.error})`}; cluster ${r1?.cluster?.ok ? 'ok' : `FAILED (${r1?.cluster?.error})`}`,
    );

    // The second apply failed fast, naming the lock, and changed nothing.
    expect(other, 'the second apply never started').toBeDefined();
    expect(other!.code, other!.stderr).toBe(1);
    expect(other!.stderr).toMatch(
      /another runner-fleet run holds the fleet lock \(Lease gitlab-runner\/runner-fleet-lock\): \S+\/pid-\d+\/[0-9a-f]{8}, which expires at /,
    );
    expect(other!.report).toBeUndefined();

    // Every node converged or is named with its reason; a failed run says where.
    expect(first.report, first.stderr).toBeDefined();
    const report = first.report!;
    expect(report.nodes.map((n) => n.name).sort()).toEqual(nodes());
    for (const n of report.nodes)
      expect(n.ok || Boolean(n.error), `${n.name} neither converged nor named`).toBe(true);
    expect(report.nodes.find((n) => n.name === 'pi3')!.ok, 'pi3 was dropped: it must be named').toBe(false);
    expect(first.code).toBe(report.ok ? 0 : 1);
    if (!report.ok)
      expect(
        [...report.nodes.map((n) => n.error), report.gitlab?.error, report.cluster?.error].filter(Boolean)
          .length,
      ).toBeGreaterThan(0);

    // Delayed answers still being worked on by the stand-in land before we look.
    await sleep(5000);
    await checkNoPartialFiles();
    // A runner no record holds is one whose create got no answer, and the report named that attempt.
    const held = new Set(await recordIds());
    const reportText = JSON.stringify(report);
    for (const r of await gitlabRunners()) {
      if (held.has(r.id) || r.id === strayId) continue;
      expect(
        r.attempt && reportText.includes(`attempt=${r.attempt}`),
        `runner #${r.id} is in GitLab, in no record, and not named by the report`,
      ).toBe(true);
    }

    // A clean rerun converges; what it changes is the run that was cut short, and a run after it changes nothing.
    await startNodeSshd('pi3');
    const rerun = await apply(path);
    console.log(
      `clean rerun changes: ${JSON.stringify([...rerun.report!.nodes.flatMap((n) => n.changes), ...(rerun.report!.gitlab?.changes ?? []), ...(rerun.report!.cluster?.changes ?? [])].map((c) => c.detail))}`,
    );
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.report!.ok).toBe(true);
    const ids = (await gitlabRunners()).map((r) => r.id).sort();
    expect(ids).toHaveLength(3);
    // The killed run's runner was adopted (or deleted), never left beside a second one for pi1.
    if (ids.includes(strayId))
      expect(JSON.stringify(rerun.report) + JSON.stringify(first.report)).toContain(
        `adopted runner #${strayId}`,
      );
    expect((await recordIds()).sort()).toEqual(ids);
    const last = await apply(path);
    expect(last.code, last.stderr).toBe(0);
    expect(last.report!.changed, JSON.stringify(last.report)).toBe(0);
    await checkNoPartialFiles();
    // The lock was released: nothing holds it between runs.
    expect(
      await client.read({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'runner-fleet-lock', namespace: NS },
      }),
    ).toBeUndefined();
  }, 600_000);
});
