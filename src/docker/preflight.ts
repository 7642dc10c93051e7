// Pre-flight: read-only checks, in the gather's round trip, naming what stops a node from ever running a job.
import { gitlabAheadMs, nodeAheadMs, type GitlabClock } from '../status/clocks.js';
import type { GatherOutput } from './facts.js';

/** What the `@@preflight` section reports; undefined where the node could not say (never a problem then). */
export interface PreflightFacts {
  /** the node's `date +%s` */
  epochSeconds?: number;
  /** this machine's clock (ms) when the gather that read `epochSeconds` returned */
  gatheredAt?: number;
  /** `uname -m`: the kernel's architecture */
  machine?: string;
  /** `dpkg --print-architecture`: the userland's */
  dpkgArch?: string;
  /** `getconf PAGESIZE` */
  pageSize?: number;
  /** the memory controller: /proc/cgroups' `enabled` column, else whether cgroup v2's controllers list it */
  memoryCgroup?: boolean;
  /** where the firmware's cmdline.txt and config.txt are: /boot/firmware on Bookworm, /boot before */
  bootDir: string;
  /** Docker's data root (`docker info` DockerRootDir, else /var/lib/docker) */
  dockerRoot: string;
  /** free KiB under the data root (or its nearest existing parent), `df -Pk` */
  dockerRootFreeKiB?: number;
}

/** GitLab's clock: the `Date` of one of its answers, and this machine's clock (ms) when the answer came. */
export type { GitlabClock } from '../status/clocks.js';

export type PreflightKind =
  'memory-cgroup' | 'userland-32bit' | 'page-size-16k' | 'clock-skew' | 'disk-space';

export interface PreflightProblem {
  kind: PreflightKind;
  /** what the node said */
  fact: string;
  /** the one command that fixes it */
  fix: string;
}

export const MAX_CLOCK_SKEW_SECONDS = 60;
export const MIN_DOCKER_FREE_KIB = 2 * 1024 * 1024;

/** The gather section (joins the host gather's round trip through its `extra`). Runs as root, reads only. */
export const PREFLIGHT_GATHER = `echo "@@preflight"
echo "epoch $(date +%s)"
echo "machine $(uname -m 2>/dev/null)"
echo "dpkg-arch $(dpkg --print-architecture 2>/dev/null)"
echo "page-size $(getconf PAGESIZE 2>/dev/null)"
echo "cgroups-memory $(awk '$1 == "memory" { print $4 }' /proc/cgroups 2>/dev/null)"
[ -f /sys/fs/cgroup/cgroup.controllers ] && echo "cgroup2-controllers $(cat /sys/fs/cgroup/cgroup.controllers)"
if [ -f /boot/firmware/cmdline.txt ]; then echo "boot-dir /boot/firmware"; elif [ -f /boot/cmdline.txt ]; then echo "boot-dir /boot"; fi
rf_root=$(command -v docker >/dev/null 2>&1 && timeout 5 docker info --format '{{.DockerRootDir}}' 2>/dev/null)
case "$rf_root" in /*) ;; *) rf_root=/var/lib/docker ;; esac
rf_d=$rf_root; while [ ! -e "$rf_d" ] && [ "$rf_d" != / ]; do rf_d=$(dirname "$rf_d"); done
echo "docker-root $rf_root"
echo "docker-root-free-kib $(df -Pk "$rf_d" 2>/dev/null | awk 'NR == 2 { print $4 }')"`;

