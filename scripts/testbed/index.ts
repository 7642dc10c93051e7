// The test fleet's front door: what bench/, test/ and unit tests use. Import it as `#testbed` (package.json
// "imports"), never a file inside, so that moving this folder changes one line there.

// The fleet: up, down, status, and running commands on its nodes.
export {
  NODE_KINDS,
  down,
  execOnNode,
  fleetInfo,
  getNode,
  machineFileHashes,
  nodeDockerPid,
  nodeFile,
  seedImage,
  startNodeSshd,
  status,
  stopNodeDockerd,
  stopNodeSshd,
  up,
  type FleetInfo,
  type FleetStatus,
  type NodeKind,
  type TestbedService,
} from './fleet.js';
export { ensureHost, NO_SUDO_USER } from './host.js';
export { nodeCommand, portOpen, sshdPid, type NodeRecord } from './node.js';
export { cacheRoot, files, net, nodeDir, slot, stateRoot } from './paths.js';

// Services `up` starts, and the ones tests start themselves.
export { DEFAULT_SERVICES, servicesNamed } from './catalog.js';
export { clusterService, EXTRA_CLUSTER_NODES, makeClusterService } from './extra-services.js';
export { GITLAB_REGISTRY, REGISTRY, REGISTRY_NETNS, blackholePathMtu } from './registry.js';
export { sealedSecretsService } from './sealed-secrets.js';
export { FLUX_NAMESPACE, fluxService } from './flux.js';
export {
  makeTestPki,
  startTlsRegistry,
  startTlsStandin,
  TLS_REGISTRY,
  tlsRegistryHasTag,
  type TestPki,
  type TlsService,
} from './tls.js';

// The test cluster (a real apiserver; kubelets for the fleet's nodes, kwok for the others).
export { clusterBinDir, setNodeReady, startCluster, type TestCluster } from './cluster.js';
export { hostsToml, MICROK8S_CERTS_D, sysctlValues } from './kubelet.js';

// CI jobs through the fleet's runners, and the images they use.
export {
  DEMO_PROJECT,
  demoDockerfile,
  holdJob,
  runCiJob,
  whenJobHeld,
  type JobOptions,
  type JobResult,
} from './job.js';
export { ensureTestImages, IMAGE_NAMES, pushTestImages, type ImageName, type TestImages } from './images.js';
export { TESTBED_REPOSITORY_FINGERPRINT, TESTBED_REPOSITORY_KEY } from './inventory.js';
export {
  GITLAB_RUNNER_VERSION,
  GitlabRunnerMissingError,
  runnerBinary,
  type RunnerBinary,
} from './gitlab-runner.js';

// Local processes (zx underneath): the same helpers the fleet uses.
export {
  isAlive,
  listProcesses,
  processInfo,
  resultOf,
  sh,
  signal,
  spawnDaemon,
  terminate,
  waitFor,
  type RunResult,
} from './procs.js';
