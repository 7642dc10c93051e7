// The pure host plan: from a node's spec, the registries and its gathered facts, the steps that converge it.
import type { DockerFlavour, DockerSettings, NodeSpec, PrivateCa, SnapSettings } from '../inventory/types.js';
import { containerdCaPath, planCaFiles, type CaRemoval } from './ca.js';
import {
  OWNED_KEYS,
  logScalars,
  mergeInsecureRegistries,
  mergeOwnedSettings,
  parseDaemonJson,
  parseOwnership,
  removeInsecureRegistries,
  sameOwnership,
  serialiseDaemonJson,
  serialiseOwnership,
  type DaemonJson,
  type Ownership,
} from './daemon-json.js';
import {
  hostsTomlPath,
  registryIsInsecure,
  registryStatePath,
  sha256 as sha256Of,
  type FileFact,
  type HostFacts,
} from './facts.js';
import { DOCKER_FLAVOURS, DOCKER_FLAVOUR_NAMES, type DockerAction } from './flavours.js';
import { isClusterNode, planForwarding, type ForwardingStep, type PodNetwork } from './forwarding.js';
import { logConfigProblem, mirrorProblems } from './docker-limits.js';
import { normaliseRef, parseImageFacts, type PrepullStep, type PrepullWant } from './prepull.js';
import { planPrune, type PruneStep } from './prune.js';
import { planSnapHolds, type SnapHoldStep } from './snap-holds.js';

export type HostStep =
  | { kind: 'install-docker'; flavour: DockerFlavour; detail: string }
  | {
      kind: 'write-file';
      name: 'daemon.json' | 'hosts.toml' | 'registry state' | 'ca.crt';
      path: string;
      content: string;
      expectSha256: string;
      /** mode of a new file; with `preserve` an existing file keeps its own mode and owner */
      mode: string;
      /** keep an existing file's mode and owner, and write through a symlink to its target (daemon.json: the user's file) */
      preserve?: boolean;
      detail: string;
    }
  | { kind: 'reload-docker'; flavour: DockerFlavour; action: DockerAction; detail: string }
  | CaRemoval
  | ForwardingStep
  | PruneStep
  | SnapHoldStep;

export interface HostPlan {
  flavour: DockerFlavour;
  daemonJsonPath: string;
  steps: HostStep[];
  /** true when Docker must be installed first; the node is gathered and planned again afterwards */
  regather: boolean;
  /** registries the running dockerd does not (yet) treat as insecure, per the gathered `docker info` */
  notYetInsecure: string[];
  /** steps that run only once dockerd verified the new daemon.json (the final registry state) */
  afterVerify: HostStep[];
}

export class HostPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostPlanError';
  }
}

/** Which Docker the node has or should get. */
export function chooseFlavour(node: NodeSpec, facts: HostFacts): DockerFlavour {
  if (node.docker !== 'auto') return node.docker;
  const installed = DOCKER_FLAVOUR_NAMES.filter((f) => DOCKER_FLAVOURS[f].installed(facts));
  if (installed.length > 1) {
    throw new HostPlanError(
      `Docker is installed both as ${installed.join(' and ')}; set docker: ${installed.join(' or docker: ')} for this node so runner-fleet edits the daemon.json the running daemon reads`,
    );
  }
  // Nothing installed: apt's docker.io is what runner-fleet installs.
  return installed[0] ?? 'apt';
}

function daemonJsonFact(flavour: DockerFlavour, facts: HostFacts): FileFact {
  // The running daemon's own --config-file wins: that is the file it actually reads.
  return facts.runningDaemonJson ?? DOCKER_FLAVOURS[flavour].defaultDaemonJson(facts);
}

/**
 * containerd (microk8s) hosts.toml for `registry`: a plain-HTTP mirror for pulls, or, with the private CA, HTTPS
 * verified against runner-fleet's copy of it (containerd docs/hosts.md: `ca` under the host).
 */
export function renderHostsToml(registry: string, ca?: PrivateCa): string {
  if (!ca)
    return `# Managed by runner-fleet: ${registry} serves plain HTTP.\nserver = "http://${registry}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`;
  return `# Managed by runner-fleet: ${registry} serves HTTPS with a certificate from gitlab.caFile.\nserver = "https://${registry}"\n\n[host."https://${registry}"]\n  capabilities = ["pull", "resolve"]\n  ca = "${containerdCaPath(registry)}"\n`;
}

