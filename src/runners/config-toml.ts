// Serialises a node's gitlab-runner config.toml with a TOML library (smol-toml) and checks it by parsing it back.
import { parse as parseToml, stringify as stringifyToml, TomlError, type TomlTable } from 'smol-toml';
import { InputError } from '../errors.js';
import { EXECUTOR_SPECS } from '../executors.js';
import { CA_FILE_NAME, HOST_RUNNER_CA } from '../docker/ca.js';
import { insecureRegistries } from '../docker/docker-plan.js';
import type {
  CacheConfig,
  DindService,
  Executor,
  Inventory,
  NodeSpec,
  Placement,
  PullPolicy,
  SecretRef,
} from '../inventory/types.js';
import { secretValue } from '../secrets.js';
import type { RunnerRecord } from './records.js';

export const HELPER_IMAGE_REPOSITORY = 'registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper';

// Debian (dpkg --print-architecture) and kernel (uname -m) names → the helper image's tag prefix.
const HELPER_ARCH: Record<string, string> = {
  arm64: 'arm64',
  aarch64: 'arm64',
  amd64: 'x86_64',
  x86_64: 'x86_64',
  armhf: 'arm',
  armel: 'arm',
  armv7l: 'arm',
  armv6l: 'arm',
  arm: 'arm',
};

/** GitLab's helper image; `{arch}` is the node's helper architecture. */
export const DEFAULT_HELPER_IMAGE = `${HELPER_IMAGE_REPOSITORY}:{arch}-v\${CI_RUNNER_VERSION}`;

/**
 * The helper image for the node's architecture, from `runners.helperImage` (a mirror, an air-gapped registry) or
 * GitLab's. `${CI_RUNNER_VERSION}` is left for gitlab-runner to expand, so the helper always matches the runner
 * binary (advanced-configuration.md, "Helper image"). Without an explicit arch, a runner whose own arch detection
 * fails pulls x86_64 helpers on a Pi.
 */
export function helperImageFor(arch: string, template: string = DEFAULT_HELPER_IMAGE): string {
  const tag = HELPER_ARCH[arch.trim().toLowerCase()];
  if (!tag)
    throw new InputError([
      `node architecture ${JSON.stringify(arch)}: no gitlab-runner helper image is published for it`,
    ]);
  return template.split('{arch}').join(tag);
}

export interface ConfigTomlInput {
  inventory: Inventory;
  node: NodeSpec;
  record: RunnerRecord;
  executor: Executor;
  /** the node's architecture as host facts report it (arm64, armhf, amd64, or uname -m) */
  arch: string;
  /** the MTU the node's job networks can carry (src/docker/mtu.ts); absent: Docker's default */
  mtu?: number;
  /** where this config.toml runs: a runner pod, or the gitlab-runner service on the node */
  placement: Placement;
}

interface DockerSection {
  image: string;
  helperImage: string;
  privileged: boolean;
  volumes: string[];
  /** absent: gitlab-runner's default */
  pullPolicy: PullPolicy[] | null;
  services: { name: string; alias: string; command: string[] }[];
  /** per job container (runners.jobResources); absent: unlimited */
  memory: string | null;
  cpus: string | null;
  /** `host:address` for gitlab.hostAliases: the job, its services and the helper do not read the node's /etc/hosts */
  extraHosts: string[];
  /** network_mtu: the per-build network's MTU (gitlab-runner uses it only with FF_NETWORK_PER_BUILD) */
  networkMtu: number | null;
}

/** `[runners.cache]` with `[runners.cache.s3]`, the keys resolved: this text goes only into Secrets and root-only files. */
interface CacheSection {
  shared: boolean;
  path: string | null;
  s3: {
    serverAddress: string;
    accessKey: string;
    secretKey: string;
    bucketName: string;
    bucketLocation: string | null;
    insecure: boolean;
  };
}