/** Parses the `@@preflight` section; `gatheredAt` is this machine's clock when the gather returned. */
export function parsePreflight(gathered: GatherOutput | undefined, gatheredAt?: number): PreflightFacts {
  const values = new Map<string, string>();
  for (const line of gathered?.sections.get('preflight') ?? []) {
    const at = line.indexOf(' ');
    if (at > 0) values.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  const num = (key: string) => {
    const v = values.get(key);
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  const str = (key: string) => values.get(key) || undefined;
  const enabled = values.get('cgroups-memory');
  const controllers = values.get('cgroup2-controllers');
  const memoryCgroup =
    enabled === '1' || enabled === '0'
      ? enabled === '1'
      : controllers !== undefined
        ? controllers.split(/\s+/).includes('memory')
        : undefined;
  return {
    epochSeconds: num('epoch'),
    ...(gatheredAt !== undefined ? { gatheredAt } : {}),
    machine: str('machine'),
    dpkgArch: str('dpkg-arch'),
    pageSize: num('page-size'),
    memoryCgroup,
    bootDir: str('boot-dir') ?? '/boot/firmware',
    dockerRoot: str('docker-root') ?? '/var/lib/docker',
    dockerRootFreeKiB: num('docker-root-free-kib'),
  };
}

/**
 * How far the node's clock is from GitLab's, in seconds (positive: the node is ahead). Each clock is taken
 * against this machine's at the moment it was read, so this machine's own clock cancels out.
 */
export function clockSkewSeconds(facts: PreflightFacts, gitlab: GitlabClock): number | undefined {
  if (facts.epochSeconds === undefined || facts.gatheredAt === undefined) return undefined;
  return Math.round(
    (nodeAheadMs(facts.epochSeconds * 1000, facts.gatheredAt) - gitlabAheadMs(gitlab)) / 1000,
  );
}

const gib = (kib: number) => `${(kib / 1024 / 1024).toFixed(1)} GiB`;

type Check = (facts: PreflightFacts, gitlab?: GitlabClock) => Omit<PreflightProblem, 'kind'> | undefined;

/** One check per kind: adding a kind is a compile error here until it has its check. */
const CHECKS: Record<PreflightKind, Check> = {
  'memory-cgroup': (f) =>
    f.memoryCgroup === false
      ? {
          fact: 'the memory cgroup is not enabled (the kernel command line lacks cgroup_enable=memory): the cluster cannot run pods',
          fix: `sudo sed -i '1 s/$/ cgroup_enable=memory cgroup_memory=1/' ${f.bootDir}/cmdline.txt && sudo reboot`,
        }
      : undefined,
  'userland-32bit': (f) =>
    f.machine === 'aarch64' && (f.dpkgArch === 'armhf' || f.dpkgArch === 'armel')
      ? {
          fact: `a 32-bit userland (dpkg architecture ${f.dpkgArch}) on a 64-bit kernel (${f.machine}): the runner and helper images have no 32-bit arm build`,
          fix: 'reinstall the node with Raspberry Pi OS (64-bit) (Raspberry Pi Imager: "Raspberry Pi OS (64-bit)")',
        }
      : undefined,
  'page-size-16k': (f) =>
    f.pageSize === 16384
      ? {
          fact: 'the kernel uses 16K pages (getconf PAGESIZE 16384, the Pi 5 default): images built with jemalloc crash',
          fix: `echo kernel=kernel8.img | sudo tee -a ${f.bootDir}/config.txt && sudo reboot`,
        }
      : undefined,
  'clock-skew': (f, gitlab) => {
    const skew = gitlab && clockSkewSeconds(f, gitlab);
    if (skew === undefined || Math.abs(skew) <= MAX_CLOCK_SKEW_SECONDS) return undefined;
    return {
      fact: `the clock is ${Math.abs(skew)} s ${skew > 0 ? 'ahead of' : 'behind'} GitLab's (more than ${MAX_CLOCK_SKEW_SECONDS} s): TLS and runner tokens fail`,
      fix: 'sudo timedatectl set-ntp true',
    };
  },
  'disk-space': (f) =>
    f.dockerRootFreeKiB !== undefined && f.dockerRootFreeKiB < MIN_DOCKER_FREE_KIB
      ? {
          fact: `only ${gib(f.dockerRootFreeKiB)} free under Docker's data root ${f.dockerRoot} (at least ${gib(MIN_DOCKER_FREE_KIB)} needed for images and builds)`,
          fix: 'sudo docker system prune (or free space on that disk)',
        }
      : undefined,
};

/** Pure: the problems a node's pre-flight facts show. `gitlab`: GitLab's clock; without it, no clock check. */
export function preflightProblems(facts: PreflightFacts, gitlab?: GitlabClock): PreflightProblem[] {
  return (Object.keys(CHECKS) as PreflightKind[]).flatMap((kind) => {
    const found = CHECKS[kind](facts, gitlab);
    return found ? [{ kind, ...found }] : [];
  });
}

/** One line per problem: the node, the fact, the command that fixes it. */
export function describeProblems(node: string, problems: PreflightProblem[]): string {
  return problems.map((p) => `${node}: ${p.fact}; fix: ${p.fix}`).join('; ');
}

/** A node that cannot work: refused before anything on it changes. */
export class PreflightError extends Error {
  constructor(
    readonly node: string,
    readonly problems: PreflightProblem[],
  ) {
    super(`pre-flight refused ${node}, nothing was changed on it: ${describeProblems(node, problems)}`);
    this.name = 'PreflightError';
  }
}