/** Whether a hosts.toml is one runner-fleet wrote for `registry` (either kind): destroy removes only those. */
export const isOurHostsToml = (registry: string, content: string | undefined, ca?: PrivateCa): boolean =>
  content === renderHostsToml(registry) ||
  (ca !== undefined && content === renderHostsToml(registry, ca)) ||
  (content?.startsWith(`# Managed by runner-fleet: ${registry} serves HTTPS`) ?? false);

/** Writing daemon.json: atomic, guarded by the sha the plan saw. Shared by apply and destroy's purge. */
export function daemonJsonWriteStep(file: FileFact, merged: DaemonJson, detail: string): HostStep {
  return {
    kind: 'write-file',
    name: 'daemon.json',
    path: file.path,
    content: serialiseDaemonJson(merged),
    expectSha256: file.sha256,
    mode: '0644',
    preserve: true,
    detail: `${file.path}: ${detail}`,
  };
}

/** Making dockerd re-read daemon.json: a SIGHUP to dockerd, the way each flavour reaches it; running jobs keep going. */
export function reloadDockerStep(flavour: DockerFlavour, why: string): HostStep {
  return {
    kind: 'reload-docker',
    flavour,
    action: 'reload',
    detail: `${DOCKER_FLAVOURS[flavour].reloadDetail} ${why}`,
  };
}

/** No mirrors, no log settings: what a caller that predates docker.* asks for. */
export const NO_DOCKER_SETTINGS: DockerSettings = { registryMirrors: [] };

const norm = (url: string) => url.replace(/\/+$/, '');

/** The registries dockerd must treat as insecure: all of them over plain HTTP, none once they serve HTTPS. */
export const insecureRegistries = (registries: string[], ca: PrivateCa | undefined): string[] =>
  ca ? [] : registries;

/**
 * `pods`: where the runners run and the pod CIDR; on a cluster node (isClusterNode) forwarding steps come first, before
 * Docker is installed, started or restarted (src/docker/forwarding.ts). Without it (callers that predate it), none.
 * `ca` (gitlab.caFile): the registries serve HTTPS; each consumer on the node gets the CA instead of an insecure entry.
 */
export function planHost(
  node: NodeSpec,
  registries: string[],
  facts: HostFacts,
  settings: DockerSettings = NO_DOCKER_SETTINGS,
  pods?: PodNetwork,
  snap: SnapSettings = NO_SNAP_SETTINGS,
  ca?: PrivateCa,
): HostPlan {
  const forwarding =
    pods && isClusterNode(node.microk8s, facts, pods) ? planForwarding(facts.forwarding, pods.podCidr) : [];
  const plan = planDocker(node, insecureRegistries(registries, ca), facts, settings);
  if (plan.regather) return { ...plan, steps: [...forwarding, ...plan.steps] };
  const microk8s = facts.microk8s && node.microk8s;
  // CA files before the hosts.toml that names them: containerd reads both at the next pull.
  const caSteps = planCaFiles({
    ca,
    flavour: plan.flavour,
    registries,
    microk8s,
    placement: pods?.placement,
    facts,
  });
  const hostsToml = microk8s ? planHostsToml(registries, facts, ca) : [];
  // Once Docker is there (a node that gets it first is planned again): the prune timer and the snap holds, last.
  const upkeep = [
    ...planPrune(settings.prune, plan.flavour, facts.prune),
    ...planSnapHolds(snap, facts.snaps),
  ];
  return { ...plan, steps: [...forwarding, ...plan.steps, ...caSteps, ...hostsToml, ...upkeep] };
}

/** containerd re-reads certs.d/*\/hosts.toml on each pull, so writing the file needs no restart. */
function planHostsToml(registries: string[], facts: HostFacts, ca: PrivateCa | undefined): HostStep[] {
  const steps: HostStep[] = [];
  for (const registry of registries) {
    const fact = facts.hostsToml[registry] ?? { path: hostsTomlPath(registry), sha256: 'absent' as const };
    const want = renderHostsToml(registry, ca);
    if (fact.content === want) continue;
    steps.push({
      kind: 'write-file',
      name: 'hosts.toml',
      path: fact.path,
      content: want,
      expectSha256: fact.sha256,
      mode: '0644',
      detail: `${fact.path}: microk8s containerd pulls ${registry} ${ca ? 'over HTTPS, trusting the private CA' : 'over plain HTTP'}`,
    });
  }
  return steps;
}

