// Forwarding on cluster nodes as data: small fact tables in, steps out; the gather and rule shell run for real with sh
// against a stand-in iptables that keeps its rules in a file.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { stepScript } from './docker-converge.js';
import { FILE_FN, splitGatherOutput, sha256 } from './facts.js';
import { fileFact, hostFacts } from './facts.fixture.js';
import {
  FORWARDING_SYSCTL_CONTENT,
  FORWARDING_SYSCTL_FILE,
  forwardingGatherScript,
  isClusterNode,
  parseForwardingFacts,
  planForwarding,
  planForwardingCleanup,
  podRules,
  ruleLine,
  type ForwardingFacts,
  type ForwardingStep,
} from './forwarding.js';

const CIDR = '10.1.0.0/16';
const RULES = podRules(CIDR).map(ruleLine);
const SYSCTL_OK = fileFact(FORWARDING_SYSCTL_FILE, FORWARDING_SYSCTL_CONTENT);

function fwd(over: Partial<ForwardingFacts> = {}): ForwardingFacts {
  return {
    ipForward: true,
    sysctlFile: SYSCTL_OK,
    iptables: { forwardPolicy: 'ACCEPT', dockerUser: ['-A DOCKER-USER -j RETURN'] },
    ...over,
  };
}

const kinds = (steps: ForwardingStep[]) =>
  steps.map((s) =>
    s.kind === 'enable-forwarding'
      ? `${s.kind}${s.expectSha256 !== undefined ? ' write' : ''}${s.live ? ' live' : ''}`
      : `${s.kind} +${s.add.length} -${s.remove.length}`,
  );

describe('planForwarding', () => {
  // Each row: the node's facts, the steps planned.
  const table: [string, ForwardingFacts, string[]][] = [
    ['converged: nothing', fwd(), []],
    [
      'fresh node (forwarding off, no file, no Docker yet)',
      fwd({ ipForward: false, sysctlFile: fileFact(FORWARDING_SYSCTL_FILE), iptables: {} }),
      ['enable-forwarding write live'],
    ],
    [
      'on now, file missing: only the file',
      fwd({ sysctlFile: fileFact(FORWARDING_SYSCTL_FILE) }),
      ['enable-forwarding write'],
    ],
    [
      'file there, off now (after a sysctl by hand): only live',
      fwd({ ipForward: false }),
      ['enable-forwarding live'],
    ],
    [
      'file edited by someone: rewritten',
      fwd({ sysctlFile: fileFact(FORWARDING_SYSCTL_FILE, 'net.ipv4.ip_forward = 0\n') }),
      ['enable-forwarding write'],
    ],
    [
      'Docker set DROP: both rules',
      fwd({ iptables: { forwardPolicy: 'DROP', dockerUser: ['-A DOCKER-USER -j RETURN'] } }),
      ['pod-traffic-rules +2 -0'],
    ],
    [
      'DROP and one rule there: the other',
      fwd({ iptables: { forwardPolicy: 'DROP', dockerUser: [RULES[1], '-A DOCKER-USER -j RETURN'] } }),
      ['pod-traffic-rules +1 -0'],
    ],
    [
      'DROP and both rules there: nothing',
      fwd({ iptables: { forwardPolicy: 'DROP', dockerUser: RULES } }),
      [],
    ],
    [
      'DROP with the rules of an older pod range: swapped',
      fwd({
        iptables: {
          forwardPolicy: 'DROP',
          dockerUser: podRules('10.244.0.0/24').map(ruleLine),
        },
      }),
      ['pod-traffic-rules +2 -2'],
    ],
    ['DROP without DOCKER-USER: not Docker, left alone', fwd({ iptables: { forwardPolicy: 'DROP' } }), []],
    ['iptables missing: unknown, no rules', fwd({ iptables: { unknown: 'iptables is not installed' } }), []],
    [
      'DROP and forwarding off: forwarding first, then the rules',
      fwd({ ipForward: false, iptables: { forwardPolicy: 'DROP', dockerUser: [] } }),
      ['enable-forwarding live', 'pod-traffic-rules +2 -0'],
    ],
  ];
  it.each(table)('%s', (_, facts, want) => {
    expect(kinds(planForwarding(facts, CIDR))).toEqual(want);
  });

  it('never removes a rule it did not tag, and says what it does', () => {
    const steps = planForwarding(
      fwd({
        iptables: {
          forwardPolicy: 'DROP',
          dockerUser: [
            '-A DOCKER-USER -i cni0 -j ACCEPT',
            '-A DOCKER-USER -s 10.1.0.0/16 -m comment --comment mine -j ACCEPT',
          ],
        },
      }),
      CIDR,
    );
    expect(steps).toEqual([
      expect.objectContaining({ kind: 'pod-traffic-rules', remove: [], add: podRules(CIDR) }),
    ]);
    expect(steps[0].detail).toMatch(/accept pod traffic \(10\.1\.0\.0\/16, both directions\) in DOCKER-USER/);
  });

  it('guards the write with the sha the plan saw', () => {
    const seen = fileFact(FORWARDING_SYSCTL_FILE, 'old\n');
    const [step] = planForwarding(fwd({ sysctlFile: seen }), CIDR);
    expect(step).toMatchObject({ kind: 'enable-forwarding', expectSha256: sha256('old\n'), live: false });
  });
});

