// Docker never cuts pod traffic: on a cluster node, IPv4 forwarding stays on (durably) and, where Docker already set
// the FORWARD policy to DROP, DOCKER-USER accepts the pods' traffic. Gather snippet, parse, pure plan, shell.
//
// Why (moby libnetwork setupIPForwarding in 20.10, Debian's docker.io; the 28+ bridge driver keeps the condition and
// adds --ip-forward-no-drop, which older dockerd refuses): dockerd turns net.ipv4.ip_forward on when it finds it
// off, and only then sets the iptables FORWARD policy to DROP. The
// bridge CNI adds no FORWARD rule, so every pod packet to the LAN is then dropped. With forwarding already on when
// dockerd first starts (and at every boot, from sysctl.d, which systemd-sysctl applies before docker.service), the
// policy stays ACCEPT. Where Docker already set DROP, rules in DOCKER-USER (dockerd creates that chain, jumps to it
// first from FORWARD and never flushes it, so the rules survive dockerd restarts) let the pods' traffic through.
import type { Placement } from '../inventory/types.js';
import { fileFact, shQuote, type FileFact, type GatherOutput } from './gather.js';

/** runner-fleet's own sysctl.d file. Before 99-sysctl.conf: a value the user set in /etc/sysctl.conf still wins at boot. */
export const FORWARDING_SYSCTL_FILE = '/etc/sysctl.d/60-runner-fleet-forwarding.conf';
export const FORWARDING_SYSCTL_CONTENT =
  '# Managed by runner-fleet: pods on this Kubernetes node reach the LAN, and dockerd leaves the\n' +
  '# iptables FORWARD policy alone when it finds forwarding already on. destroy removes this file.\n' +
  'net.ipv4.ip_forward = 1\n';
/** The comment that tags runner-fleet's DOCKER-USER rules: destroy removes exactly the rules carrying it. */
export const RULE_TAG = 'runner-fleet';
export const DOCKER_USER = 'DOCKER-USER';

/** What the host phase knows of the cluster: where the runners run, and the pods' address range. */
export interface PodNetwork {
  placement: Placement;
  /** kubernetes.podCidr, an IPv4 network */
  podCidr: string;
}

/**
 * The filter table as far as it matters here: FORWARD's policy and the DOCKER-USER chain (undefined: no such chain),
 * or why iptables could not be read (not installed, or it failed): then nothing is planned for the rules.
 */
export type IptablesFact = { forwardPolicy?: string; dockerUser?: string[] } | { unknown: string };

export interface ForwardingFacts {
  /** /proc/sys/net/ipv4/ip_forward; undefined when unreadable */
  ipForward?: boolean;
  sysctlFile: FileFact;
  iptables: IptablesFact;
}

// One `iptables -S` of the whole filter table, filtered on the node: `-S CHAIN` of a missing chain fails with a
// message that differs between iptables-legacy ("No chain/target/match") and iptables-nft 1.8.9 ("incompatible").
const IPTABLES_SECTION = `echo "@@iptables"
if ! command -v iptables >/dev/null 2>&1; then echo '!unknown iptables is not installed'
elif rf_ipt=$(iptables -w 5 -S 2>&1); then echo '!ok'; printf '%s\\n' "$rf_ipt" | grep -E '^-P FORWARD |^-N ${DOCKER_USER}$|^-A ${DOCKER_USER} ' | head -n 500
else echo "!unknown iptables -S failed: $(printf '%s' "$rf_ipt" | head -n 1)"; fi`;

/** Joins the one gather round trip (gatherScript): forwarding, runner-fleet's sysctl file, FORWARD and DOCKER-USER. */
export const forwardingGatherScript = `echo "@@ip-forward"; cat /proc/sys/net/ipv4/ip_forward 2>/dev/null; :
emit_file ${FORWARDING_SYSCTL_FILE}
${IPTABLES_SECTION}`;