/**
 * The images the first job would pull, pulled by apply instead: the helper of the node's architecture and the job
 * images through its Docker, the runner image through microk8s's containerd (on a microk8s node). Only what the
 * gather found absent; one step for the node, or none.
 */
export function planPrepull(
  want: PrepullWant | undefined,
  node: NodeSpec,
  facts: HostFacts,
): PrepullStep | undefined {
  if (!want || want.off) return undefined;
  const present = parseImageFacts(facts.gathered, want);
  const helper = want.helperByArch[facts.arch];
  const docker = [...new Set([...(helper ? [helper] : []), ...want.docker])].filter(
    (r) => !present.docker.includes(r),
  );
  const containerd =
    facts.microk8s && node.microk8s
      ? want.containerd.filter((r) => !present.containerd.includes(normaliseRef(r)))
      : [];
  if (docker.length === 0 && containerd.length === 0) return undefined;
  const what = [
    ...(docker.length > 0 ? [`${docker.join(', ')} through Docker`] : []),
    ...(containerd.length > 0 ? [`${containerd.join(', ')} through microk8s containerd`] : []),
  ];
  return {
    kind: 'pull-images',
    docker,
    containerd,
    detail: `pull ${what.join(' and ')}, so that the first job does not wait for them`,
  };
}

/** No holds: what a caller that predates `snap` asks for (and what drops the holds runner-fleet made). */
export const NO_SNAP_SETTINGS: SnapSettings = { holdRefresh: false };

function planDocker(
  node: NodeSpec,
  registries: string[],
  facts: HostFacts,
  settings: DockerSettings,
): HostPlan {
  const flavour = chooseFlavour(node, facts);
  const ops = DOCKER_FLAVOURS[flavour];
  if (!ops.installed(facts)) return planInstall(flavour, registries, facts);

  const file = daemonJsonFact(flavour, facts);
  refuseNotRegular(node, facts, [
    file.path,
    registryStatePath(file.path),
    ...(facts.microk8s && node.microk8s ? registries.map(hostsTomlPath) : []),
  ]);
  // Checked against the Docker that runs now; after an install, against the one just installed (the plan is made
  // again then, before daemon.json is written).
  const mirrorIssues = mirrorProblems(settings.registryMirrors, facts.docker?.version);
  if (mirrorIssues.length > 0) throw new HostPlanError(mirrorIssues.join('; '));
  const edit = planDaemonJsonEdit(file, registries, facts, settings);
  const notYetInsecure = facts.docker
    ? registries.filter((r) => !registryIsInsecure(facts.docker!, r))
    : registries;
  const load = planDockerdLoad(flavour, facts, edit, notYetInsecure);
  return {
    flavour,
    daemonJsonPath: file.path,
    steps: [...edit.steps, ...load],
    regather: false,
    notYetInsecure,
    afterVerify: edit.afterVerify,
  };
}

/** Docker is missing: install it (the node is gathered and planned again afterwards), unless that makes two. */
function planInstall(flavour: DockerFlavour, registries: string[], facts: HostFacts): HostPlan {
  const ops = DOCKER_FLAVOURS[flavour];
  // Asked for by name (docker: apt|snap) while the other flavour is there: installing would leave two Dockers.
  const other = DOCKER_FLAVOUR_NAMES.filter((f) => f !== flavour && DOCKER_FLAVOURS[f].installed(facts));
  if (other.length > 0)
    throw new HostPlanError(
      `docker: ${flavour} was asked for, but this node has ${other.join(', ')} Docker${facts.aptDockerPackages?.length ? ` (${facts.aptDockerPackages.join(', ')})` : ''}; runner-fleet will not install a second one over it`,
    );
  if (flavour === 'snap' && !facts.snapd) {
    throw new HostPlanError('docker: snap was asked for, but snapd is not installed on this node');
  }
  return {
    flavour,
    daemonJsonPath: ops.defaultDaemonJson(facts).path,
    steps: [{ kind: 'install-docker', flavour, detail: `install Docker (${ops.installCommand})` }],
    regather: true,
    notYetInsecure: registries,
    afterVerify: [],
  };
}

