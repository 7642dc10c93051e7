import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { splitGatherOutput } from './facts.js';
import {
  PREFLIGHT_GATHER,
  PreflightError,
  clockSkewSeconds,
  parsePreflight,
  preflightProblems,
  type GitlabClock,
  type PreflightFacts,
  type PreflightKind,
} from './preflight.js';

const NOW = 1_800_000_000_000;

/** A Pi 4 on 64-bit Bookworm with room to spare, its clock read at NOW. */
const healthy = (over: Partial<PreflightFacts> = {}): PreflightFacts => ({
  epochSeconds: NOW / 1000,
  gatheredAt: NOW,
  machine: 'aarch64',
  dpkgArch: 'arm64',
  pageSize: 4096,
  memoryCgroup: true,
  bootDir: '/boot/firmware',
  dockerRoot: '/var/lib/docker',
  dockerRootFreeKiB: 20 * 1024 * 1024,
  ...over,
});

const gitlabAt = (offsetSeconds: number, receivedAt = NOW): GitlabClock => ({
  date: receivedAt + offsetSeconds * 1000,
  receivedAt,
});

interface Case {
  name: string;
  facts: Partial<PreflightFacts>;
  gitlab?: GitlabClock;
  kinds: PreflightKind[];
  /** what the message must name: the fact and the command */
  says?: string[];
}

const CASES: Case[] = [
  { name: 'a healthy Pi', facts: {}, gitlab: gitlabAt(0), kinds: [] },
  {
    name: 'nothing known is never a problem',
    facts: {
      bootDir: '/boot/firmware',
      dockerRoot: '/var/lib/docker',
      epochSeconds: undefined,
      machine: undefined,
      dpkgArch: undefined,
      pageSize: undefined,
      memoryCgroup: undefined,
      dockerRootFreeKiB: undefined,
    },
    gitlab: gitlabAt(500),
    kinds: [],
  },
  {
    name: 'memory cgroup off, Bookworm',
    facts: { memoryCgroup: false },
    kinds: ['memory-cgroup'],
    says: [
      'memory cgroup',
      `sudo sed -i '1 s/$/ cgroup_enable=memory cgroup_memory=1/' /boot/firmware/cmdline.txt && sudo reboot`,
    ],
  },
  {
    name: 'memory cgroup off, before Bookworm',
    facts: { memoryCgroup: false, bootDir: '/boot' },
    kinds: ['memory-cgroup'],
    says: ['/boot/cmdline.txt'],
  },
  {
    name: '32-bit userland on a 64-bit kernel',
    facts: { dpkgArch: 'armhf' },
    kinds: ['userland-32bit'],
    says: ['dpkg architecture armhf', 'aarch64', 'Raspberry Pi OS (64-bit)'],
  },
  {
    name: '32-bit userland on a 32-bit kernel is not this problem',
    facts: { dpkgArch: 'armhf', machine: 'armv7l' },
    kinds: [],
  },
  {
    name: 'a 16K-page kernel',
    facts: { pageSize: 16384 },
    kinds: ['page-size-16k'],
    says: ['16K pages', 'echo kernel=kernel8.img | sudo tee -a /boot/firmware/config.txt && sudo reboot'],
  },
  { name: 'clock 60 s off is still fine', facts: {}, gitlab: gitlabAt(-60), kinds: [] },
  {
    name: 'clock behind GitLab',
    facts: {},
    gitlab: gitlabAt(90),
    kinds: ['clock-skew'],
    says: ['90 s behind', 'sudo timedatectl set-ntp true'],
  },
  {
    name: 'clock ahead of GitLab',
    facts: { epochSeconds: NOW / 1000 + 3600 },
    gitlab: gitlabAt(0),
    kinds: ['clock-skew'],
    says: ['3600 s ahead'],
  },
  {
    name: "this machine's own clock cancels out",
    facts: { epochSeconds: NOW / 1000 + 500, gatheredAt: NOW + 500_000 },
    gitlab: gitlabAt(0, NOW + 502_000),
    kinds: [],
  },
  { name: 'no GitLab clock: not checked', facts: { epochSeconds: 0 }, kinds: [] },
  {
    name: 'little space under the data root',
    facts: { dockerRootFreeKiB: 1024 * 1024, dockerRoot: '/srv/docker' },
    kinds: ['disk-space'],
    says: ['1.0 GiB free', '/srv/docker', 'docker system prune'],
  },
  { name: 'exactly 2 GiB is enough', facts: { dockerRootFreeKiB: 2 * 1024 * 1024 }, kinds: [] },
  {
    name: 'several at once, in a fixed order',
    facts: { memoryCgroup: false, pageSize: 16384, dockerRootFreeKiB: 0 },
    gitlab: gitlabAt(-120),
    kinds: ['memory-cgroup', 'page-size-16k', 'clock-skew', 'disk-space'],
  },
];

