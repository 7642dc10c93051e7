// Pure: what `destroy` removes from one node, from its gathered facts: runner identity dirs, and with --purge-registry-config our registry entries.
import { EXECUTOR_NAMES, identityDir, legacyIdentityDir } from '../executors.js';
import type { DockerFlavour, NodeSpec } from '../inventory/types.js';
import {
  mergeOwnedSettings,
  OWNED_KEYS,
  parseDaemonJson,
  parseOwnership,
  removeInsecureRegistries,
  serialiseOwnership,
  type SettingsChange,
} from './daemon-json.js';
import { HOST_RUNNER_CA, caCandidatePaths, caFact, isOurCaFile } from './ca.js';
import { shQuote, type FileFact, type HostFacts } from './facts.js';
import { DOCKER_FLAVOURS } from './flavours.js';
import { planForwardingCleanup } from './forwarding.js';
import { planPruneCleanup } from './prune.js';
import { planSnapHoldsCleanup } from './snap-holds.js';
import {
  chooseFlavour,
  daemonJsonWriteStep,
  HostPlanError,
  reloadDockerStep,
  isOurHostsToml,
  type HostStep,
} from './docker-plan.js';

/** Gather section (joins the one gather round trip): this fleet's identity dirs, and the shared ones of old versions. */
export const IDENTITY_SECTION = 'rf-identity';

/** This fleet's identity folders (one per executor), in a stable order. */
export const fleetIdentityDirs = (namespace: string) =>
  [...EXECUTOR_NAMES].sort().map((e) => identityDir(namespace, e));
const LEGACY_DIRS = [...EXECUTOR_NAMES].sort().map(legacyIdentityDir);

/**
 * `dir PATH` for each of this fleet's folders that exists; `legacy PATH SYSTEM_ID` for each folder of a version before
 * per-fleet folders, with the system_id it holds (the only thing that says which fleet it was).
 */
export function identityGatherScript(namespace: string): string {
  return `echo "@@${IDENTITY_SECTION}"
for d in ${fleetIdentityDirs(namespace).map(shQuote).join(' ')}; do [ -d "$d" ] && echo "dir $d"; done
for d in ${LEGACY_DIRS.join(' ')}; do [ -d "$d" ] && echo "legacy $d $(head -c 64 "$d/.runner_system_id" 2>/dev/null | tr -dc 'a-zA-Z0-9_')"; done; :`;
}

export type CleanupStep =
  /** removes a file runner-fleet wrote, only if it is still what the plan saw; then its folder if empty (unless keepDir) */
  | { kind: 'remove-file'; path: string; expectSha256: string; keepDir?: boolean; detail: string }
  /** removes one identity folder (this fleet's, or an old shared one holding this fleet's system_id), then empty parents */
  | { kind: 'remove-dir'; path: string; detail: string }
  | Extract<
      HostStep,
      { kind: 'write-file' | 'reload-docker' | 'pod-traffic-rules' | 'remove-prune-timer' | 'snap-unhold' }
    >;

export interface CleanupPlan {
  steps: CleanupStep[];
  /** what stays on purpose, for the report */
  kept: string[];
}