function parseIptables(lines: string[] | undefined): IptablesFact {
  const kept = (lines ?? []).map((l) => l.trim()).filter(Boolean);
  if (kept[0]?.startsWith('!unknown ')) return { unknown: kept[0].slice(9) };
  // Cut off, or an older gather: unknown, never "no rules".
  if (kept[0] !== '!ok') return { unknown: 'not gathered' };
  const policy = kept.find((l) => l.startsWith('-P FORWARD '))?.split(/\s+/)[2];
  const chain = kept.includes(`-N ${DOCKER_USER}`);
  return {
    ...(policy ? { forwardPolicy: policy } : {}),
    ...(chain ? { dockerUser: kept.filter((l) => l.startsWith(`-A ${DOCKER_USER} `)) } : {}),
  };
}

export function parseForwardingFacts(g: GatherOutput): ForwardingFacts {
  const value = (g.sections.get('ip-forward') ?? []).join('').trim();
  return {
    ...(value === '1' || value === '0' ? { ipForward: value === '1' } : {}),
    sysctlFile: fileFact(FORWARDING_SYSCTL_FILE, g.files.get(FORWARDING_SYSCTL_FILE)),
    iptables: parseIptables(g.sections.get('iptables')),
  };
}

/**
 * A node whose pods runner-fleet must keep forwarding: every node with `placement: cluster` (its runner is a pod), and
 * a node where the gather found microk8s (unless `nodes[].microk8s: false`), whatever the placement: installing Docker
 * there cuts the traffic of every pod on it.
 */
export function isClusterNode(
  nodeMicrok8s: boolean,
  facts: { microk8s: boolean },
  pods: PodNetwork,
): boolean {
  return pods.placement === 'cluster' || (nodeMicrok8s && facts.microk8s);
}

/**
 * The pods' traffic is matched by the pod CIDR, not by an interface: the bridge CNI and flannel put pods behind
 * `cni0`, but Calico (microk8s's default) gives each pod its own `cali*` interface, and pod-to-pod traffic between
 * nodes leaves by the overlay's device. The CIDR is the same for every CNI; it is also the pair flannel itself adds
 * to FORWARD. Both directions: pods to the LAN, and the answers (and Service traffic) back to them.
 */
export function podRules(podCidr: string): string[][] {
  const tag = ['-m', 'comment', '--comment', RULE_TAG, '-j', 'ACCEPT'];
  return [
    ['-s', podCidr, ...tag],
    ['-d', podCidr, ...tag],
  ];
}

/** A rule as `iptables -S DOCKER-USER` prints it. */
export function ruleLine(rule: string[]): string {
  return `-A ${DOCKER_USER} ${rule.join(' ')}`;
}

/** The DOCKER-USER rules runner-fleet added (tagged), as argument lists (without `-A DOCKER-USER`). */
export function taggedRules(ipt: IptablesFact): string[][] {
  if ('unknown' in ipt) return [];
  return (ipt.dockerUser ?? [])
    .filter((r) => r.includes(`--comment ${RULE_TAG} `))
    .map((r) => r.split(/\s+/).slice(2));
}

export type ForwardingStep =
  /** persists net.ipv4.ip_forward = 1 (atomic, when the file differs) and turns it on now (when it is off) */
  | {
      kind: 'enable-forwarding';
      path: string;
      content: string;
      /** the file as the plan saw it; undefined: the file is right, no write */
      expectSha256?: string;
      live: boolean;
      detail: string;
    }
  /** inserts (after `iptables -C`) and deletes tagged rules in DOCKER-USER */
  | { kind: 'pod-traffic-rules'; add: string[][]; remove: string[][]; detail: string };

/**
 * The steps for one node, in order; the caller puts them before anything that installs, starts or restarts dockerd,
 * so that dockerd finds forwarding on. A DROP policy with no DOCKER-USER chain is not Docker's doing (dockerd makes
 * the chain before it could set DROP, and never removes it): someone else's firewall, left alone.
 */
