// Image pre-pull: what a node's first job needs (helper, job, dind images; the runner image), its gather and its pull.
import type { NodeConnection } from '../ssh.js';
import { MICROK8S_CERTS_D, shQuote, type GatherOutput } from './facts.js';

/**
 * The images the inventory's jobs and runner pods need, before any node is known. The helper image depends on the
 * node's architecture: one ref per architecture name the gather reports (facts.arch), the node's chosen by the plan.
 */
export interface PrepullWant {
  /** through the node's Docker: the job image, the docker CLI image, the dind service image */
  docker: string[];
  /** the docker executor's helper image, per node architecture (Debian names: arm64, armhf, amd64) */
  helperByArch: Record<string, string>;
  /** through microk8s's containerd, on microk8s nodes: the runner pod's image */
  containerd: string[];
  /** set when nothing is pulled at all, and why (runners.pullPolicy: [never]) */
  off?: string;
  /** what is left out and why (a helper whose version is not known before the runner is installed) */
  notes: string[];
}

/** The images a node has, as its one gather reads them (absent: not gathered, so nothing is known present). */
export interface ImageFacts {
  docker: string[];
  containerd: string[];
}

/** The one pull step per node: every image it lacks, Docker's and containerd's pulled side by side. */
export interface PrepullStep {
  kind: 'pull-images';
  docker: string[];
  containerd: string[];
  detail: string;
}

/**
 * `docker.io/library/alpine:3.20` for `alpine:3.20`: how containerd names an image (Docker's reference
 * normalisation, distribution/reference ParseNormalizedNamed), and what `ctr images pull` needs.
 */
export function normaliseRef(ref: string): string {
  const slash = ref.indexOf('/');
  const first = slash < 0 ? '' : ref.slice(0, slash);
  const hasDomain = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  let name = hasDomain ? ref : `docker.io/${ref}`;
  if (!hasDomain && slash < 0) name = `docker.io/library/${ref}`;
  const lastPart = name.slice(name.lastIndexOf('/') + 1);
  if (!lastPart.includes(':') && !name.includes('@')) name = `${name}:latest`;
  return name;
}

const unique = (refs: string[]) => [...new Set(refs)];

/** Every ref the gather checks: the static ones and the helper of each architecture (the node's is not known yet). */
function dockerCandidates(want: PrepullWant): string[] {
  return unique([...Object.values(want.helperByArch), ...want.docker]);
}

/**
 * Gather lines (they join the host gather's round trip): one `docker image inspect` of every candidate, whose
 * "No such image" lines name the absent ones, and containerd's image list filtered to the runner image.
 */
export function prepullGatherScript(want: PrepullWant | undefined): string {
  if (!want || want.off) return '';
  const docker = dockerCandidates(want);
  const containerd = want.containerd.map(normaliseRef);
  const lines = ['echo "@@images"'];
  if (docker.length > 0)
    lines.push(
      `if command -v docker >/dev/null 2>&1; then echo "count ${docker.length}"; timeout 15 docker image inspect --format 'id {{.Id}}' ${docker.map(shQuote).join(' ')} 2>&1 | head -c 16384; fi`,
    );
  if (containerd.length > 0)
    lines.push(
      `echo "@@containerd-images"; if command -v microk8s >/dev/null 2>&1; then timeout 15 microk8s ctr images ls -q 2>/dev/null | grep -Fx ${containerd.map((r) => `-e ${shQuote(r)}`).join(' ')}; fi; :`,
    );
  return lines.join('\n');
}

/**
 * Which candidates are present. An image counts as present only when docker answered for every candidate (one `id`
 * or one "No such image" line each); any other output (dockerd down, not installed) leaves all of them to pull.
 */
export function parseImageFacts(gathered: GatherOutput | undefined, want: PrepullWant): ImageFacts {
  const docker = dockerCandidates(want);
  const lines = gathered?.sections.get('images') ?? [];
  const ids = lines.filter((l) => l.startsWith('id sha256:')).length;
  const missing = lines
    .map((l) => l.match(/No such image: (\S+)/)?.[1])
    .filter((r): r is string => r !== undefined)
    .map(normaliseRef);
  const answered = lines.includes(`count ${docker.length}`) && ids + missing.length === docker.length;
  const containerd = (gathered?.sections.get('containerd-images') ?? []).map((l) => l.trim()).filter(Boolean);
  return {
    docker: answered ? docker.filter((r) => !missing.includes(normaliseRef(r))) : [],
    containerd,
  };
}

/** `docker pull` and `ctr images pull` (through microk8s's certs.d, so its hosts.toml applies), side by side. */
export function prepullScript(step: PrepullStep): string {
  const pull = (what: string, command: string, refs: string[]) =>
    refs.length === 0
      ? ':'
      : `( for ref in ${refs.map(shQuote).join(' ')}; do
    e=$(timeout 1800 ${command} "$ref" 2>&1 >/dev/null) || printf '@@pull-failed ${what} %s %s\\n' "$ref" "$(printf '%s' "$e" | tail -c 300 | tr '\\n' ' ')"
  done )`;
  return `out=$( {
  ${pull('docker', 'docker pull -q', step.docker)} &
  ${pull('containerd', `microk8s ctr images pull --hosts-dir ${MICROK8S_CERTS_D}`, step.containerd.map(normaliseRef))} &
  wait
} 2>&1 )
printf '%s\\n' "$out"
case "$out" in *@@pull-failed*) exit 1 ;; esac`;
}

export class PrepullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrepullError';
  }
}

/** Runs the pull step on the node; a failed pull is this node's error (which image, and docker's or ctr's words). */
export async function runPrepull(conn: NodeConnection, step: PrepullStep): Promise<void> {
  const r = await conn.exec(prepullScript(step), { sudo: true, step: 'pull images' });
  if (r.code === 0) return;
  const failed = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('@@pull-failed '))
    .map((l) => {
      const [, via, ref, ...why] = l.split(' ');
      return `${via} pull ${ref} failed: ${why.join(' ').trim()}`;
    });
  throw new PrepullError(
    `pre-pulling the first job's images: ${failed.length > 0 ? failed.join('; ') : `exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-300)}`}`,
  );
}
