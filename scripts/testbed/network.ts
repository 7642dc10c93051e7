// The fleet's LAN: a host bridge and one network namespace per node (and the registry), each on a veth pair.
import { readdirSync, statSync } from 'node:fs';
import { net } from './paths.js';
import { sh } from './procs.js';

/** A namespace on the bridge: its name, the host end of its veth pair, its address (eth0 inside). */
export interface LanMember {
  netns: string;
  link: string;
  addr: string;
  /** sysctls set inside the namespace right after it is made, whatever this machine has (see nodeSysctls) */
  sysctls?: Record<string, string>;
}

/** `ip -batch` lines (run on the host) that make the namespaces and their veth pairs and put them on the bridge. */
export function hostBatch(members: LanMember[]): string[] {
  return members.flatMap((m) => [
    `netns add ${m.netns}`,
    `link add ${m.link} type veth peer name eth0 netns ${m.netns}`,
    `link set ${m.link} master ${net.bridge()} up`,
  ]);
}

/** `ip -n <netns> -batch` lines: the member's address and its default route via the host, like a Pi behind a router. */
export function memberBatch(m: LanMember): string[] {
  return [
    'link set lo up',
    `addr add ${m.addr}/24 dev eth0`,
    'link set eth0 up',
    `route add default via ${net.hostAddr()}`,
  ];
}

async function batch(lines: string[], netns?: string): Promise<void> {
  if (lines.length === 0) return;
  await sh({ stdio: 'pipe', input: `${lines.join('\n')}\n` })`ip ${netns ? ['-n', netns] : []} -batch -`;
}

/**
 * Nodes route everything via this machine (a default route, like a Pi behind its router): a pod pulling from
 * docker.io sends DNS and HTTPS there. With ip_forward off (the default here) the kernel drops it; this rule drops
 * it also where something turned forwarding on, so that nothing of the fleet leaves 198.18.s.0/24.
 */
function forwardGuard(): string[] {
  return [
    'FORWARD',
    '-i',
    net.bridge(),
    '!',
    '-o',
    net.bridge(),
    '-m',
    'comment',
    '--comment',
    `runner-fleet-testbed ${net.bridge()}`,
    '-j',
    'DROP',
  ];
}

/** The bridge with the host's address on it, and the forward guard; made again from nothing. */
export async function createBridge(): Promise<void> {
  await removeBridge();
  await batch([
    `link add ${net.bridge()} type bridge`,
    `addr add ${net.hostAddr()}/24 dev ${net.bridge()}`,
    `link set ${net.bridge()} up`,
  ]);
  await sh`iptables -w -I ${forwardGuard()}`;
}

async function removeBridge(): Promise<void> {
  // -C/-D until it is gone: an earlier crashed up may have left more than one.
  const tolerant = sh({ nothrow: true });
  while ((await tolerant`iptables -w -C ${forwardGuard()}`).ok)
    await tolerant`iptables -w -D ${forwardGuard()}`;
  await tolerant`ip link del ${net.bridge()}`;
}

/**
 * Namespaces for the members, joined to the bridge. One `ip` process for the host side and one per member: at 200
 * nodes this stays well under a second.
 */
export async function joinLan(members: LanMember[]): Promise<void> {
  await batch(hostBatch(members));
  for (const m of members) {
    await batch(memberBatch(m), m.netns);
    if (m.sysctls) await setNetnsSysctls(m.netns, m.sysctls);
  }
}

/** `sysctl -w` arguments in the record's order: later ones win (ip_forward and conf.all.forwarding are one knob). */
export function sysctlArgs(values: Record<string, string>): string[] {
  return Object.entries(values).map(([k, v]) => `${k}=${v}`);
}

/**
 * Writes net.* sysctls inside a named network namespace (/proc/sys/net is the writer's namespace's). `-e`: a key
 * this kernel lacks (net.bridge.* without br_netfilter) is skipped, as on a Pi that never loaded the module.
 */
export async function setNetnsSysctls(netns: string, values: Record<string, string>): Promise<void> {
  const args = sysctlArgs(values);
  if (args.length === 0) return;
  await sh`nsenter --net=/run/netns/${netns} sysctl -q -e -w ${args}`;
}

/** Removes one namespace and the host end of its pair (normally gone with the namespace). */
export async function leaveLan(m: Pick<LanMember, 'netns' | 'link'>): Promise<void> {
  await sh({ nothrow: true })`ip netns del ${m.netns}`;
  await sh({ nothrow: true })`ip link del ${m.link}`;
}

/** Node namespaces of this slot (rf<s>-pi<i>) that exist, found by name: also those a lost testbed.json did not list. */
export function slotNodeNetns(): string[] {
  const re = new RegExp(`^${net.nodeNetns(0).replace(/0$/, '')}\\d+$`);
  try {
    return readdirSync('/run/netns').filter((n) => re.test(n));
  } catch {
    return [];
  }
}

/** Every node namespace of this slot, their veths, and the bridge. */
export async function removeLan(): Promise<void> {
  const lines = slotNodeNetns().map((n) => `netns del ${n}`);
  if (lines.length > 0)
    await sh({ nothrow: true, stdio: 'pipe', input: `${lines.join('\n')}\n` })`ip -force -batch -`;
  // The host ends die with their namespaces; one whose namespace is still held open somewhere would stay.
  const links = (await sh({ nothrow: true })`ip -o link show`).stdout
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
    .filter(
      (l): l is string => l !== undefined && new RegExp(`^${net.nodeLink(0).replace(/0$/, '')}\\d+$`).test(l),
    );
  for (const l of links) await sh({ nothrow: true })`ip link del ${l}`;
  await removeBridge();
}

/** `net:[inode]` of a named namespace, as /proc/<pid>/ns/net reads for its processes. */
export function netnsId(name: string): string | undefined {
  try {
    return `net:[${statSync(`/run/netns/${name}`).ino}]`;
  } catch {
    return undefined;
  }
}
