// snap.holdRefresh: snapd must not refresh (and so restart) the docker and microk8s snaps while jobs run. Gather
// snippet, pure plan, shell.
//
// snapd ≥ 2.58 (cmd/snap/cmd_snap_op.go, holdRefreshes): `snap refresh --hold=forever SNAP…` holds the named snaps'
// auto-refreshes and general `snap refresh` runs, prints `General refreshes of "docker", "microk8s" held
// indefinitely`; `snap refresh --unhold SNAP…` prints `Removed general refresh hold of "docker"`. A refresh that
// names the snap (`snap refresh docker`) still goes through: that is how upgrade-snaps refreshes a held snap. `snap
// list` shows a held snap with `held` in its Notes (cmd/snap/notes.go).
import { IDENTITY_ROOT } from '../executors.js';
import type { SnapSettings } from '../inventory/types.js';
import { fileFact, shQuote, type FileFact, type GatherOutput } from './gather.js';

/** The snaps whose refresh restarts what jobs run on. */
export const HELD_SNAPS = ['docker', 'microk8s'] as const;
export type HeldSnap = (typeof HELD_SNAPS)[number];

/** The snaps runner-fleet held (one name a line): only those are released by destroy or when the setting goes. */
export const SNAP_HOLDS_STATE = `${IDENTITY_ROOT}/snap-holds`;

export const SNAP_SECTION = 'rf-snaps';

/** Joins the gather round trip: `snap list` of each snap (its Notes say `held`) and runner-fleet's record. */
export const snapHoldsGatherScript = `echo "@@${SNAP_SECTION}"
if command -v snap >/dev/null 2>&1; then for s in ${HELD_SNAPS.join(' ')}; do snap list "$s" 2>/dev/null | sed -n '2p'; done; fi; :
emit_file ${SNAP_HOLDS_STATE}`;

export interface SnapFacts {
  /** installed snaps among HELD_SNAPS, and whether snapd holds each */
  installed: Partial<Record<HeldSnap, { held: boolean; version: string; rev: string }>>;
  /** the snaps runner-fleet recorded holding */
  state: FileFact;
}

const isHeldSnap = (name: string): name is HeldSnap => (HELD_SNAPS as readonly string[]).includes(name);

/** Lines of `snap list` (Name Version Rev Tracking Publisher Notes; Notes comma-separated, `-` for none). */
export function parseSnapFacts(g: GatherOutput): SnapFacts {
  const installed: SnapFacts['installed'] = {};
  for (const line of g.sections.get(SNAP_SECTION) ?? []) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 6 || !isHeldSnap(cols[0])) continue;
    installed[cols[0]] = { held: cols[5].split(',').includes('held'), version: cols[1], rev: cols[2] };
  }
  return { installed, state: fileFact(SNAP_HOLDS_STATE, g.files.get(SNAP_HOLDS_STATE)) };
}

