// What fills a node's disk, read inside status's one gather: free space under Docker's data root, `docker system df`
// (images, containers, volumes, build cache), and the size of containerd's image store (microk8s, k3s, plain).

export const DISK_SECTION = 'rf-disk';

/** Where each Kubernetes flavour keeps containerd's content store (the image blobs): the first that exists is read. */
export const CONTAINERD_ROOTS = [
  '/var/snap/microk8s/common/var/lib/containerd',
  '/var/lib/rancher/k3s/agent/containerd',
  '/var/lib/containerd',
];

const DF_TYPES = {
  Images: 'images',
  Containers: 'containers',
  'Local Volumes': 'volumes',
  'Build Cache': 'buildCache',
} as const;
type DfKind = (typeof DF_TYPES)[keyof typeof DF_TYPES];

export interface DiskView {
  /** Docker's data root, per `docker info` */
  dockerRoot?: string;
  /** of the filesystem under the data root, in bytes */
  totalBytes?: number;
  freeBytes?: number;
  /** `docker system df`, as Docker words the sizes (e.g. 1.2GB, and reclaimable 800MB (66%)) */
  docker?: Partial<Record<DfKind, { size: string; reclaimable: string }>>;
  /** containerd's content store */
  containerd?: { path: string; bytes: number };
}

/** The gather section (run as root; each reading bounded by a timeout, a missing one is just left out). */
export const diskGatherScript = `echo "@@${DISK_SECTION}"
rf_root=$(timeout 10 docker info --format '{{.DockerRootDir}}' 2>/dev/null)
if [ -n "$rf_root" ]; then echo "root=$rf_root"; df -Pk "$rf_root" 2>/dev/null | awk 'NR == 2 { print "df=" $2 " " $4 }'; fi
timeout 20 docker system df --format '{{.Type}}\t{{.Size}}\t{{.Reclaimable}}' 2>/dev/null | sed 's/^/docker=/'
for c in ${CONTAINERD_ROOTS.join(' ')}; do
  if [ -d "$c/io.containerd.content.v1.content" ]; then echo "containerd=$(timeout 20 du -skx "$c/io.containerd.content.v1.content" 2>/dev/null | cut -f1) $c"; break; fi
done; :`;

/** The section's answer; undefined when the gather had none. */
export function parseDisk(sections: Map<string, string[]> | undefined): DiskView | undefined {
  const lines = sections?.get(DISK_SECTION);
  if (!lines) return undefined;
  const view: DiskView = {};
  for (const line of lines) {
    const eq = line.indexOf('=');
    const [key, value] = [line.slice(0, eq), line.slice(eq + 1)];
    if (key === 'root') view.dockerRoot = value.trim();
    else if (key === 'df') {
      const [total, free] = value.trim().split(/\s+/).map(Number);
      if (Number.isFinite(total) && Number.isFinite(free)) {
        view.totalBytes = total * 1024;
        view.freeBytes = free * 1024;
      }
    } else if (key === 'docker') {
      const [type, size, reclaimable] = value.split('\t');
      const kind = DF_TYPES[type as keyof typeof DF_TYPES];
      if (kind && size) view.docker = { ...view.docker, [kind]: { size, reclaimable: reclaimable ?? '' } };
    } else if (key === 'containerd') {
      const m = /^(\d+) (\S+)$/.exec(value.trim());
      if (m) view.containerd = { path: m[2], bytes: Number(m[1]) * 1024 };
    }
  }
  return view;
}

/** Bytes as people read them on a Pi: 1 decimal, binary units. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** The DISK FREE cell: free of total, with the share. */
export function freeCell(d: DiskView | undefined): string {
  if (d?.freeBytes === undefined || !d.totalBytes) return '?';
  return `${formatBytes(d.freeBytes)} (${Math.round((100 * d.freeBytes) / d.totalBytes)}%)`;
}

/** One line of what takes the space. */
export function describeDisk(d: DiskView): string {
  const docker = d.docker
    ? (['images', 'containers', 'volumes', 'buildCache'] as const)
        .filter((k) => d.docker![k])
        .map(
          (k) =>
            `${k === 'buildCache' ? 'build cache' : k} ${d.docker![k]!.size}${d.docker![k]!.reclaimable ? ` (reclaimable ${d.docker![k]!.reclaimable})` : ''}`,
        )
        .join(', ')
    : 'Docker did not answer';
  const free =
    d.freeBytes !== undefined && d.totalBytes
      ? `${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)} under ${d.dockerRoot}`
      : 'free space unknown';
  const ctr = d.containerd
    ? `; containerd images ${formatBytes(d.containerd.bytes)} (${d.containerd.path})`
    : '';
  return `${free}; Docker: ${docker}${ctr}`;
}