function cacheSection(
  cache: CacheConfig | undefined,
  resolve: (ref: SecretRef) => string,
): CacheSection | null {
  if (!cache) return null;
  return {
    shared: cache.shared,
    path: cache.path ?? null,
    s3: {
      serverAddress: cache.serverAddress,
      accessKey: resolve(cache.accessKey),
      secretKey: resolve(cache.secretKey),
      bucketName: cache.bucketName,
      bucketLocation: cache.bucketLocation ?? null,
      insecure: cache.insecure,
    },
  };
}

/**
 * gitlab-runner's metrics listener (`listen_address`, read once when it starts). It also serves /debug/pprof and
 * /debug/jobs/list (commands/multi.go), so a host runner listens on `runners.metrics.address` (default 127.0.0.1:
 * the node only; status reads it there); a pod on every address of its own network namespace, which is the pod IP
 * that Prometheus and status reach.
 */
const LISTEN_ADDRESS: Record<Placement, (m: NonNullable<Inventory['runners']['metrics']>) => string> = {
  cluster: (m) => `:${m.port}`,
  host: (m) => `${m.address.includes(':') ? `[${m.address}]` : m.address}:${m.port}`,
};

export function metricsListenAddress(inv: Inventory, placement: Placement): string | null {
  return inv.runners.metrics ? LISTEN_ADDRESS[placement](inv.runners.metrics) : null;
}

/** The services config.toml starts for every dind job, by runners.dindService. */
const DIND_SERVICE_DEFAULTS: Record<
  DindService,
  (image: string, registries: string[], mtu: number | undefined) => DockerSection['services']
> = {
  // --mtu: the service's dockerd makes its bridge 1500 whatever its own eth0 carries; builds then announce a TCP MSS
  // the way back cannot carry, and downloads stall where a tunnel drops the larger packets silently.
  runner: (image, registries, mtu) => [
    {
      name: image,
      alias: 'docker',
      command: [
        ...registries.map((reg) => `--insecure-registry=${reg}`),
        ...(mtu === undefined ? [] : [`--mtu=${mtu}`]),
      ],
    },
  ],
  job: () => [],
};

/** gitlab.hostAliases as Docker's ExtraHosts (`name:address`), sorted by name so a rerun renders the same text. */
export function extraHosts(aliases: Record<string, string>): string[] {
  return Object.keys(aliases)
    .sort()
    .map((name) => `${name}:${aliases[name]}`);
}

/**
 * Where the runner finds the private CA (gitlab.caFile) that config.toml's `tls-ca-file` names: in the pod, the
 * config Secret's copy (mounted at /secrets); on a host, the file the host plan writes (src/docker/ca.ts).
 */
export const RUNNER_CA_FILE: Record<Placement, string> = {
  cluster: `/secrets/${CA_FILE_NAME}`,
  host: HOST_RUNNER_CA,
};

/**
 * With the private CA, the dind service's dockerd (which never reads the node's) gets the node's certs.d, where the
 * host plan put the CA for each registry. The path is resolved by the node's dockerd: the snap's resolves
 * /etc/docker inside its own layout (canonical/docker-snap snap/snapcraft.yaml), so it mounts its own certs.d.
 */
export const DIND_CERTS_VOLUME = '/etc/docker/certs.d:/etc/docker/certs.d:ro';