export function planForwarding(fwd: ForwardingFacts | undefined, podCidr: string): ForwardingStep[] {
  if (!fwd) return [];
  const steps: ForwardingStep[] = [];
  const write = fwd.sysctlFile.content !== FORWARDING_SYSCTL_CONTENT;
  // Unreadable (undefined): not known to be off; the file still makes it so at the next boot.
  const live = fwd.ipForward === false;
  if (write || live) {
    const what = [
      ...(write ? [`persist net.ipv4.ip_forward = 1 in ${FORWARDING_SYSCTL_FILE}`] : []),
      ...(live ? ['turn forwarding on now (sysctl -w net.ipv4.ip_forward=1)'] : []),
    ];
    steps.push({
      kind: 'enable-forwarding',
      path: FORWARDING_SYSCTL_FILE,
      content: FORWARDING_SYSCTL_CONTENT,
      ...(write ? { expectSha256: fwd.sysctlFile.sha256 } : {}),
      live,
      detail: `${what.join(', and ')}: pods keep reaching the LAN, and dockerd, finding forwarding on when it starts (also after a reboot), leaves the FORWARD policy alone`,
    });
  }
  const ipt = fwd.iptables;
  if ('unknown' in ipt || ipt.forwardPolicy !== 'DROP' || ipt.dockerUser === undefined) return steps;
  const want = podRules(podCidr);
  const have = taggedRules(ipt);
  const key = (r: string[]) => r.join(' ');
  const add = want.filter((w) => !have.some((h) => key(h) === key(w)));
  const remove = have.filter((h) => !want.some((w) => key(w) === key(h)));
  if (add.length === 0 && remove.length === 0) return steps;
  const what = [
    ...(add.length > 0 ? [`accept pod traffic (${podCidr}, both directions) in ${DOCKER_USER}`] : []),
    ...(remove.length > 0
      ? [`remove runner-fleet's rules for another pod range (${remove.map((r) => r.join(' ')).join('; ')})`]
      : []),
  ];
  steps.push({
    kind: 'pod-traffic-rules',
    add,
    remove,
    detail: `${what.join('; ')}: Docker set the FORWARD policy to DROP (rules tagged "${RULE_TAG}")`,
  });
  return steps;
}

/**
 * What destroy takes back: runner-fleet's sysctl file and its tagged DOCKER-USER rules, nothing else. Forwarding is
 * not turned off live: pods (and Docker) on the node need it now; the node boots without it once the file is gone,
 * unless something else turns it on.
 */
export function planForwardingCleanup(fwd: ForwardingFacts | undefined): {
  removeFile?: FileFact;
  rules?: ForwardingStep;
} {
  if (!fwd) return {};
  const remove = taggedRules(fwd.iptables);
  return {
    ...(fwd.sysctlFile.sha256 !== 'absent' ? { removeFile: fwd.sysctlFile } : {}),
    ...(remove.length > 0
      ? {
          rules: {
            kind: 'pod-traffic-rules' as const,
            add: [],
            remove,
            detail: `remove runner-fleet's ${remove.length} ${DOCKER_USER} rule(s) (tagged "${RULE_TAG}"); no other rule changes`,
          },
        }
      : {}),
  };
}

/** Shell for the rules step: insert a rule only if `iptables -C` does not find it; delete one only if it does. */
export function podRulesScript(step: Extract<ForwardingStep, { kind: 'pod-traffic-rules' }>): string {
  const args = (r: string[]) => r.map(shQuote).join(' ');
  return [
    ...step.remove.map(
      (r) =>
        `if iptables -w 5 -C ${DOCKER_USER} ${args(r)} 2>/dev/null; then iptables -w 5 -D ${DOCKER_USER} ${args(r)}; fi`,
    ),
    ...step.add.map(
      (r) =>
        `iptables -w 5 -C ${DOCKER_USER} ${args(r)} 2>/dev/null || iptables -w 5 -I ${DOCKER_USER} ${args(r)}`,
    ),
  ].join('\n');
}

/** Shell that turns forwarding on now; sysctl where it is installed, else /proc directly. */
export const FORWARDING_ON_NOW = `if command -v sysctl >/dev/null 2>&1; then sysctl -q -w net.ipv4.ip_forward=1; else echo 1 > /proc/sys/net/ipv4/ip_forward; fi`;