describe('preflightProblems', () => {
  it.each(CASES)('$name', ({ facts, gitlab, kinds, says }) => {
    const problems = preflightProblems(healthy(facts), gitlab);
    expect(problems.map((p) => p.kind)).toEqual(kinds);
    const message = new PreflightError('pi1', problems).message;
    for (const text of says ?? []) expect(message).toContain(text);
    if (kinds.length > 0)
      expect(message).toMatch(/^pre-flight refused pi1, nothing was changed on it: pi1: /);
  });

  it('measures the skew against each clock as read', () => {
    expect(clockSkewSeconds(healthy({ epochSeconds: NOW / 1000 - 61 }), gitlabAt(0))).toBe(-61);
    expect(clockSkewSeconds(healthy({ gatheredAt: undefined }), gitlabAt(0))).toBeUndefined();
  });
});

const section = (...lines: string[]) => splitGatherOutput(['@@preflight', ...lines, '@@end'].join('\n'));

describe('parsePreflight', () => {
  it('reads every line of the section', () => {
    const facts = parsePreflight(
      section(
        'epoch 1800000000',
        'machine aarch64',
        'dpkg-arch armhf',
        'page-size 16384',
        'cgroups-memory 0',
        'boot-dir /boot',
        'docker-root /var/lib/docker',
        'docker-root-free-kib 1234',
      ),
      NOW,
    );
    expect(facts).toEqual({
      epochSeconds: 1_800_000_000,
      gatheredAt: NOW,
      machine: 'aarch64',
      dpkgArch: 'armhf',
      pageSize: 16384,
      memoryCgroup: false,
      bootDir: '/boot',
      dockerRoot: '/var/lib/docker',
      dockerRootFreeKiB: 1234,
    });
  });

  it.each([
    [['cgroups-memory 1'], true],
    [['cgroups-memory ', 'cgroup2-controllers cpuset cpu io pids'], false],
    [['cgroups-memory ', 'cgroup2-controllers cpuset cpu io memory pids'], true],
    [['cgroups-memory '], undefined],
  ])('memory cgroup from %j: %s', (lines, expected) => {
    expect(parsePreflight(section(...lines)).memoryCgroup).toBe(expected);
  });

  it('leaves out what the node did not say, with Bookworm defaults for the paths', () => {
    expect(parsePreflight(section('dpkg-arch ', 'page-size ', 'docker-root-free-kib '))).toEqual({
      bootDir: '/boot/firmware',
      dockerRoot: '/var/lib/docker',
      epochSeconds: undefined,
      machine: undefined,
      dpkgArch: undefined,
      pageSize: undefined,
      memoryCgroup: undefined,
      dockerRootFreeKiB: undefined,
    });
  });

  it('the gather script runs here and parses (read-only, no docker needed)', () => {
    const out = execFileSync('sh', ['-c', `${PREFLIGHT_GATHER}\necho "@@end"`], { encoding: 'utf8' });
    const facts = parsePreflight(splitGatherOutput(out), Date.now());
    expect(facts.epochSeconds).toBeGreaterThan(1_700_000_000);
    expect(facts.pageSize).toBeGreaterThan(0);
    expect(facts.machine).toBeTruthy();
    expect(facts.dockerRootFreeKiB).toBeGreaterThan(0);
    expect(Math.abs(clockSkewSeconds(facts, { date: Date.now(), receivedAt: Date.now() })!)).toBeLessThan(3);
  });
});
