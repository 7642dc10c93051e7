// The MTU a node's job networks can carry: read in the gather round trip, decided here (pure), used by config.toml.
import type { NodeSpec } from '../inventory/types.js';
import type { GatherOutput } from './gather.js';

/** The gather section (joined to gatherScript's round trip). */
export const MTU_SECTION = 'rf-mtu';

/** Docker's default for its bridges, and so for the dind service's dockerd when it is told nothing. */
export const DOCKER_DEFAULT_MTU = 1500;

/**
 * The pod network's interfaces, where present: Calico VXLAN (microk8s's default) and WireGuard, flannel VXLAN (k3s's
 * default) and WireGuard, the bridge CNI's and flannel's cni0. Traffic from the node's Docker to a pod or a NodePort
 * on another node (the microk8s registry on localhost:32000, say) crosses them. Calico's tunl0 is left out: the
 * ipip module creates it (MTU 1480) on nodes that never use IPIP.
 */
export const POD_NETWORK_INTERFACES = ['vxlan.calico', 'wireguard.cali', 'flannel.1', 'flannel-wg', 'cni0'];

/**
 * Prints `uplink DEV MTU` for the default route's interface (/proc/net/route: no iproute2 needed), then
 * `pod DEV MTU` for each pod network interface and `docker DEV MTU` for docker0, when present, and
 * `docker docker-bridge-network MTU`: what Docker gives containers on its default network (daemon.json `mtu`). The
 * device alone can say 1500 while containers get less: a bridge with no port keeps the MTU it was made with, and
 * dockerd restarted with a new `mtu` leaves an existing docker0 as it is (seen with dockerd 20.10).
 */
export function mtuGatherScript(): string {
  const pod = POD_NETWORK_INTERFACES.join(' ');
  return `echo "@@${MTU_SECTION}"
dev=$(awk '$2 == "00000000" { print $1; exit }' /proc/net/route 2>/dev/null)
[ -n "$dev" ] && [ -r "/sys/class/net/$dev/mtu" ] && echo "uplink $dev $(cat "/sys/class/net/$dev/mtu")"
for d in ${pod}; do [ -r "/sys/class/net/$d/mtu" ] && echo "pod $d $(cat "/sys/class/net/$d/mtu")"; done
[ -r /sys/class/net/docker0/mtu ] && echo "docker docker0 $(cat /sys/class/net/docker0/mtu)"
if command -v docker >/dev/null 2>&1; then
  m=$(timeout 10 docker network inspect bridge --format '{{index .Options "com.docker.network.driver.mtu"}}' 2>/dev/null)
  case $m in ''|*[!0-9]*) ;; *) echo "docker docker-bridge-network $m" ;; esac
fi
:`;
}

export type MtuSource = 'uplink' | 'pod' | 'docker';

export interface InterfaceMtu {
  source: MtuSource;
  device: string;
  mtu: number;
}

const MTU_LINE = /^(uplink|pod|docker) (\S+) (\d+)$/;

/** The section's interfaces; empty when the gather had no section (an older node script) or found none. */
export function parseMtuSection(sections: Map<string, string[]> | undefined): InterfaceMtu[] {
  const out: InterfaceMtu[] = [];
  for (const line of sections?.get(MTU_SECTION) ?? []) {
    const m = MTU_LINE.exec(line.trim());
    if (m) out.push({ source: m[1] as MtuSource, device: m[2], mtu: Number(m[3]) });
  }
  return out;
}

/** What the dind service's dockerd is told, and why (for plan's words). */
export type JobMtu =
  | { kind: 'inventory'; mtu: number }
  | { kind: 'detected'; mtu: number; device: string }
  /** every interface carries Docker's default: nothing to pass */
  | { kind: 'default' };

/**
 * `nodes[].mtu` when given; otherwise the smallest MTU on the ways out of the node's Docker (uplink, pod network,
 * docker0) when it is below Docker's default. A value too low costs a little throughput; one too high makes
 * downloads inside `docker build` hang where a tunnel drops the larger packets without a word.
 */
export function jobMtu(node: Pick<NodeSpec, 'mtu'>, facts: { gathered?: GatherOutput } | undefined): JobMtu {
  if (node.mtu !== undefined) return { kind: 'inventory', mtu: node.mtu };
  const found = parseMtuSection(facts?.gathered?.sections).filter((i) => i.mtu > 0);
  const least = found.reduce<InterfaceMtu | undefined>((a, b) => (a && a.mtu <= b.mtu ? a : b), undefined);
  if (!least || least.mtu >= DOCKER_DEFAULT_MTU) return { kind: 'default' };
  return { kind: 'detected', mtu: least.mtu, device: least.device };
}

/** The number config.toml carries, or undefined for Docker's default. */
export function mtuValue(m: JobMtu): number | undefined {
  switch (m.kind) {
    case 'inventory':
    case 'detected':
      return m.mtu;
    case 'default':
      return undefined;
  }
}

/** One phrase for plan and apply: where the value comes from. */
export function describeJobMtu(m: JobMtu): string {
  switch (m.kind) {
    case 'inventory':
      return `job networks use MTU ${m.mtu} (nodes[].mtu)`;
    case 'detected':
      return `job networks use MTU ${m.mtu} (read from ${m.device})`;
    case 'default':
      return `job networks keep Docker's MTU ${DOCKER_DEFAULT_MTU}`;
  }
}