/** What goes into config.toml, before it becomes TOML. */
export function configTomlData(input: ConfigTomlInput) {
  const { inventory: inv, node, record, executor } = input;
  if (record.node !== node.name) throw new Error(`record for ${record.node} given for node ${node.name}`);
  const r = inv.runners;
  const spec = EXECUTOR_SPECS[executor];
  const docker: DockerSection | null = spec.docker && {
    image: r.jobImage,
    helperImage: helperImageFor(input.arch, r.helperImage),
    privileged: spec.docker.privileged,
    volumes: [
      ...spec.docker.volumes,
      ...(inv.gitlab.ca && spec.docker.dindService ? [DIND_CERTS_VOLUME] : []),
    ],
    pullPolicy: r.pullPolicy ?? null,
    memory: r.jobResources?.memory ?? null,
    cpus: r.jobResources?.cpus ?? null,
    extraHosts: extraHosts(inv.gitlab.hostAliases),
    networkMtu: input.mtu ?? null,
    // The job's dockerd is not the host's: it must be told about the plain-HTTP registries itself.
    services: spec.docker.dindService
      ? DIND_SERVICE_DEFAULTS[r.dindService](
          r.dindImage,
          insecureRegistries(inv.gitlab.registries, inv.gitlab.ca),
          input.mtu,
        )
      : [],
  };
  return {
    node: node.name,
    concurrent: r.concurrent,
    checkInterval: r.checkInterval,
    listenAddress: metricsListenAddress(inv, input.placement),
    runner: {
      name: r.description.split('{node}').join(node.name),
      url: inv.gitlab.url,
      token: record.token,
      // gitlab-runner 17.9 common/config.go RunnerCredentials.TLSCAFile (`tls-ca-file`); the runner also hands the
      // chain it verified to every job as CI_SERVER_TLS_CA_FILE (common/build.go GetCITLSVariables).
      tlsCaFile: inv.gitlab.ca ? RUNNER_CA_FILE[input.placement] : null,
      executor: spec.runner.executor,
      shell: spec.runner.shell,
      environment: [...spec.environment],
      docker,
      cache: cacheSection(r.cache, (ref) => secretValue(inv, ref)),
    },
  };
}

/** config.toml as gitlab-runner reads it (its config.go field names); absent fields are omitted. */
function configTomlDocument(data: ReturnType<typeof configTomlData>): TomlTable {
  const { runner } = data;
  const docker = runner.docker && {
    image: runner.docker.image,
    helper_image: runner.docker.helperImage,
    privileged: runner.docker.privileged,
    volumes: runner.docker.volumes,
    tls_verify: false,
    disable_cache: false,
    ...(runner.docker.pullPolicy ? { pull_policy: runner.docker.pullPolicy } : {}),
    ...(runner.docker.memory ? { memory: runner.docker.memory } : {}),
    ...(runner.docker.cpus ? { cpus: runner.docker.cpus } : {}),
    ...(runner.docker.extraHosts.length > 0 ? { extra_hosts: runner.docker.extraHosts } : {}),
    ...(runner.docker.networkMtu !== null ? { network_mtu: runner.docker.networkMtu } : {}),
    ...(runner.docker.services.length > 0
      ? {
          services: runner.docker.services.map((s) => ({ name: s.name, alias: s.alias, command: s.command })),
        }
      : {}),
  };
  // gitlab-runner 17.9 common/config.go: CacheConfig (Type, Path, Shared) and CacheS3Config, spelled as its toml tags.
  const cache = runner.cache && {
    Type: 's3',
    ...(runner.cache.path ? { Path: runner.cache.path } : {}),
    Shared: runner.cache.shared,
    s3: {
      ServerAddress: runner.cache.s3.serverAddress,
      AccessKey: runner.cache.s3.accessKey,
      SecretKey: runner.cache.s3.secretKey,
      BucketName: runner.cache.s3.bucketName,
      ...(runner.cache.s3.bucketLocation ? { BucketLocation: runner.cache.s3.bucketLocation } : {}),
      Insecure: runner.cache.s3.insecure,
      // What AuthType() infers from the three values anyway; said outright so that nothing falls back to IAM.
      AuthenticationType: 'access-key',
    },
  };
  return {
    ...(data.listenAddress ? { listen_address: data.listenAddress } : {}),
    concurrent: data.concurrent,
    check_interval: data.checkInterval,
    runners: [
      {
        name: runner.name,
        url: runner.url,
        token: runner.token,
        ...(runner.tlsCaFile ? { 'tls-ca-file': runner.tlsCaFile } : {}),
        executor: runner.executor,
        ...(runner.shell ? { shell: runner.shell } : {}),
        ...(runner.environment.length > 0 ? { environment: runner.environment } : {}),
        ...(docker ? { docker } : {}),
        ...(cache ? { cache } : {}),
      },
    ],
  };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE_SURROGATE.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (value && typeof value === 'object') return Object.values(value).some(hasLoneSurrogate);
  return false;
}

