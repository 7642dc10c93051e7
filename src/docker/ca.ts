// Pure: where each consumer on a node looks for the private CA (gitlab.caFile), and the steps that put it there.
import type { DockerFlavour, Executor, NodeSpec, Placement, PrivateCa } from '../inventory/types.js';
import { MICROK8S_CERTS_D, fileFact, shQuote, type FileFact, type HostFacts } from './facts.js';
import { DOCKER_FLAVOURS } from './flavours.js';

/**
 * The file name runner-fleet gives the CA in every certs.d folder. dockerd takes every `*.crt` in
 * `certs.d/<host:port>/` as a root (moby registry/registry.go, loadTLSConfig, read at each pull and push: no reload),
 * so a `ca.crt` the user put there stays theirs, and destroy removes only this file.
 */
export const CA_FILE_NAME = 'runner-fleet-ca.crt';

/** Where a host runner (`placement: host`) finds the CA: config.toml's `tls-ca-file` names it. */
export const HOST_RUNNER_CA = '/etc/gitlab-runner/runner-fleet-ca.crt';

/**
 * The first line of every CA file runner-fleet writes: how destroy and a rerun recognise their own file. Go's
 * AppendCertsFromPEM (dockerd, containerd, gitlab-runner) skips text outside the PEM blocks.
 */
export const CA_HEADER = '# Managed by runner-fleet: the CA named by gitlab.caFile.\n';

export const caFileContent = (ca: PrivateCa): string => `${CA_HEADER}${ca.pem}`;

export function dockerCaPath(flavour: DockerFlavour, registry: string): string {
  return `${DOCKER_FLAVOURS[flavour].certsDir}/${registry}/${CA_FILE_NAME}`;
}

export function containerdCaPath(registry: string): string {
  return `${MICROK8S_CERTS_D}/${registry}/${CA_FILE_NAME}`;
}

/** Every path a CA file of runner-fleet's can be at for these registries (both flavours: the gather precedes the choice). */
export function caCandidatePaths(registries: string[]): string[] {
  return [
    ...registries.flatMap((r) => [dockerCaPath('apt', r), dockerCaPath('snap', r), containerdCaPath(r)]),
    HOST_RUNNER_CA,
  ];
}

/** Gather lines (joins gatherScript's round trip). */
export function caGatherLines(registries: string[]): string {
  return caCandidatePaths(registries)
    .map((p) => `emit_file ${shQuote(p)}`)
    .join('\n');
}

export function caFact(facts: HostFacts, path: string): FileFact {
  return fileFact(path, facts.gathered?.files.get(path));
}

export const isOurCaFile = (fact: FileFact): boolean => fact.content?.startsWith(CA_HEADER) === true;

export interface CaWrite {
  kind: 'write-file';
  name: 'ca.crt';
  path: string;
  content: string;
  expectSha256: string;
  mode: string;
  detail: string;
}

export interface CaRemoval {
  kind: 'remove-file';
  path: string;
  expectSha256: string;
  detail: string;
}

/** Who reads a CA file, for the plan's wording. */
interface CaTarget {
  path: string;
  who: string;
}

function caTargets(
  flavour: DockerFlavour,
  registries: string[],
  microk8s: boolean,
  placement: Placement | undefined,
): CaTarget[] {
  return [
    ...registries.map((r) => ({
      path: dockerCaPath(flavour, r),
      who: `${flavour === 'snap' ? 'snap ' : ''}dockerd trusts ${r}`,
    })),
    ...(microk8s
      ? registries.map((r) => ({ path: containerdCaPath(r), who: `microk8s containerd trusts ${r}` }))
      : []),
    ...(placement === 'host' ? [{ path: HOST_RUNNER_CA, who: "the host runner's tls-ca-file" }] : []),
  ];
}

/**
 * The CA files a node should have: each consumer's file holds the CA (written when it differs, the previous one kept
 * as a backup); files runner-fleet wrote earlier (recognised by CA_HEADER) that no consumer needs any more go.
 */
export function planCaFiles(input: {
  ca: PrivateCa | undefined;
  flavour: DockerFlavour;
  registries: string[];
  microk8s: boolean;
  placement: Placement | undefined;
  facts: HostFacts;
}): (CaWrite | CaRemoval)[] {
  const { ca, facts } = input;
  const wanted = ca ? caTargets(input.flavour, input.registries, input.microk8s, input.placement) : [];
  const steps: (CaWrite | CaRemoval)[] = [];
  for (const t of wanted) {
    const fact = caFact(facts, t.path);
    const content = caFileContent(ca!);
    if (fact.content === content) continue;
    steps.push({
      kind: 'write-file',
      name: 'ca.crt',
      path: t.path,
      content,
      expectSha256: fact.sha256,
      mode: '0644',
      detail: `${t.path}: ${fact.sha256 === 'absent' ? 'add' : 'replace'} the private CA (${t.who})`,
    });
  }
  const keep = new Set(wanted.map((t) => t.path));
  for (const path of caCandidatePaths(input.registries)) {
    const fact = caFact(facts, path);
    if (keep.has(path) || !isOurCaFile(fact)) continue;
    steps.push({
      kind: 'remove-file',
      path,
      expectSha256: fact.sha256,
      detail: `remove ${path} (runner-fleet's copy of a CA the inventory no longer names there)`,
    });
  }
  return steps;
}

/** Who reads the node dockerd's certs.d, per executor: the dind service mounts it (DIND_CERTS_VOLUME). */
const DOCKERD_CONSUMERS: Record<Executor, string> = {
  shell: 'dockerd',
  dood: 'dockerd',
  dind: "dockerd and the dind service's dockerd (it mounts dockerd's certs.d)",
};

/**
 * status: the consumers on a node whose copy of the CA is missing or differs (each then fails with x509: certificate
 * signed by unknown authority), worded as `dockerd for REGISTRY`, `microk8s containerd for REGISTRY`, `the host
 * runner`. The Docker flavour is the one the node has; with both or none, both Dockers' folders are checked. The dind
 * service's dockerd reads the node dockerd's certs.d (mounted), so with dind it is named with it.
 */
export function caConsumersWithout(input: {
  ca: PrivateCa;
  node: NodeSpec;
  registries: string[];
  placement: Placement;
  executor: Executor;
  facts: HostFacts;
}): string[] {
  const { ca, node, facts } = input;
  const want = caFileContent(ca);
  const has = (path: string) => caFact(facts, path).content === want;
  const flavours: DockerFlavour[] =
    node.docker !== 'auto'
      ? [node.docker]
      : facts.snapDocker && !facts.aptDocker
        ? ['snap']
        : facts.aptDocker && !facts.snapDocker
          ? ['apt']
          : ['apt', 'snap'];
  const missing: string[] = [];
  for (const r of input.registries) {
    if (!flavours.some((f) => has(dockerCaPath(f, r))))
      missing.push(`${DOCKERD_CONSUMERS[input.executor]} for ${r}`);
    if (facts.microk8s && node.microk8s && !has(containerdCaPath(r)))
      missing.push(`microk8s containerd for ${r}`);
  }
  if (input.placement === 'host' && !has(HOST_RUNNER_CA)) missing.push('the host runner');
  return missing;
}