describe('isClusterNode', () => {
  it('cluster placement: every node; host placement: only where microk8s is (and nodes[].microk8s allows it)', () => {
    const f = hostFacts({ microk8s: false });
    const m = hostFacts({ microk8s: true });
    expect(isClusterNode(true, f, { placement: 'cluster', podCidr: CIDR })).toBe(true);
    expect(isClusterNode(true, f, { placement: 'host', podCidr: CIDR })).toBe(false);
    expect(isClusterNode(true, m, { placement: 'host', podCidr: CIDR })).toBe(true);
    expect(isClusterNode(false, m, { placement: 'host', podCidr: CIDR })).toBe(false);
  });
});

describe('planForwardingCleanup', () => {
  it('takes back the file and the tagged rules only', () => {
    const c = planForwardingCleanup(
      fwd({
        iptables: { forwardPolicy: 'DROP', dockerUser: ['-A DOCKER-USER -i cni0 -j ACCEPT', ...RULES] },
      }),
    );
    expect(c.removeFile).toEqual(SYSCTL_OK);
    expect(c.rules).toMatchObject({ kind: 'pod-traffic-rules', add: [], remove: podRules(CIDR) });
  });
  it('nothing of ours: nothing', () => {
    expect(
      planForwardingCleanup(fwd({ sysctlFile: fileFact(FORWARDING_SYSCTL_FILE), iptables: {} })),
    ).toEqual({});
  });
});

// A stand-in iptables: `-S` prints $RF_T/rules (policy first), -C/-I/-D check, insert and delete whole lines.
const IPTABLES = `#!/bin/sh
[ "$1" = -w ] && shift 2
r="$RF_T/rules"; touch "$r"
case "$1" in
  -S) [ -e "$RF_T/broken" ] && { echo "iptables: broken" >&2; exit 4; }
      echo "-P FORWARD $(cat "$RF_T/policy")"; [ -e "$RF_T/chain" ] && echo "-N DOCKER-USER"; cat "$r"; exit 0 ;;
esac
op=$1; chain=$2; shift 2; line="-A $chain $*"
case "$op" in
  -C) grep -qxF -- "$line" "$r" ;;
  -I) { echo "$line"; cat "$r"; } > "$r.new" && mv "$r.new" "$r" ;;
  -D) grep -qxF -- "$line" "$r" || exit 1; grep -vxF -- "$line" "$r" > "$r.new"; mv "$r.new" "$r" ;;
esac`;