/**
 * Renders config.toml for one node: serialised by smol-toml (it escapes what TOML forbids raw, such as DEL and the
 * other control characters), then parsed back by it (TOML 1.0, as strict as gitlab-runner's BurntSushi/toml about
 * strings) and checked. Throws InputError, never quoting the token, when that fails.
 */
export function renderConfigToml(input: ConfigTomlInput): string {
  const data = configTomlData(input);
  const doc = configTomlDocument(data);
  // A YAML "\ud800" escape makes a lone surrogate: it has no UTF-8 encoding, so config.toml cannot carry it.
  // The node name is a Kubernetes node name (letters, digits, - and .): safe in a comment.
  const text = `# Written by runner-fleet for node ${JSON.stringify(data.node)}; edits are overwritten on the next run.\n${stringifyToml(doc)}`;
  // The serialiser would silently turn one into U+FFFD; refuse instead.
  if (hasLoneSurrogate(doc)) {
    throw new InputError(
      [
        `config.toml for ${input.node.name}: a value holds a lone UTF-16 surrogate (a YAML \\u escape of half a character)`,
      ],
      'config.toml failed',
    );
  }
  checkConfigToml(text, data, `config.toml for ${input.node.name}`);
  return text;
}

function checkConfigToml(text: string, data: ReturnType<typeof configTomlData>, where: string): void {
  let doc: TomlTable;
  try {
    doc = parseToml(text);
  } catch (err) {
    // The message names a line, never quotes it: the line may hold the token.
    const line = err instanceof TomlError ? ` (line ${err.line})` : '';
    throw new InputError([`${where}: is not valid TOML${line}`], 'config.toml failed');
  }
  const issues: string[] = [];
  const expect = (ok: boolean, what: string) => {
    if (!ok) issues.push(`${where}: ${what}`);
  };
  expect(doc.concurrent === data.concurrent, 'has the wrong concurrent');
  expect(doc.check_interval === data.checkInterval, 'has the wrong check_interval');
  expect((doc.listen_address ?? null) === data.listenAddress, 'has the wrong listen_address');
  const runners = doc.runners;
  expect(Array.isArray(runners) && runners.length === 1, 'must hold exactly one [[runners]] block');
  const runner = Array.isArray(runners) ? (runners[0] as TomlTable | undefined) : undefined;
  if (runner) {
    expect(runner.url === data.runner.url, 'has the wrong url');
    expect(runner.token === data.runner.token, "does not carry the node's runner token");
    expect(runner.executor === data.runner.executor, `must use executor ${data.runner.executor}`);
    expect(
      (runner['tls-ca-file'] ?? null) === data.runner.tlsCaFile,
      'has the wrong tls-ca-file (gitlab.caFile)',
    );
    if (data.runner.cache) {
      const s3 = (runner.cache as TomlTable | undefined)?.s3 as TomlTable | undefined;
      expect(
        s3?.BucketName === data.runner.cache.s3.bucketName &&
          s3?.SecretKey === data.runner.cache.s3.secretKey,
        'has no [runners.cache.s3] with the bucket and keys',
      );
    }
    if (data.runner.docker) {
      const d = runner.docker as TomlTable | undefined;
      expect(typeof d === 'object' && d !== null, 'has no [runners.docker] section');
      if (d) {
        expect(
          d.privileged === data.runner.docker.privileged,
          `must set privileged = ${data.runner.docker.privileged}`,
        );
        expect(
          d.helper_image === data.runner.docker.helperImage,
          "has a helper_image that does not match the node's architecture",
        );
        expect(typeof d.image === 'string', 'has no default job image');
      }
    }
  }
  if (issues.length > 0) throw new InputError(issues, 'config.toml failed');
}
