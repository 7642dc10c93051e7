// The validated inventory: what every other module reads. Built only by parseInventory().

export type Executor = 'shell' | 'dind' | 'dood';
export type Placement = 'cluster' | 'host';
export type DockerFlavour = 'apt' | 'snap';
export type DockerChoice = DockerFlavour | 'auto';
export type RunnerType = 'instance_type' | 'group_type' | 'project_type';
export type AccessLevel = 'not_protected' | 'ref_protected';

export const EXECUTORS: readonly Executor[] = ['shell', 'dind', 'dood'];
/** gitlab-runner's `[runners.docker] pull_policy` values, spelled as it spells them (docs: "Configure how runners pull images"). */
export type PullPolicy = 'always' | 'if-not-present' | 'never';
export const PULL_POLICIES: readonly PullPolicy[] = ['always', 'if-not-present', 'never'];
/**
 * dind executor: `runner` starts the Docker-in-Docker service (told the registries) for every job from config.toml;
 * `job` leaves it to the jobs that declare it (ci-snippet's does), saving a privileged dockerd per job that does
 * not build images, at the price of jobs whose own `services:` entry lacks `--insecure-registry`.
 */
export type DindService = 'runner' | 'job';
export const DIND_SERVICES: readonly DindService[] = ['runner', 'job'];
export const PLACEMENTS: readonly Placement[] = ['cluster', 'host'];

/** A secret given by reference (`env:NAME` or `file:PATH`); `value` is resolved lazily. */
export interface SecretRef {
  ref: string;
  /** the inventory path that named it, for error messages */
  path: string;
}

export type GitlabAuth =
  | { kind: 'accessToken'; token: SecretRef }
  | { kind: 'runnerToken'; token: SecretRef }
  | { kind: 'registrationToken'; token: SecretRef }
  | { kind: 'none' };

export interface GitlabConfig {
  url: string;
  /** host:port, no scheme */
  registries: string[];
  auth: GitlabAuth;
  runnerType: RunnerType;
  groupId?: number;
  projectId?: number;
  /** seconds per API request */
  timeout: number;
}

export interface SshDefaults {
  user: string;
  port: number;
  identityFile: string;
  knownHosts: string;
  /** seconds */
  connectTimeout: number;
}

export interface NodeSpec {
  name: string;
  host: string;
  port: number;
  user: string;
  identityFile: string;
  knownHosts: string;
  connectTimeout: number;
  docker: DockerChoice;
  /** write containerd's hosts.toml for the registries (issue 6); default true */
  microk8s: boolean;
}

export interface KubernetesConfig {
  kubeconfig?: string;
  context?: string;
  fromNode?: string;
  namespace: string;
  /** seconds */
  rolloutTimeout: number;
  /** seconds any one Kubernetes request may take (a frozen apiserver fails the run instead of hanging it) */
  requestTimeout: number;
  /** label put on inventory nodes; the DaemonSets select it */
  nodeLabel: string;
}

/**
 * The apt repository gitlab-runner is installed from with `placement: host`: `deb [signed-by=…] <url>/<os>/ <codename> main`.
 * Defaults to GitLab's; a mirror can be named instead.
 */
export interface PackageRepository {
  url: string;
  /** where runner-fleet fetches the repository's signing key (the nodes never fetch it themselves) */
  key: { kind: 'url'; url: string } | { kind: 'file'; path: string };
  /** the key's primary fingerprint, 40 uppercase hex digits; a fetched key that does not match is refused */
  fingerprint: string;
}

export const GITLAB_RUNNER_REPOSITORY: PackageRepository = {
  url: 'https://packages.gitlab.com/runner/gitlab-runner',
  key: { kind: 'url', url: 'https://packages.gitlab.com/runner/gitlab-runner/gpgkey' },
  // GitLab's package repository signing key (docs.gitlab.com/omnibus/update/package_signatures).
  fingerprint: 'F6403F6544A38863DAA0B6E03F01618A51312F3F',
};

export interface RunnersConfig {
  executor: Executor;
  placement: Placement;
  packageRepository: PackageRepository;
  tags: string[];
  /** Handlebars-free template: `{node}` is replaced by the node name */
  description: string;
  runUntagged: boolean;
  locked: boolean;
  accessLevel: AccessLevel;
  maximumTimeout?: number;
  paused: boolean;
  concurrent: number;
  checkInterval: number;
  image: string;
  /** default image for docker-executor jobs */
  jobImage: string;
  dindImage: string;
  dockerCliImage: string;
  /**
   * The docker executor's helper image; `{arch}` becomes the node's helper architecture (arm64, arm, x86_64) and
   * `${CI_RUNNER_VERSION}` is left for gitlab-runner. Default: GitLab's registry (see helperImageFor).
   */
  helperImage?: string;
  /** `[runners.docker] pull_policy`, tried in order; absent: gitlab-runner's default (always) */
  pullPolicy?: PullPolicy[];
  dindService: DindService;
}

export interface Inventory {
  /** absolute path the inventory was read from; relative paths inside it resolve against its folder */
  source: string;
  gitlab: GitlabConfig;
  ssh: SshDefaults;
  nodes: NodeSpec[];
  kubernetes: KubernetesConfig;
  runners: RunnersConfig;
}
