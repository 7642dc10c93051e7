// The validated inventory: what every other module reads. Built only by parseInventory(); every field's type
// comes from the one definition in fields.ts.
import type { InventoryFile, PackageKey, SecretRef } from './fields.js';
import {
  ACCESS_LEVELS,
  DIND_SERVICES,
  DOCKER_CHOICES,
  EXECUTORS,
  PLACEMENTS,
  PULL_POLICIES,
  RUNNER_TYPES,
} from './fields.js';

export { DIND_SERVICES, EXECUTORS, GITLAB_RUNNER_REPOSITORY, PLACEMENTS, PULL_POLICIES } from './fields.js';
export type { SecretRef } from './fields.js';

export type Executor = (typeof EXECUTORS)[number];
export type Placement = (typeof PLACEMENTS)[number];
export type DockerChoice = (typeof DOCKER_CHOICES)[number];
export type DockerFlavour = Exclude<DockerChoice, 'auto'>;
export type RunnerType = (typeof RUNNER_TYPES)[number];
export type AccessLevel = (typeof ACCESS_LEVELS)[number];
export type PullPolicy = (typeof PULL_POLICIES)[number];
/** dind executor: who starts the Docker-in-Docker service (fields.ts DIND_SERVICES says what each means). */
export type DindService = (typeof DIND_SERVICES)[number];

export type GitlabAuth =
  | { kind: 'accessToken'; token: SecretRef }
  | { kind: 'runnerToken'; token: SecretRef }
  | { kind: 'registrationToken'; token: SecretRef }
  | { kind: 'none' };

type File = InventoryFile;

export interface GitlabConfig extends Omit<
  File['gitlab'],
  'registry' | 'accessToken' | 'runnerToken' | 'registrationToken' | 'caFile'
> {
  /** host:port, no scheme, each once */
  registries: string[];
  auth: GitlabAuth;
  /** gitlab.caFile: the private CA every consumer trusts; then the registries serve HTTPS, none is made insecure */
  ca?: PrivateCa;
}

/** A CA certificate is public: its text travels in plans, Secrets and files freely. */
export interface PrivateCa {
  /** absolute path it was read from */
  path: string;
  /** the PEM certificate(s), ending in a newline */
  pem: string;
}

/** `identityFile` and `knownHosts` are absolute (resolved against the inventory's folder). */
export type SshDefaults = File['ssh'];

/** A node with the ssh defaults filled in; `mtu` stays optional (absent: read from the node). */
export type NodeSpec = Required<Omit<File['nodes'][number], 'mtu'>> &
  Pick<File['nodes'][number], 'mtu'> & { connectTimeout: number };

export type KubernetesConfig = Omit<File['kubernetes'], 'nodeLabel'> & { nodeLabel: string };

/**
 * The apt repository gitlab-runner is installed from with `placement: host`: `deb [signed-by=…] <url>/<os>/ <codename> main`.
 * Defaults to GitLab's; a mirror can be named instead.
 */
export interface PackageRepository {
  url: string;
  /** where runner-fleet fetches the repository's signing key (the nodes never fetch it themselves) */
  key: PackageKey;
  /** the key's primary fingerprint, 40 uppercase hex digits; a fetched key that does not match is refused */
  fingerprint: string;
}

export interface RunnersConfig extends Omit<File['runners'], 'packageRepository' | 'image'> {
  packageRepository: PackageRepository;
  /** the runner pods' image, `{version}` filled in */
  image: string;
}

/** S3-compatible shared cache (`runners.cache`); the keys are references, resolved only into config.toml. */
export type CacheConfig = NonNullable<File['runners']['cache']>;
export type MetricsConfig = NonNullable<File['runners']['metrics']>;
export type Toleration = File['runners']['tolerations'][number];

/** What runner-fleet merges into each node's daemon.json besides the registries (`docker`). */
export type DockerSettings = File['docker'];
export type DockerLogs = NonNullable<DockerSettings['logs']>;
/** `docker.prune`: the prune timer on each node. */
export type PruneSettings = NonNullable<DockerSettings['prune']>;
/** `snap`: refresh holds on the docker and microk8s snaps. */
export type SnapSettings = File['snap'];

export interface Inventory {
  /** absolute path the inventory was read from; relative paths inside it resolve against its folder */
  source: string;
  gitlab: GitlabConfig;
  ssh: SshDefaults;
  nodes: NodeSpec[];
  kubernetes: KubernetesConfig;
  runners: RunnersConfig;
  docker: DockerSettings;
  /**
   * The values of the secret references, by the inventory path that names each (`gitlab.accessToken`), read once
   * before anything is contacted (secrets.ts readInventorySecrets); absent until then. Read them with secretValue.
   */
  secrets?: ReadonlyMap<string, string>;
  snap: SnapSettings;
}