/** What the daemon.json edit changes, and the steps that write it (with runner-fleet's record of what it owns). */
interface DaemonJsonEdit {
  merged: DaemonJson;
  added: string[];
  removed: string[];
  changes: ReturnType<typeof mergeOwnedSettings>['changes'];
  steps: HostStep[];
  afterVerify: HostStep[];
}

function planDaemonJsonEdit(
  file: FileFact,
  registries: string[],
  facts: HostFacts,
  settings: DockerSettings,
): DaemonJsonEdit {
  const current = parseDaemonJson(file.content, file.path);
  // Entries runner-fleet added (per its state file) that the inventory no longer lists go; nobody else's do.
  const stateFact = facts.registryState?.[file.path] ?? {
    path: registryStatePath(file.path),
    sha256: 'absent' as const,
  };
  const ownership = parseOwnership(stateFact.content);
  const owned = ownership.insecure;
  const { merged: pruned, removed } = removeInsecureRegistries(
    current,
    owned.filter((r) => !registries.includes(r)),
  );
  const { merged: withRegistries, added } = mergeInsecureRegistries(pruned, registries);
  // docker.registryMirrors and docker.logs, owned and taken back the same way.
  const scalars = logScalars(settings.logs);
  const other = mergeOwnedSettings(withRegistries, { mirrors: settings.registryMirrors, scalars }, ownership);
  const merged = other.merged;
  const logIssue = other.changes.some((c) => OWNED_KEYS[c.key] === 'restart')
    ? logConfigProblem(merged)
    : undefined;
  if (logIssue)
    throw new HostPlanError(
      `docker.logs: with what ${file.path} already holds, ${logIssue}; change docker.logs (maxFile 2 or more) or the log-opts in ${file.path}`,
    );
  // Recorded before the write (a superset), so a run cut off after it still knows what it added; narrowed to what the
  // inventory wants only once dockerd runs with the new file (a rolled-back removal stays recorded).
  const insecureBefore = [...new Set([...owned, ...added])];
  const before: Ownership = {
    insecure: insecureBefore,
    mirrors: [...new Set([...ownership.mirrors, ...other.owned.mirrors])],
    settings: { ...ownership.settings, ...other.owned.settings },
  };
  const after: Ownership = {
    insecure: insecureBefore.filter((r) => registries.includes(r)),
    mirrors: other.owned.mirrors,
    settings: other.owned.settings,
  };
  const stateStep = (o: Ownership, expectSha256: string, why: string): HostStep => ({
    kind: 'write-file',
    name: 'registry state',
    path: stateFact.path,
    content: serialiseOwnership(o),
    expectSha256,
    mode: '0600',
    detail: `${stateFact.path}: ${why}`,
  });
  const edit: DaemonJsonEdit = { merged, added, removed, changes: other.changes, steps: [], afterVerify: [] };
  if (added.length === 0 && removed.length === 0 && other.changes.length === 0) return edit;
  let stateSha = stateFact.sha256;
  if (!sameOwnership(before, ownership)) {
    const what = [
      ...added,
      ...other.changes
        .filter((c) => !c.detail.startsWith('remove') && !c.detail.startsWith('put'))
        .map((c) => c.key),
    ];
    edit.steps.push(
      stateStep(before, stateSha, `record that runner-fleet added ${[...new Set(what)].join(', ')}`),
    );
    stateSha = sha256Of(serialiseOwnership(before));
  }
  const what = [
    ...(added.length > 0 ? [`add ${added.join(', ')} to insecure-registries`] : []),
    ...(removed.length > 0
      ? [
          `remove ${removed.join(', ')} from insecure-registries (runner-fleet added it; the inventory no longer lists it)`,
        ]
      : []),
    ...other.changes.map((c) => c.detail),
  ].join('; ');
  edit.steps.push(daemonJsonWriteStep(file, merged, what));
  if (!sameOwnership(after, before))
    edit.afterVerify.push(
      stateStep(
        after,
        stateSha,
        `forget what runner-fleet no longer sets (${describeForgotten(before, after)})`,
      ),
    );
  return edit;
}