describe('the gather section and the rules step, run with sh', () => {
  let dir: string;
  const run = (script: string) => {
    const r = spawnSync('sh', ['-s'], {
      input: script,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, RF_T: dir },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const gather = () =>
    parseForwardingFacts(splitGatherOutput(run(`${FILE_FN}\n${forwardingGatherScript}\necho @@end`).stdout));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-fwd-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'iptables'), IPTABLES);
    chmodSync(join(dir, 'bin', 'iptables'), 0o755);
    writeFileSync(join(dir, 'policy'), 'DROP');
    writeFileSync(join(dir, 'chain'), '');
    writeFileSync(join(dir, 'rules'), '-A DOCKER-USER -j RETURN\n');
  });

  it('reads the policy and DOCKER-USER; the planned step adds the rules once; a second gather plans nothing', () => {
    const before = gather();
    expect(before.iptables).toEqual({ forwardPolicy: 'DROP', dockerUser: ['-A DOCKER-USER -j RETURN'] });
    const [step] = planForwarding({ ...before, ipForward: true, sysctlFile: SYSCTL_OK }, CIDR);
    expect(run(stepScript(step)).code).toBe(0);
    // run twice: -C keeps it from inserting again
    expect(run(stepScript(step)).code).toBe(0);
    expect(readFileSync(join(dir, 'rules'), 'utf8').trim().split('\n')).toEqual([
      RULES[1],
      RULES[0],
      '-A DOCKER-USER -j RETURN',
    ]);
    expect(planForwarding({ ...gather(), ipForward: true, sysctlFile: SYSCTL_OK }, CIDR)).toEqual([]);
    // destroy's step removes exactly the tagged ones
    const { rules } = planForwardingCleanup(gather());
    expect(run(stepScript(rules!)).code).toBe(0);
    expect(readFileSync(join(dir, 'rules'), 'utf8')).toBe('-A DOCKER-USER -j RETURN\n');
  });

  it('no DOCKER-USER chain, a failing iptables, no iptables at all: never a crash, never "no rules"', () => {
    writeFileSync(join(dir, 'rules'), '');
    spawnSync('rm', [join(dir, 'chain')]);
    expect(gather().iptables).toEqual({ forwardPolicy: 'DROP' });
    writeFileSync(join(dir, 'broken'), '');
    expect(gather().iptables).toEqual({ unknown: 'iptables -S failed: iptables: broken' });
    spawnSync('rm', [join(dir, 'bin', 'iptables')]);
    const r = run(`PATH=${join(dir, 'bin')}\n${FILE_FN}\n${forwardingGatherScript}\necho @@end`);
    expect(parseForwardingFacts(splitGatherOutput(r.stdout)).iptables).toEqual({
      unknown: 'iptables is not installed',
    });
  });

  it('reads ip_forward and the sysctl file in the same output', () => {
    const f = gather();
    expect(typeof f.ipForward).toBe('boolean');
    expect(f.sysctlFile.path).toBe(FORWARDING_SYSCTL_FILE);
  });

  it('the forwarding step writes the file atomically (guarded by its sha) and turns forwarding on', () => {
    const [step] = planForwarding(
      fwd({ ipForward: false, sysctlFile: fileFact(FORWARDING_SYSCTL_FILE) }),
      CIDR,
    );
    const script = stepScript(step);
    expect(script).toContain(`f='${FORWARDING_SYSCTL_FILE}'`);
    expect(script).toContain('mv -f "$tmp" "$f"');
    expect(script).toContain('sysctl -q -w net.ipv4.ip_forward=1');
    // the write against a folder of our own, with a sysctl that records its call
    writeFileSync(join(dir, 'bin', 'sysctl'), `#!/bin/sh\necho "$*" > "$RF_T/sysctl"`);
    chmodSync(join(dir, 'bin', 'sysctl'), 0o755);
    const target = join(dir, 'sysctl.d', '60-runner-fleet-forwarding.conf');
    const local = { ...step, path: target } as ForwardingStep;
    expect(run(`set -e\n${stepScript(local)}`).code).toBe(0);
    expect(readFileSync(target, 'utf8')).toBe(FORWARDING_SYSCTL_CONTENT);
    expect(readFileSync(join(dir, 'sysctl'), 'utf8').trim()).toBe('-q -w net.ipv4.ip_forward=1');
    // a file that changed since the plan saw it is not overwritten
    expect(run(`set -e\n${stepScript(local)}`).code).toBe(17);
  });
});
