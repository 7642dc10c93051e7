// The executor registry: everything that differs between shell, dind and dood, in one Record the compiler checks.
import type { Executor, Inventory } from './inventory/types.js';

/** `[runners.docker]` of config.toml, before it becomes TOML (src/runners/config-toml.ts). */
export interface DockerSectionSpec {
  privileged: boolean;
  volumes: string[];
  /** one dind service per job, told about the plain-HTTP registries (its dockerd never reads the host's daemon.json) */
  dindService: boolean;
}

/** One rule of a namespaced Role (rbac.authorization.k8s.io/v1 PolicyRule). */
export interface RoleRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** What the runner pod is given of the node and of the cluster (the DaemonSet and the service account). */
export interface PodSpec {
  /** the node's Docker: its socket folder (hostPath), DOCKER_HOST and the /var/run/docker.sock link in the runner */
  nodeDocker: boolean;
  /** the service account's token mounted in the pod: only for an executor that talks to the Kubernetes API */
  serviceAccountToken: boolean;
  /** the runner's API access in its namespace, as a Role bound to its service account; [] for none (no Role) */
  roleRules: RoleRule[];
}

/** How the ci-snippet job builds and pushes the image (src/ci/snippet.ts `buildLines`). */
export type CiBuild = 'docker-cli';

export interface ExecutorSpec {
  /** config.toml: the runner's `executor`, and its `shell` for the shell executor */
  runner: { executor: 'shell' | 'docker'; shell: 'bash' | null };
  /** config.toml: `[runners.docker]`; null when jobs do not run in containers */
  docker: DockerSectionSpec | null;
  /** config.toml: the runner's `environment` */
  environment: string[];
  /** the DaemonSet: the docker CLI (copied into every runner pod) is on the runner container's PATH */
  dockerCliInRunner: boolean;
  /** the DaemonSet and the service account */
  pod: PodSpec;
  /** ci-snippet: how the job reaches a dockerd, for its header comment */
  ciHead: (registry: string) => string;
  /** ci-snippet: the job's `image:`, `services:` and the `variables:` lines before REGISTRY and IMAGE */
  ciLines: (inv: Inventory, registry: string) => string[];
  /** ci-snippet: the job's build and push */
  ciBuild: CiBuild;
  /** jobs' `docker run -v` goes to the node's dockerd: on the docker snap, confined to /home, /mnt and /media */
  jobMountsThroughNodeDocker: boolean;
}

/** gitlab-runner in the pod never calls the Kubernetes API; jobs reach the node's dockerd. */
const DOCKER_ON_THE_NODE: PodSpec = { nodeDocker: true, serviceAccountToken: false, roleRules: [] };

const q = (s: string) => JSON.stringify(s);

export const EXECUTOR_SPECS: Record<Executor, ExecutorSpec> = {
  shell: {
    runner: { executor: 'shell', shell: 'bash' },
    docker: null,
    environment: [],
    // Shell jobs run inside the runner container and expect a docker CLI there.
    dockerCliInRunner: true,
    pod: DOCKER_ON_THE_NODE,
    ciBuild: 'docker-cli',
    jobMountsThroughNodeDocker: false,
    ciHead: (registry) =>
      `the node's own dockerd from the runner's shell (its daemon.json trusts ${registry}; runner-fleet set that)`,
    ciLines: () => ['  variables:'],
  },
  dind: {
    runner: { executor: 'docker', shell: null },
    // The dind service runs its own dockerd, which needs privileges; TLS certs are shared through /certs/client.
    docker: { privileged: true, volumes: ['/certs/client', '/cache'], dindService: true },
    environment: ['DOCKER_TLS_CERTDIR=/certs'],
    dockerCliInRunner: false,
    // The job's dockerd is the dind service's; the runner still asks the node's Docker to start the job containers.
    pod: DOCKER_ON_THE_NODE,
    ciBuild: 'docker-cli',
    jobMountsThroughNodeDocker: false,
    ciHead: (registry) =>
      `a Docker-in-Docker service per job (its own dockerd, told that ${registry} is plain HTTP)`,
    ciLines: (inv, registry) => [
      `  image: ${q(inv.runners.dockerCliImage)}`,
      '  services:',
      "    # The service's dockerd never reads the node's daemon.json: the registry is passed as a flag. runner-fleet's",
      '    # runners start this same service from config.toml already; GitLab Runner then ignores the duplicate alias,',
      '    # so the job also works on other dind runners.',
      `    - name: ${q(inv.runners.dindImage)}`,
      '      alias: docker',
      // With gitlab.caFile the registry serves HTTPS: the runner mounts the node's certs.d (the CA) into services.
      ...(inv.gitlab.ca
        ? [
            "      # No --insecure-registry: the runner mounts the node's certs.d (the private CA) into services.",
          ]
        : [`      command: [${q(`--insecure-registry=${registry}`)}]`]),
      '  variables:',
      '    # TLS between the job and its dind service, as GitLab documents for the Docker executor.',
      `    DOCKER_HOST: ${q('tcp://docker:2376')}`,
      `    DOCKER_TLS_CERTDIR: ${q('/certs')}`,
      `    DOCKER_TLS_VERIFY: ${q('1')}`,
      `    DOCKER_CERT_PATH: ${q('/certs/client')}`,
    ],
  },
  dood: {
    runner: { executor: 'docker', shell: null },
    // Jobs drive the host's daemon, whose daemon.json already lists the registries. No network_mode = "host":
    // it disables the service links that make a job's `services:` reachable by alias, and concurrent jobs would
    // share the node's ports.
    docker: {
      privileged: false,
      volumes: ['/var/run/docker.sock:/var/run/docker.sock', '/cache'],
      dindService: false,
    },
    environment: [],
    dockerCliInRunner: false,
    pod: DOCKER_ON_THE_NODE,
    ciBuild: 'docker-cli',
    jobMountsThroughNodeDocker: true,
    ciHead: (registry) =>
      `the node's own dockerd through /var/run/docker.sock (its daemon.json trusts ${registry}; runner-fleet set that)`,
    ciLines: (inv) => [
      `  image: ${q(inv.runners.dockerCliImage)}`,
      '  variables:',
      "    # The runner mounts the node's Docker socket into the job; no dind service, no TLS.",
      `    DOCKER_HOST: ${q('unix:///var/run/docker.sock')}`,
      `    DOCKER_TLS_CERTDIR: ${q('')}`,
    ],
  },
};

/** Whether any executor's runner has a Role: then Roles and RoleBindings are runner-fleet's to prune. */
export const ANY_EXECUTOR_HAS_ROLE = Object.values(EXECUTOR_SPECS).some(
  (s: ExecutorSpec) => s.pod.roleRules.length > 0,
);

/** Where the DaemonSet's pods keep the runner manager's identity (hostPath, DirectoryOrCreate). */
export const IDENTITY_ROOT = '/var/lib/runner-fleet';
/**
 * One folder per fleet (its namespace), so that a second fleet on the same node never reads, overwrites or removes
 * this one's identity; below it one folder per executor.
 */
export const fleetIdentityRoot = (namespace: string) => `${IDENTITY_ROOT}/namespaces/${namespace}`;
export const identityDir = (namespace: string, executor: Executor) =>
  `${fleetIdentityRoot(namespace)}/${executor}`;
/** Where versions before per-fleet folders kept it: shared by every fleet on the node, so ours only by its content. */
export const legacyIdentityDir = (executor: Executor) => `${IDENTITY_ROOT}/${executor}`;

/** Every executor, in the registry's order. */
export const EXECUTOR_NAMES = Object.keys(EXECUTOR_SPECS) as Executor[];
