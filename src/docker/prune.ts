// docker.prune: a systemd timer on each node that removes what CI jobs left in Docker. Gather snippet, pure plan, shell.
//
// What goes (Docker 20.10's CLI, docs/reference/commandline/*_prune.md): stopped containers and images no container
// uses (running or stopped: `image prune --all` never removes an image a container was made from), both only when
// created longer ago than `until`; build cache unused for `until`, down to `keepStorage`; and anonymous volumes
// (64-hex names: the dind service's /var/lib/docker, a job's VOLUME) that no container uses. Named volumes stay:
// `volume prune` in 20.10 would remove every unused one, a user's database among them.
import type { DockerFlavour, PruneSettings } from '../inventory/types.js';
import { fileFact, shQuote, type FileFact, type GatherOutput } from './gather.js';

export const PRUNE_UNIT = 'runner-fleet-docker-prune';
export const PRUNE_SERVICE_FILE = `/etc/systemd/system/${PRUNE_UNIT}.service`;
export const PRUNE_TIMER_FILE = `/etc/systemd/system/${PRUNE_UNIT}.timer`;
/** What `systemctl enable` makes for the timer's `WantedBy=timers.target`. */
export const PRUNE_TIMER_LINK = `/etc/systemd/system/timers.target.wants/${PRUNE_UNIT}.timer`;

/** The docker CLI each flavour installs: systemd runs ExecStart= without a shell, so the path is absolute. */
const DOCKER_CLI: Record<DockerFlavour, string> = { apt: '/usr/bin/docker', snap: '/snap/bin/docker' };
/** The unit the prune runs after, so that it does not race dockerd's start at boot. */
const DOCKER_UNIT: Record<DockerFlavour, string> = {
  apt: 'docker.service',
  snap: 'snap.docker.dockerd.service',
};

/** The prune commands, in order, as ExecStart= lines (systemd's quoting; `$$` is a literal `$`). */
export function pruneCommands(prune: PruneSettings, flavour: DockerFlavour): string[] {
  const docker = DOCKER_CLI[flavour];
  const until = `--filter until=${prune.until}`;
  return [
    `${docker} container prune --force ${until}`,
    `${docker} image prune --all --force ${until}`,
    `${docker} builder prune --all --force ${until}${prune.keepStorage ? ` --keep-storage ${prune.keepStorage.replace(/ /g, '')}` : ''}`,
    // `-`: a volume a new job took between the list and the removal is not a failure of the prune.
    `-/bin/sh -c '${docker} volume ls -q --filter dangling=true | grep -E "^[0-9a-f]{64}$$" | xargs -r ${docker} volume rm'`,
  ];
}

export function renderPruneService(prune: PruneSettings, flavour: DockerFlavour): string {
  return (
    '# Managed by runner-fleet (docker.prune): removes what CI jobs left in Docker; destroy removes it.\n' +
    '[Unit]\n' +
    'Description=runner-fleet: prune what CI jobs left in Docker\n' +
    `After=${DOCKER_UNIT[flavour]}\n\n` +
    '[Service]\n' +
    'Type=oneshot\n' +
    // Jobs keep the CPU and the disk: the prune waits its turn.
    'Nice=19\n' +
    'IOSchedulingClass=idle\n' +
    pruneCommands(prune, flavour)
      .map((c) => `ExecStart=${c}\n`)
      .join('')
  );
}

export function renderPruneTimer(prune: PruneSettings): string {
  return (
    '# Managed by runner-fleet (docker.prune); destroy removes it.\n' +
    '[Unit]\n' +
    'Description=runner-fleet: prune what CI jobs left in Docker\n\n' +
    '[Timer]\n' +
    `OnCalendar=${prune.schedule}\n` +
    // A node that was off at the time prunes when it is back; nodes do not all prune at the same second.
    'Persistent=true\n' +
    'RandomizedDelaySec=15min\n\n' +
    '[Install]\n' +
    'WantedBy=timers.target\n'
  );
}

export const PRUNE_SECTION = 'rf-prune';

/** Joins the gather round trip: the two unit files, whether the timer is enabled and active. */
export const pruneGatherScript = `emit_file ${PRUNE_SERVICE_FILE}
emit_file ${PRUNE_TIMER_FILE}
echo "@@${PRUNE_SECTION}"
[ -L ${PRUNE_TIMER_LINK} ] && echo enabled
if [ -f ${PRUNE_TIMER_FILE} ] && command -v systemctl >/dev/null 2>&1; then echo "active=$(systemctl is-active ${PRUNE_UNIT}.timer 2>/dev/null)"; fi; :`;

export interface PruneFacts {
  service: FileFact;
  timer: FileFact;
  enabled: boolean;
  /** `systemctl is-active` of the timer; undefined when there is no timer file */
  active?: string;
}