/** Whose the gathered identity folders are: this fleet's own, and old shared ones by the system_id in them. */
export function identityCleanup(
  facts: HostFacts,
  fleet: { namespace: string; systemIds: readonly string[] },
): { steps: CleanupStep[]; kept: string[] } {
  const lines = facts.gathered?.sections.get(IDENTITY_SECTION) ?? [];
  const own = fleetIdentityDirs(fleet.namespace);
  const steps: CleanupStep[] = [];
  const kept: string[] = [];
  for (const line of lines) {
    const [kind, path, systemId = ''] = line.trim().split(' ');
    if (kind === 'dir' && own.includes(path))
      steps.push({
        kind: 'remove-dir',
        path,
        detail: `remove ${path} (runner identity kept by the runner pods)`,
      });
    if (kind !== 'legacy' || !LEGACY_DIRS.includes(path)) continue;
    if (systemId !== '' && fleet.systemIds.includes(systemId))
      steps.push({
        kind: 'remove-dir',
        path,
        detail: `remove ${path} (runner identity ${systemId} from before per-fleet folders; this fleet's records hold it)`,
      });
    else
      kept.push(
        `${path} stays: it holds ${systemId ? `system_id ${systemId}, which this fleet's records do not` : 'no system_id'} (another fleet's, from before per-fleet folders)`,
      );
  }
  return { steps, kept };
}

/**
 * Docker and daemon.json always stay. The registry entries runner-fleet adds (the inventory's registries in
 * insecure-registries, and containerd hosts.toml files it wrote, recognised by their exact content) go only
 * with `purgeRegistryConfig`: workloads may still pull from that registry, and other keys and entries are never
 * touched. Throws DaemonJsonError for a daemon.json it cannot read (that node fails, nothing is written).
 */
export function planHostCleanup(
  node: NodeSpec,
  registries: string[],
  facts: HostFacts,
  opts: { purgeRegistryConfig: boolean; namespace: string; systemIds: readonly string[] },
): CleanupPlan {
  const { steps, kept } = identityCleanup(facts, opts);
  steps.push(...forwardingCleanup(facts));
  // docker.prune's timer and snap.holdRefresh's holds are runner-fleet's alone: they always go.
  const prune = planPruneCleanup(facts.prune);
  if (prune) steps.push(prune);
  const holds = planSnapHoldsCleanup(facts.snaps);
  if (holds) steps.push(holds);
  // The host runner's copy of the CA goes with the runner; the registries' copies are registry configuration.
  const caFiles = caCandidatePaths(registries)
    .map((path) => caFact(facts, path))
    .filter(isOurCaFile);
  const runnerCa = caFiles.filter((f) => f.path === HOST_RUNNER_CA);
  const registryCas = caFiles.filter((f) => f.path !== HOST_RUNNER_CA);
  steps.push(...runnerCa.map((f) => removeCaStep(f, "the host runner's tls-ca-file")));

  let flavour: DockerFlavour | undefined;
  try {
    flavour = chooseFlavour(node, facts);
  } catch (err) {
    if (!(err instanceof HostPlanError)) throw err;
  }
  const file =
    facts.runningDaemonJson ?? (flavour ? DOCKER_FLAVOURS[flavour].defaultDaemonJson(facts) : undefined);
  let listed: string[] = [];
  let merged: Record<string, unknown> | undefined;
  // What else runner-fleet set in this daemon.json (docker.registryMirrors, docker.logs), per its state file.
  const stateFact = file ? facts.registryState?.[file.path] : undefined;
  const ownership = parseOwnership(stateFact?.content);
  let settings: SettingsChange[] = [];
  if (file?.content !== undefined) {
    const current = parseDaemonJson(file.content, file.path);
    const r = removeInsecureRegistries(current, registries);
    listed = r.removed;
    // Nothing wanted any more: every mirror runner-fleet added goes, every setting it made gets its previous value.
    const taken = mergeOwnedSettings(r.merged, { mirrors: [], scalars: {} }, ownership);
    settings = taken.changes;
    merged = taken.merged;
  }
  const tomls = registries
    .map((registry) => ({ registry, fact: facts.hostsToml[registry] }))
    .filter((t) => t.fact && t.fact.sha256 !== 'absent');

  if (!opts.purgeRegistryConfig) {
    const keys = [...new Set(settings.map((c) => c.key))];
    const what = [
      ...(listed.length > 0 ? [`${listed.join(', ')} in ${file!.path}`] : []),
      ...(keys.length > 0 ? [`runner-fleet's ${keys.join(', ')} in ${file!.path}`] : []),
      ...tomls.map((t) => t.fact!.path),
      ...registryCas.map((f) => f.path),
    ];
    if (what.length > 0)
      kept.push(`registry configuration stays (${what.join('; ')}): --purge-registry-config removes it`);
    return { steps, kept };
  }

  if ((listed.length > 0 || settings.length > 0) && file && merged && flavour) {
    const what = [
      ...(listed.length > 0 ? [`remove ${listed.join(', ')} from insecure-registries`] : []),
      ...settings.map((c) => c.detail),
    ];
    steps.push(
      daemonJsonWriteStep(
        file,
        merged,
        `${what.join('; ')} (every other key and entry stays)`,
      ) as CleanupStep,
    );
    // insecure-registries and registry-mirrors reload on SIGHUP; the log settings only at dockerd's next start.
    const reloads = listed.length > 0 || settings.some((c) => OWNED_KEYS[c.key] === 'reload');
    if (reloads && (facts.dockerd || facts.docker))
      steps.push(
        reloadDockerStep(
          flavour,
          `to drop ${[...(listed.length > 0 ? ['the registries'] : []), ...(settings.some((c) => c.key === 'registry-mirrors') ? ['the mirrors'] : [])].join(' and ')}`,
        ) as CleanupStep,
      );
    const restartKeys = [
      ...new Set(settings.filter((c) => OWNED_KEYS[c.key] === 'restart').map((c) => c.key)),
    ];
    if (restartKeys.length > 0)
      kept.push(
        `${restartKeys.join(' and ')} ${restartKeys.length > 1 ? 'are' : 'is'} back as before in ${file.path}; dockerd reads ${restartKeys.length > 1 ? 'them' : 'it'} when it next starts (destroy does not restart it: running containers would stop)`,
      );
    // The state file goes with the last entry it records; what it still vouches for stays recorded.
    const left = {
      insecure: ownership.insecure.filter((r) => !listed.includes(r)),
      mirrors: [],
      settings: {},
    };
    if (stateFact && stateFact.sha256 !== 'absent') {
      if (left.insecure.length === 0)
        steps.push({
          kind: 'remove-file',
          path: stateFact.path,
          expectSha256: stateFact.sha256,
          detail: `remove ${stateFact.path} (what runner-fleet added there is gone)`,
        });
      else
        steps.push({
          kind: 'write-file',
          name: 'registry state',
          path: stateFact.path,
          content: serialiseOwnership(left),
          expectSha256: stateFact.sha256,
          mode: '0600',
          detail: `${stateFact.path}: forget what destroy took back`,
        });
    }
  } else if (listed.length > 0 || settings.length > 0) {
    kept.push(
      `${[...listed, ...new Set(settings.map((c) => c.key))].join(', ')} stay in ${file?.path ?? 'daemon.json'}: both apt and snap Docker are installed; set nodes[].docker to choose`,
    );
  }
  steps.push(...registryCas.map((f) => removeCaStep(f, 'the private CA for a registry')));
  for (const { registry, fact } of tomls) {
    if (isOurHostsToml(registry, fact!.content)) {
      steps.push({
        kind: 'remove-file',
        path: fact!.path,
        expectSha256: fact!.sha256,
        detail: `remove ${fact!.path} (microk8s containerd trust for ${registry})`,
      });
    } else {
      kept.push(`${fact!.path} stays: its content is not what runner-fleet wrote (edited by someone)`);
    }
  }
  return { steps, kept };
}

function removeCaStep(fact: FileFact, what: string): CleanupStep {
  return {
    kind: 'remove-file',
    path: fact.path,
    expectSha256: fact.sha256,
    detail: `remove ${fact.path} (runner-fleet's copy of gitlab.caFile: ${what})`,
  };
}

/**
 * runner-fleet's forwarding file and its tagged DOCKER-USER rules go, whatever else destroy keeps: nothing else in
 * sysctl.d or iptables is touched, and forwarding is not turned off now (the pods and Docker on the node use it).
 */
function forwardingCleanup(facts: HostFacts): CleanupStep[] {
  const { removeFile, rules } = planForwardingCleanup(facts.forwarding);
  return [
    ...(removeFile
      ? [
          {
            kind: 'remove-file' as const,
            path: removeFile.path,
            expectSha256: removeFile.sha256,
            keepDir: true,
            detail: `remove ${removeFile.path} (runner-fleet's net.ipv4.ip_forward = 1; forwarding stays on until the next boot)`,
          },
        ]
      : []),
    ...(rules ? [rules as CleanupStep] : []),
  ];
}