/** How dockerd comes to read the file: started if it is not running, restarted for start-only keys, else a SIGHUP. */
function planDockerdLoad(
  flavour: DockerFlavour,
  facts: HostFacts,
  edit: DaemonJsonEdit,
  notYetInsecure: string[],
): HostStep[] {
  const { merged, added, removed, changes } = edit;
  // What the file says but the running dockerd has not loaded (a run cut off before its reload or restart).
  const wantMirrors = ((merged['registry-mirrors'] as string[] | undefined) ?? []).map(norm);
  const loadedMirrors = (facts.docker?.mirrors ?? []).map(norm);
  const mirrorsPending =
    facts.docker?.mirrors !== undefined &&
    (wantMirrors.length !== loadedMirrors.length || wantMirrors.some((m, i) => m !== loadedMirrors[i]));
  const driver = merged['log-driver'];
  const driverPending =
    typeof driver === 'string' &&
    facts.docker?.loggingDriver !== undefined &&
    facts.docker.loggingDriver !== driver;
  const restartFor = [...new Set(changes.filter((c) => OWNED_KEYS[c.key] === 'restart').map((c) => c.key))];
  if (restartFor.length === 0 && driverPending) restartFor.push('log-driver');
  const running = facts.dockerd !== undefined || facts.docker !== undefined;
  if (!running)
    return [
      { kind: 'reload-docker', flavour, action: 'start', detail: 'start dockerd (it was not running)' },
    ];
  if (restartFor.length > 0) return [restartStep(flavour, restartFor, merged['live-restore'] === true)];
  const fileChanged = added.length > 0 || removed.length > 0 || changes.length > 0;
  if (!fileChanged && notYetInsecure.length === 0 && !mirrorsPending) return [];
  const why = fileChanged
    ? `to load the new ${[...(added.length > 0 || removed.length > 0 ? ['insecure-registries'] : []), ...(changes.length > 0 ? ['registry-mirrors'] : [])].join(' and ')}`
    : notYetInsecure.length > 0
      ? `dockerd has not loaded ${notYetInsecure.join(', ')} yet`
      : 'dockerd has not loaded the registry-mirrors yet';
  return [reloadDockerStep(flavour, why)];
}

/**
 * live-restore keeps containers running while dockerd restarts, not the jobs in them: gitlab-runner follows each
 * job's container over a connection to dockerd (attach and wait), which the restart cuts; the job fails and, with
 * live-restore, its containers are left running behind it. Without live-restore every container stops.
 */
function restartStep(flavour: DockerFlavour, restartFor: string[], live: boolean): HostStep {
  const many = restartFor.length > 1;
  return {
    kind: 'reload-docker',
    flavour,
    action: 'restart',
    detail:
      `restart dockerd (${DOCKER_FLAVOURS[flavour].script.restart}): ${restartFor.join(' and ')} ${many ? 'are' : 'is'} read only when dockerd starts (a SIGHUP does not load ${many ? 'them' : 'it'}), and apply to containers started afterwards; ` +
      (live
        ? 'live-restore is on, so running containers keep running, but A CI JOB IN FLIGHT FAILS (its runner loses the connection to its containers, which are left behind): apply when no job runs'
        : 'EVERY RUNNING CONTAINER STOPS, and the CI jobs in them fail: apply when no job runs'),
  };
}

/**
 * A daemon.json (or state file, or hosts.toml) that is a directory is shown by the gather as absent, and no atomic
 * write can replace it: say which, where, and what to do, instead of failing every run at the write.
 */
function refuseNotRegular(node: NodeSpec, facts: HostFacts, paths: string[]): void {
  const found = paths.filter((p) => facts.notRegular?.[p] !== undefined);
  if (found.length === 0) return;
  throw new HostPlanError(
    found
      .map((p) => {
        const kind = facts.notRegular![p];
        const article = /^[aeiou]/.test(kind) ? 'an' : 'a';
        const fix = `${kind === 'directory' ? `remove it if it is empty (sudo rmdir ${p}) or ` : ''}move it aside (sudo mv ${p} ${p}.moved)`;
        return `${node.name}: ${p} is ${article} ${kind}, not a file${p.endsWith('daemon.json') ? ' (dockerd cannot read it as its configuration either)' : ''}; runner-fleet will not replace it: ${fix}, then run again`;
      })
      .join('; '),
  );
}

function describeForgotten(before: Ownership, after: Ownership): string {
  return [
    ...before.insecure.filter((r) => !after.insecure.includes(r)),
    ...before.mirrors.filter((m) => !after.mirrors.includes(m)),
    ...Object.keys(before.settings).filter((k) => !(k in after.settings)),
  ].join(', ');
}