/** The snaps the record names (unknown names ignored). */
export function recordedHolds(state: FileFact): HeldSnap[] {
  return (state.content ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(isHeldSnap);
}

export type SnapHoldStep =
  /** records, then holds `snaps` (forever); `record` is the whole new record */
  | { kind: 'snap-hold'; snaps: HeldSnap[]; record: HeldSnap[]; expectSha256: string; detail: string }
  /** releases `snaps` (those runner-fleet held), then removes the record */
  | { kind: 'snap-unhold'; snaps: HeldSnap[]; expectSha256: string; detail: string };

/**
 * One change per node at most. A hold someone else made (held, not in the record) is theirs: left alone, and not
 * released later. Dropping the setting releases only what runner-fleet held.
 */
export function planSnapHolds(snap: SnapSettings, facts: SnapFacts | undefined): SnapHoldStep[] {
  if (!facts) return [];
  if (!snap.holdRefresh) {
    const release = planSnapHoldsCleanup(facts);
    return release ? [release] : [];
  }
  const recorded = recordedHolds(facts.state);
  const hold = HELD_SNAPS.filter((s) => facts.installed[s] && !facts.installed[s]!.held);
  if (hold.length === 0) return [];
  const record = HELD_SNAPS.filter((s) => recorded.includes(s) || hold.includes(s));
  return [
    {
      kind: 'snap-hold',
      snaps: hold,
      record,
      expectSha256: facts.state.sha256,
      detail: `snap refresh --hold=forever ${hold.join(' ')}: snapd no longer refreshes (and restarts) ${hold.length > 1 ? 'them' : 'it'} on its own schedule; upgrade-snaps refreshes ${hold.length > 1 ? 'them' : 'it'} between jobs`,
    },
  ];
}

/** What destroy (or holdRefresh: false) takes back: runner-fleet's holds on the snaps still installed, and its record. */
export function planSnapHoldsCleanup(
  facts: SnapFacts | undefined,
): Extract<SnapHoldStep, { kind: 'snap-unhold' }> | undefined {
  if (!facts || facts.state.sha256 === 'absent') return undefined;
  const release = recordedHolds(facts.state).filter((s) => facts.installed[s]?.held);
  return {
    kind: 'snap-unhold',
    snaps: release,
    expectSha256: facts.state.sha256,
    detail:
      release.length > 0
        ? `snap refresh --unhold ${release.join(' ')} (held by runner-fleet; snapd refreshes ${release.length > 1 ? 'them' : 'it'} on its schedule again), remove ${SNAP_HOLDS_STATE}`
        : `remove ${SNAP_HOLDS_STATE} (the snaps it names are no longer held)`,
  };
}

/** Shell for a step, run as root. `write` is the atomic, sha-guarded write (converge.ts's atomicWriteScript). */
export function snapHoldStepScript(
  step: SnapHoldStep,
  write: (path: string, content: string, expectSha256: string) => string,
): string {
  switch (step.kind) {
    case 'snap-hold':
      // Recorded first: a run cut off after the hold still knows the hold is runner-fleet's.
      return [
        write(SNAP_HOLDS_STATE, step.record.map((s) => `${s}\n`).join(''), step.expectSha256),
        `snap refresh --hold=forever ${step.snaps.join(' ')} >/dev/null`,
      ].join('\n');
    case 'snap-unhold': {
      const f = shQuote(SNAP_HOLDS_STATE);
      return [
        `if [ -e ${f} ] && [ "$(sha256sum ${f} | cut -d' ' -f1)" != ${shQuote(step.expectSha256)} ]; then echo "${SNAP_HOLDS_STATE} changed while runner-fleet was working; run again" >&2; exit 17; fi`,
        ...(step.snaps.length > 0 ? [`snap refresh --unhold ${step.snaps.join(' ')} >/dev/null`] : []),
        `rm -f ${f}`,
        `rmdir ${shQuote(IDENTITY_ROOT)} 2>/dev/null || :`,
      ].join('\n');
    }
  }
}

/**
 * upgrade-snaps on one node, in one round trip: when `metrics` (the section metricsGatherScript prints) says the
 * runner runs no job, refresh the installed HELD_SNAPS by name (a named refresh goes through a hold), then wait for
 * dockerd to answer again. Prints `@@busy jobs N` (nothing done) or `@@refresh` + snapd's output + `@@rc N`, then
 * `@@docker up|down`.
 */
export function refreshScript(metrics: string | undefined): string {
  const check = metrics
    ? `rf_jobs=$( { ${metrics}
} | sed -n 2p )
if [ "$rf_jobs" != "jobs 0" ]; then echo "@@busy \${rf_jobs:-unknown}"; exit 0; fi\n`
    : '';
  return `${check}set --
for s in ${HELD_SNAPS.join(' ')}; do snap list "$s" >/dev/null 2>&1 && set -- "$@" "$s"; done
[ $# -gt 0 ] || { echo "@@none"; exit 0; }
echo "@@refresh"
snap refresh "$@" 2>&1; echo "@@rc $?"
i=0; until timeout 10 docker info >/dev/null 2>&1; do i=$((i+1)); [ $i -ge 60 ] && break; sleep 1; done
if [ $i -ge 60 ]; then echo "@@docker down"; else echo "@@docker up"; fi`;
}

export type RefreshOutcome =
  | { kind: 'busy'; jobs: string }
  | { kind: 'none' }
  | { kind: 'refreshed'; refreshed: string[]; output: string; dockerUp: boolean }
  | { kind: 'failed'; output: string };

/** Reads refreshScript's output; `refreshed` are the snaps snapd said it refreshed (`NAME VERSION from … refreshed`). */
export function parseRefresh(stdout: string): RefreshOutcome {
  const busy = /^@@busy (.*)$/m.exec(stdout);
  if (busy) return { kind: 'busy', jobs: busy[1].replace(/^jobs /, '') };
  if (/^@@none$/m.test(stdout)) return { kind: 'none' };
  const output = stdout.split('@@refresh\n')[1]?.split('\n@@rc')[0]?.trim() ?? stdout.trim();
  const rc = /^@@rc (\d+)$/m.exec(stdout);
  if (!rc || rc[1] !== '0') return { kind: 'failed', output };
  const refreshed = [...output.matchAll(/^(\S+) \S+ from .* refreshed$/gm)].map((m) => m[1]);
  return { kind: 'refreshed', refreshed, output, dockerUp: /^@@docker up$/m.test(stdout) };
}