export function parsePruneFacts(g: GatherOutput): PruneFacts {
  const lines = (g.sections.get(PRUNE_SECTION) ?? []).map((l) => l.trim());
  const active = lines.find((l) => l.startsWith('active='))?.slice('active='.length);
  return {
    service: fileFact(PRUNE_SERVICE_FILE, g.files.get(PRUNE_SERVICE_FILE)),
    timer: fileFact(PRUNE_TIMER_FILE, g.files.get(PRUNE_TIMER_FILE)),
    enabled: lines.includes('enabled'),
    ...(active !== undefined ? { active } : {}),
  };
}

export interface UnitWrite {
  path: string;
  content: string;
  expectSha256: string;
}

export type PruneStep =
  /** writes the unit files that differ, reloads systemd's view of them, enables and (re)starts the timer */
  | { kind: 'prune-timer'; writes: UnitWrite[]; detail: string }
  /** stops and disables the timer, removes both unit files (guarded by what the plan saw) */
  | { kind: 'remove-prune-timer'; files: FileFact[]; detail: string };

/**
 * The timer for `prune` (undefined: none wanted). A timer runner-fleet installed goes when the inventory drops
 * `docker.prune`; the unit files are runner-fleet's by their names alone.
 */
export function planPrune(
  prune: PruneSettings | undefined,
  flavour: DockerFlavour,
  facts: PruneFacts | undefined,
): PruneStep[] {
  if (!facts) return [];
  if (!prune) {
    const cleanup = planPruneCleanup(facts);
    return cleanup ? [cleanup] : [];
  }
  const want = [
    { fact: facts.service, content: renderPruneService(prune, flavour) },
    { fact: facts.timer, content: renderPruneTimer(prune) },
  ];
  const writes = want
    .filter((w) => w.fact.content !== w.content)
    .map((w) => ({ path: w.fact.path, content: w.content, expectSha256: w.fact.sha256 }));
  if (writes.length === 0 && facts.enabled && facts.active === 'active') return [];
  const what = [
    ...(writes.length > 0 ? [`write ${writes.map((w) => w.path).join(' and ')}`] : []),
    ...(!facts.enabled || writes.length > 0 ? ['systemctl enable'] : []),
    `start ${PRUNE_UNIT}.timer`,
  ];
  return [
    {
      kind: 'prune-timer',
      writes,
      detail: `${what.join(', ')}: ${prune.schedule}, prunes stopped containers, unused images and build cache older than ${prune.until}${prune.keepStorage ? ` (keeping ${prune.keepStorage} of build cache)` : ''} and unused anonymous volumes; images a container uses stay`,
    },
  ];
}

/** What destroy (or dropping docker.prune) takes back: the timer and its two files, when they are there. */
export function planPruneCleanup(
  facts: PruneFacts | undefined,
): Extract<PruneStep, { kind: 'remove-prune-timer' }> | undefined {
  if (!facts) return undefined;
  const files = [facts.service, facts.timer].filter((f) => f.sha256 !== 'absent');
  if (files.length === 0 && !facts.enabled) return undefined;
  return {
    kind: 'remove-prune-timer',
    files,
    detail: `stop and disable ${PRUNE_UNIT}.timer, remove ${[PRUNE_SERVICE_FILE, PRUNE_TIMER_FILE].join(' and ')} (docker.prune)`,
  };
}

/** Shell for a prune step, run as root. `write` is the atomic, sha-guarded write (converge.ts's atomicWriteScript). */
export function pruneStepScript(
  step: PruneStep,
  write: (path: string, content: string, expectSha256: string) => string,
): string {
  const timer = `${PRUNE_UNIT}.timer`;
  switch (step.kind) {
    case 'prune-timer':
      return [
        ...step.writes.map((w) => write(w.path, w.content, w.expectSha256)),
        'systemctl daemon-reload',
        `systemctl enable ${timer} 2>/dev/null`,
        // A restart, not a start: a timer already running takes a new OnCalendar= only when it starts again.
        `systemctl restart ${timer}`,
      ].join('\n');
    case 'remove-prune-timer': {
      const guard = step.files
        .map(
          (f) =>
            `if [ -e ${shQuote(f.path)} ] && [ "$(sha256sum ${shQuote(f.path)} | cut -d' ' -f1)" != ${shQuote(f.sha256)} ]; then echo "${f.path} changed while runner-fleet was working; not removing it, run again" >&2; exit 17; fi`,
        )
        .join('\n');
      return [
        guard,
        `if [ -f ${PRUNE_TIMER_FILE} ]; then systemctl disable --now ${timer} 2>/dev/null || :; fi`,
        `rm -f ${PRUNE_TIMER_LINK} ${PRUNE_SERVICE_FILE} ${PRUNE_TIMER_FILE}`,
        'systemctl daemon-reload',
      ]
        .filter(Boolean)
        .join('\n');
    }
  }
}
