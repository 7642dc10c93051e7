// The inventory file's one definition (valibot): allowed keys, types, defaults and each field's `path: message`.
// Cross-field checks live in rules.ts; turning the checked file into an Inventory lives in schema.ts.
import { isIP } from 'node:net';
import * as v from 'valibot';
import { listenAddressProblem, registryProblem } from './addresses.js';

export const EXECUTORS = ['shell', 'dind', 'dood'] as const;
export const PLACEMENTS = ['cluster', 'host'] as const;
export const DOCKER_CHOICES = ['apt', 'snap', 'auto'] as const;
export const RUNNER_TYPES = ['instance_type', 'group_type', 'project_type'] as const;
export const ACCESS_LEVELS = ['not_protected', 'ref_protected'] as const;
/** gitlab-runner's `[runners.docker] pull_policy` values, spelled as it spells them (docs: "Configure how runners pull images"). */
export const PULL_POLICIES = ['always', 'if-not-present', 'never'] as const;
/**
 * dind executor: `runner` starts the Docker-in-Docker service (told the registries) for every job from config.toml;
 * `job` leaves it to the jobs that declare it (ci-snippet's does), saving a privileged dockerd per job that does
 * not build images, at the price of jobs whose own `services:` entry lacks `--insecure-registry`.
 */
export const DIND_SERVICES = ['runner', 'job'] as const;

export const DEFAULT_IMAGES = {
  image: 'gitlab/gitlab-runner:alpine-v17.11.0',
  /** with runners.version */
  versionedImage: 'gitlab/gitlab-runner:alpine-v{version}',
  jobImage: 'alpine:3.20',
  dindImage: 'docker:27-dind',
  dockerCliImage: 'docker:27-cli',
};

export const GITLAB_RUNNER_REPOSITORY = {
  url: 'https://packages.gitlab.com/runner/gitlab-runner',
  key: { kind: 'url', url: 'https://packages.gitlab.com/runner/gitlab-runner/gpgkey' } as PackageKey,
  // GitLab's package repository signing key (docs.gitlab.com/omnibus/update/package_signatures).
  fingerprint: 'F6403F6544A38863DAA0B6E03F01618A51312F3F',
};
export type PackageKey = { kind: 'url'; url: string } | { kind: 'file'; path: string };

/** Limits of the systems the values end up in, checked before anything is contacted. */
export const LIMITS = {
  /** GitLab app/models/ci/runner.rb: `validates :description, length: { maximum: 1024 }` */
  description: 1024,
  /** GitLab Ci::Runner::TAG_LIST_MAX_LENGTH */
  tags: 50,
  /** GitLab app/models/ci/tag.rb: `validates :name, length: { maximum: 255 }` */
  tag: 255,
  /** Kubernetes node names are DNS subdomains (253); the config Secret's key `<node>.config.toml` must fit 253 too */
  nodeName: 253 - '.config.toml'.length,
  /** Kubernetes: a Secret holds at most 1 MiB (etcd's request limit) */
  secretBytes: 1024 * 1024,
  /** distribution/reference: 255 for the name, 128 for the tag, plus a digest; generous, only to bound sizes */
  image: 512,
  /** YAML anchors an inventory may dereference: enough for shared defaults, far from an alias bomb */
  aliases: 100,
} as const;

// ---- value descriptions shared by every message ----

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const SURROGATE_MESSAGE =
  'holds half a UTF-16 character (a YAML \\u escape of a lone surrogate); no file can carry it';

/** Characters as GitLab (Ruby) and Kubernetes count them: code points, not UTF-16 units. */
export function charCount(value: string): number {
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

/** A value as messages show it: short, and never a whole pasted secret. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

const got = (issue: { input: unknown }): string => describe(issue.input);

// ---- field builders: each one is a valibot schema whose messages are runner-fleet's ----

/**
 * A mapping that allows only `entries`' keys: every unknown key is its own issue listing the allowed ones
 * (objectWithRest with a never rest reports them all; strictObject stops at the first). `required` gives a missing
 * key a more helpful message than "is required".
 */
function strict<E extends v.ObjectEntries>(entries: E, required: Partial<Record<keyof E, string>> = {}) {
  const allowed = Object.keys(entries).join(', ');
  const object = v.objectWithRest(entries, v.never(`unknown key (allowed: ${allowed})`), (issue) => {
    const key = issue.path?.[0]?.key;
    if (typeof key === 'string') return required[key as keyof E] ?? 'is required';
    return `expected a mapping, got ${got(issue)}`;
  });
  // A list is an object to JavaScript; to the inventory it is the wrong shape.
  const mapping = v.pipe(
    v.unknown(),
    v.check(
      (x) => !Array.isArray(x),
      (issue) => `expected a mapping, got ${got(issue)}`,
    ),
    object,
  );
  // The rest schema only ever holds `never`: the output is exactly the entries (no index signature).
  return mapping as unknown as v.SchemaWithPipe<
    readonly [v.UnknownSchema, v.CheckAction<unknown, string>, v.ObjectSchema<E, undefined>]
  >;
}

interface StringOptions {
  pattern?: RegExp;
  hint?: string;
  max?: number;
}

/** A non-empty string with no lone surrogate, at most `max` characters, matching `pattern`; checked in that order. */
function str(opts: StringOptions = {}) {
  const { pattern, hint, max } = opts;
  return v.pipe(
    v.custom<string>(
      (x) => typeof x === 'string' && x.trim() !== '',
      (issue) => `expected a non-empty string, got ${got(issue)}`,
    ),
    v.check((x) => !LONE_SURROGATE.test(x), SURROGATE_MESSAGE),
    v.check(
      (x) => max === undefined || charCount(x) <= max,
      (issue) => `is ${charCount(issue.input)} characters long; at most ${max} allowed`,
    ),
    v.check((x) => pattern === undefined || pattern.test(x), hint ?? `does not match ${pattern}`),
  );
}

function int(min: number, max: number) {
  return v.custom<number>(
    (x) => typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max,
    (issue) => `expected an integer from ${min} to ${max}, got ${got(issue)}`,
  );
}

function bool() {
  return v.boolean((issue) => `expected true or false, got ${got(issue)}`);
}

function oneOf<const T extends readonly string[]>(choices: T) {
  return v.picklist(choices, (issue) => `expected ${choices.join(' | ')}, got ${got(issue)}`);
}

/** One string or a list of them; a single string is a list of one (and its problems name the key, not `[0]`). */
function stringList<T extends string>(item: v.GenericSchema<unknown, T>) {
  const list = v.array(item, (issue) => `expected a list of strings, got ${got(issue)}`);
  const single = v.pipe(
    item,
    v.transform((s: T) => [s]),
  );
  return v.lazy((input) => (typeof input === 'string' ? single : list));
}

/** A problem-returning check (as addresses.ts writes them) as a valibot check. */
function problem(find: (value: string) => string | undefined) {
  return v.rawCheck<string>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const message = find(dataset.value);
    if (message !== undefined) addIssue({ message });
  });
}

/** A secret given by reference (`env:NAME` or `file:PATH`); `path` is the inventory path that named it. */
export interface SecretRef {
  ref: string;
  path: string;
}

function secret(path: string) {
  return v.pipe(
    // Never echo the value: it may be a pasted token.
    v.custom<string>(
      (x) => typeof x === 'string' && /^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$/.test(x),
      'expected a reference `env:NAME` or `file:PATH` (secrets are never written inline)',
    ),
    v.transform((ref): SecretRef => ({ ref, path })),
  );
}

// ---- patterns ----

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** RFC 1123 label: a Kubernetes namespace name (no dots, at most 63 characters). */
const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A label key: optional DNS-subdomain prefix (at most 253) and `/`, then a name of at most 63 characters. */
const LABEL_KEY =
  /^(?:(?=[a-z0-9.-]{1,253}\/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(?=[A-Za-z0-9._-]{1,63}$)[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;
export const HTTP_URL = /^https?:\/\/[^\s/]+(\/[^\s]*)?$/;
/** A host name as /etc/hosts and Kubernetes hostAliases take it: DNS labels of letters, digits and -, dot-separated. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/;
/** The least an IPv4 link must carry (RFC 791); dockerd refuses less than 68, a lower value is a typo anyway. */
export const MIN_MTU = 576;
/** An image reference as the runner passes it on: no white space or quotes; `{arch}` and `${CI_RUNNER_VERSION}` may stand in it. */
const IMAGE_REF = /^[^\s"'\\]+$/;

/**
 * `gitlab.url`: http(s), no user or password in it. Credentials in the URL would be printed in progress, the
 * report and status, and sent to every request's logs: refused before anything is contacted, and never echoed.
 */
function gitlabUrlProblem(value: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return 'expected an http:// or https:// URL';
  }
  if (parsed.username !== '' || parsed.password !== '' || /^https?:\/\/[^/]*@/.test(value)) {
    return 'must not contain a user name or password (user:pass@…); give GitLab a token with accessToken, runnerToken or registrationToken';
  }
  if (parsed.search !== '' || parsed.hash !== '')
    return 'expected the GitLab base URL, without ?query or #fragment';
  return undefined;
}

/** `gitlab.hostAliases` values: an IPv4 or IPv6 address, as a Pod's hostAliases[].ip must be. */
function ipProblem(value: string): string | undefined {
  return isIP(value) === 0 ? 'expected an IPv4 or IPv6 address' : undefined;
}

/** GitLab splits tag_list on commas, and keeps at most 255 characters per tag. */
function tagProblem(tag: string): string | undefined {
  if (!/^[^,\s][^,]*$/.test(tag)) return 'a tag cannot contain a comma or start with a space';
  if (charCount(tag) > LIMITS.tag) return `a tag is at most ${LIMITS.tag} characters (GitLab's limit)`;
  return undefined;
}

const image = () => str({ max: LIMITS.image });

// ---- the inventory ----

const gitlab = strict(
  {
    url: v.pipe(
      str({ pattern: HTTP_URL, hint: 'expected an http:// or https:// URL', max: 2048 }),
      problem(gitlabUrlProblem),
    ),
    registry: v.pipe(
      stringList(v.pipe(str(), problem(registryProblem))),
      v.minLength(1, 'is required (one or more host:port)'),
    ),
    accessToken: v.optional(secret('gitlab.accessToken')),
    runnerToken: v.optional(secret('gitlab.runnerToken')),
    registrationToken: v.optional(secret('gitlab.registrationToken')),
    /** `file:PATH`: the PEM CA that GitLab's and the registries' certificates chain to (read by schema.ts) */
    caFile: v.optional(
      str({ pattern: /^file:.+$/, hint: 'expected file:PATH naming a PEM CA certificate', max: 4096 }),
    ),
    runnerType: v.optional(oneOf(RUNNER_TYPES), 'instance_type'),
    groupId: v.optional(int(1, Number.MAX_SAFE_INTEGER)),
    projectId: v.optional(int(1, Number.MAX_SAFE_INTEGER)),
    /** seconds per API request */
    timeout: v.optional(int(1, 600), 30),
    /**
     * name → address for names only the nodes resolve (their /etc/hosts, a LAN DNS the pods do not ask): the runner
     * pods' hostAliases and the docker executor's extra_hosts (jobs, their services and the helper).
     */
    hostAliases: v.optional(
      v.record(
        str({ pattern: HOST_NAME, hint: 'expected a host name (letters, digits, - and .)' }),
        v.pipe(str(), problem(ipProblem)),
        (issue) => `expected a mapping of host names to addresses, got ${got(issue)}`,
      ),
      {},
    ),
  },
  { registry: 'is required (one or more host:port)' },
);

const ssh = strict({
  user: v.optional(str(), 'pi'),
  port: v.optional(int(1, 65535), 22),
  identityFile: v.optional(str(), '~/.ssh/id_ed25519'),
  knownHosts: v.optional(str(), '~/.ssh/known_hosts'),
  /** seconds */
  connectTimeout: v.optional(int(1, 300), 20),
});

const node = strict({
  name: str({
    pattern: NODE_NAME,
    hint: 'expected a Kubernetes node name (lowercase letters, digits, - and .)',
    max: LIMITS.nodeName,
  }),
  host: str({ pattern: /^[^\s@/]+$/, hint: 'expected a hostname or address' }),
  // absent: from ssh
  port: v.optional(int(1, 65535)),
  user: v.optional(str()),
  identityFile: v.optional(str()),
  knownHosts: v.optional(str()),
  docker: v.optional(oneOf(DOCKER_CHOICES), 'auto'),
  /** write containerd's hosts.toml for the registries (microk8s pulls through containerd, not dockerd) */
  microk8s: v.optional(bool(), true),
  /** the MTU the dind service's dockerd gives its networks; absent: read from the node (src/docker/mtu.ts) */
  mtu: v.optional(int(MIN_MTU, 9000)),
});

/** microk8s's pod network (Calico's and flannel's default there): 10.1.0.0/16. */
export const DEFAULT_POD_CIDR = '10.1.0.0/16';

/** `kubernetes.podCidr`: an IPv4 network written as iptables prints it (no host bits), so a rerun finds its rules. */
function podCidrProblem(value: string): string | undefined {
  const m = value.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || bits < 1 || bits > 32)
    return 'expected an IPv4 network such as 10.1.0.0/16';
  const ip = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
  const host = bits === 32 ? 0 : (ip & (0xffffffff >>> bits)) >>> 0;
  if (host !== 0) {
    const net = (ip - host) >>> 0;
    return `has host bits set; the network is ${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${bits}`;
  }
  return undefined;
}

/** Where render --seal has kubeseal find the Sealed Secrets controller: kubeseal's own defaults unless given. */
const sealedSecrets = strict({
  controllerName: v.optional(
    str({
      pattern: DNS_LABEL,
      hint: 'expected a Service name (lowercase letters, digits and -, at most 63 characters)',
    }),
    'sealed-secrets-controller',
  ),
  controllerNamespace: v.optional(
    str({
      pattern: DNS_LABEL,
      hint: 'expected a Kubernetes namespace name (lowercase letters, digits and -, at most 63 characters)',
    }),
    'kube-system',
  ),
});

const kubernetes = strict({
  kubeconfig: v.optional(str()),
  context: v.optional(str()),
  fromNode: v.optional(str()),
  namespace: v.optional(
    str({
      pattern: DNS_LABEL,
      hint: 'expected a Kubernetes namespace name (lowercase letters, digits and -, at most 63 characters)',
    }),
    'gitlab-runner',
  ),
  /** seconds */
  rolloutTimeout: v.optional(int(1, 3600), 300),
  /** seconds any one Kubernetes request may take (a frozen apiserver fails the run instead of hanging it) */
  requestTimeout: v.optional(int(1, 600), 30),
  /** label put on inventory nodes; the DaemonSets select it. Default: defaultNodeLabel(namespace), one per fleet */
  nodeLabel: v.optional(
    str({
      pattern: LABEL_KEY,
      hint: 'expected a Kubernetes label key (optional DNS prefix of at most 253 characters and /, then at most 63 letters, digits, -, _ or .)',
    }),
  ),
  /**
   * The pods' address range on the nodes (microk8s: kube-proxy's --cluster-cidr). Where Docker set the FORWARD policy
   * to DROP, runner-fleet accepts this range's traffic in DOCKER-USER (src/docker/forwarding.ts).
   */
  podCidr: v.optional(v.pipe(str(), problem(podCidrProblem)), DEFAULT_POD_CIDR),
  /** the controller render --seal fetches the sealing certificate from (the Helm chart names it sealed-secrets) */
  sealedSecrets: v.optional(sealedSecrets, {}),
});

/**
 * `runners.packageRepository`: the apt repository gitlab-runner is installed from with `placement: host`
 * (`deb [signed-by=…] <url>/<os>/ <codename> main`); GitLab's unless a mirror is named. The key is where
 * runner-fleet fetches the signing key (the nodes never fetch it themselves), checked against the fingerprint.
 */
const packageRepository = strict({
  url: v.optional(
    v.pipe(
      str({ pattern: HTTP_URL, hint: 'expected an http:// or https:// URL (the part before /<os>/)' }),
      v.transform((u) => u.replace(/\/+$/, '')),
    ),
    GITLAB_RUNNER_REPOSITORY.url,
  ),
  // A relative file: path is resolved against the inventory's folder by schema.ts.
  key: v.optional(
    v.pipe(
      str({ pattern: /^(https?:\/\/\S+|file:.+)$/, hint: 'expected an http(s):// URL or file:PATH' }),
      v.transform((k): PackageKey =>
        k.startsWith('file:') ? { kind: 'file', path: k.slice(5) } : { kind: 'url', url: k },
      ),
    ),
  ),
  /** the key's primary fingerprint, 40 uppercase hex digits; a fetched key that does not match is refused */
  fingerprint: v.optional(
    v.pipe(
      str({
        pattern: /^\s*(?:[0-9A-Fa-f]{4}\s*){10}$|^\s*[0-9A-Fa-f]{64}\s*$/,
        hint: "expected the key's full fingerprint (40 hex digits, spaces allowed)",
      }),
      v.transform((f) => f.replace(/\s+/g, '').toUpperCase()),
    ),
  ),
});

/** A Kubernetes quantity as the runner pod's resources take it: `250m`, `0.5`, `64Mi`, `1G`. */
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const quantity = (what: string) =>
  str({
    pattern: QUANTITY,
    hint: `expected a Kubernetes quantity for ${what} (e.g. ${what === 'cpu' ? '250m or 0.5' : '64Mi or 1Gi'})`,
  });
const resourceList = strict({ cpu: v.optional(quantity('cpu')), memory: v.optional(quantity('memory')) });

/** Docker's byte sizes (units.RAMInBytes: b, k, m, g, case-insensitive): `[runners.docker] memory`, log-opts max-size. */
export const DOCKER_SIZE = /^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$/;

/** `runners.cache`: S3-compatible shared cache, `[runners.cache]` + `[runners.cache.s3]` in config.toml. */
const cache = strict(
  {
    /** gitlab-runner's ServerAddress: host[:port], no scheme (`insecure` picks http) */
    serverAddress: str({
      pattern: /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$/,
      hint: "expected host or host:port without a scheme (e.g. minio.lan:9000), as gitlab-runner's ServerAddress",
    }),
    /** S3 bucket naming rules: 3–63 lowercase letters, digits, dots and hyphens */
    bucketName: str({
      pattern: /^(?=.{3,63}$)[a-z0-9][a-z0-9.-]*[a-z0-9]$/,
      hint: 'expected an S3 bucket name (3–63 lowercase letters, digits, . and -)',
    }),
    bucketLocation: v.optional(
      str({ pattern: /^[a-z0-9-]+$/, hint: 'expected an S3 region name (e.g. us-east-1)' }),
    ),
    /** plain HTTP to the S3 server (gitlab-runner's Insecure) */
    insecure: v.optional(bool(), false),
    accessKey: secret('runners.cache.accessKey'),
    secretKey: secret('runners.cache.secretKey'),
    /** a prefix inside the bucket */
    path: v.optional(
      str({ pattern: /^[A-Za-z0-9._/-]+$/, hint: 'expected a path of letters, digits, ., _, / and -' }),
    ),
    /** one cache for every node's runner (gitlab-runner's Shared); without it each runner keys the cache by its own token */
    shared: v.optional(bool(), true),
  },
  { accessKey: 'is required (env:NAME or file:PATH)', secretKey: 'is required (env:NAME or file:PATH)' },
);

/** `runners.metrics`: gitlab-runner's Prometheus endpoint (top-level `listen_address`). */
const metrics = strict({
  port: v.optional(int(1, 65535), 9252),
  /**
   * where host runners (placement host) listen: gitlab-runner serves /debug/pprof and /debug/jobs/list on the same
   * listener, so only this node by default; runner pods always listen on their pod IP
   */
  address: v.optional(v.pipe(str(), problem(listenAddressProblem)), '127.0.0.1'),
  /** prometheus.io/scrape, /port and /path on the runner pods, for annotation-based scrape configs */
  annotations: v.optional(bool(), false),
});

const TOLERATION_OPERATORS = ['Equal', 'Exists'] as const;
const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;
const toleration = strict({
  key: v.optional(str({ pattern: LABEL_KEY, hint: 'expected a Kubernetes taint key' })),
  operator: v.optional(oneOf(TOLERATION_OPERATORS), 'Equal'),
  value: v.optional(
    v.pipe(
      v.string((issue) => `expected a string, got ${got(issue)}`),
      v.maxLength(63, 'is longer than 63 characters'),
    ),
  ),
  effect: v.optional(oneOf(TAINT_EFFECTS)),
  tolerationSeconds: v.optional(int(0, 365 * 24 * 3600)),
});

/** A label value: at most 63 letters, digits, -, _ and ., starting and ending alphanumeric (may be empty). */
const LABEL_VALUE = /^(?:(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** gitlab-runner's version as its packages and images are tagged: 17.9.3 */
const VERSION = /^[0-9]+\.[0-9]+\.[0-9]+$/;

/** `docker.logs`: the log driver of new containers and its rotation (daemon.json log-driver, log-opts). */
export const LOG_DRIVERS = ['json-file', 'local', 'journald', 'syslog', 'none'] as const;
const dockerLogs = strict({
  driver: v.optional(oneOf(LOG_DRIVERS)),
  /** log-opts max-size: a size such as 10m (json-file, local) */
  maxSize: v.optional(
    str({ pattern: DOCKER_SIZE, hint: "expected a size such as 10m or 1g (dockerd's log-opts max-size)" }),
  ),
  /** log-opts max-file */
  maxFile: v.optional(int(1, 100)),
});

/** systemd's shorthands for OnCalendar= (systemd.time(7)); anything else must look like a calendar event. */
export const PRUNE_SCHEDULES = ['hourly', 'daily', 'weekly', 'monthly'] as const;
/**
 * `docker.prune`: a systemd timer on each node that removes what jobs left behind (stopped containers, images no
 * container uses, build cache above keepStorage, anonymous volumes no container uses).
 */
const dockerPrune = strict({
  /** OnCalendar=: a shorthand, or a calendar event such as `*-*-* 03:00:00` or `Sun 04:00` */
  schedule: v.optional(
    str({
      max: 100,
      pattern: /^(hourly|daily|weekly|monthly|[A-Za-z0-9*][A-Za-z0-9 ,:*./~-]*)$/,
      hint: `expected ${PRUNE_SCHEDULES.join(', ')} or a systemd calendar event such as "*-*-* 03:00:00" (OnCalendar=)`,
    }),
    'daily',
  ),
  /** `docker builder prune --keep-storage`: the build cache kept (go-units RAMInBytes: 10GB, 512m) */
  keepStorage: v.optional(
    str({
      pattern: /^[0-9]+(\.[0-9]+)? ?([kKmMgGtTpP][iI]?)?[bB]?$/,
      hint: "expected a size such as 10GB or 512m (docker builder prune's --keep-storage)",
    }),
  ),
  /** `--filter until=`: only what was created longer ago than this Go duration */
  until: v.optional(
    str({
      pattern: /^([0-9]+(\.[0-9]+)?(h|m|s))+$/,
      hint: "expected a duration such as 168h or 24h30m (docker's --filter until=)",
    }),
    '168h',
  ),
});

/** `docker`: what runner-fleet merges into each node's daemon.json besides the registries. */
const docker = strict({
  /** registry-mirrors: pull-through mirrors of Docker Hub, http(s) URLs */
  registryMirrors: v.optional(stringList(v.pipe(str({ max: 2048 }), problem(mirrorProblem))), []),
  logs: v.optional(dockerLogs),
  prune: v.optional(dockerPrune),
});

/** `snap`: how runner-fleet treats the docker and microk8s snaps on the nodes. */
const snap = strict({
  /** hold their refreshes (`snap refresh --hold`); `upgrade-snaps` refreshes them one node at a time */
  holdRefresh: v.optional(bool(), false),
});

/**
 * Why dockerd would refuse `value` in registry-mirrors (moby registry.ValidateMirror): an http(s) URL with a host
 * and without credentials, query or fragment.
 */
function mirrorProblem(value: string): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return 'expected an http:// or https:// URL (e.g. https://mirror.lan:5000)';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return 'expected an http:// or https:// URL (e.g. https://mirror.lan:5000)';
  if (u.username !== '' || u.password !== '') return 'must not contain a user name or password';
  if (u.search !== '' || u.hash !== '' || value.includes('?') || value.includes('#'))
    return 'expected a URL without ?query or #fragment (dockerd refuses them)';
  return undefined;
}

const runners = strict({
  executor: v.optional(oneOf(EXECUTORS), 'dood'),
  placement: v.optional(oneOf(PLACEMENTS), 'cluster'),
  packageRepository: v.optional(packageRepository, {}),
  tags: v.optional(stringList(v.pipe(str(), problem(tagProblem))), []),
  /** `{node}` is replaced by the node name */
  description: v.optional(str({ max: LIMITS.description }), 'runner-fleet {node}'),
  runUntagged: v.optional(bool(), false),
  locked: v.optional(bool(), false),
  accessLevel: v.optional(oneOf(ACCESS_LEVELS), 'not_protected'),
  maximumTimeout: v.optional(int(600, 30 * 24 * 3600)),
  paused: v.optional(bool(), false),
  concurrent: v.optional(int(1, 64), 1),
  checkInterval: v.optional(int(1, 3600), 3),
  /**
   * Seconds apply waits, after the runners are up, for each node's runner to ask GitLab for jobs on its own
   * (0: apply does not wait). A runner that does not is named with the first hop it cannot pass.
   */
  contactTimeout: v.optional(int(0, 3600), 120),
  /** default DEFAULT_IMAGES.image, or .versionedImage with runners.version (schema.ts fills it in) */
  image: v.optional(image()),
  /** default image for docker-executor jobs */
  jobImage: v.optional(image(), DEFAULT_IMAGES.jobImage),
  dindImage: v.optional(image(), DEFAULT_IMAGES.dindImage),
  dockerCliImage: v.optional(image(), DEFAULT_IMAGES.dockerCliImage),
  /**
   * The docker executor's helper image; `{arch}` becomes the node's helper architecture (arm64, arm, x86_64) and
   * `${CI_RUNNER_VERSION}` is left for gitlab-runner. Default: GitLab's registry (see helperImageFor).
   */
  helperImage: v.optional(
    str({
      max: LIMITS.image,
      pattern: IMAGE_REF,
      hint: 'expected an image reference without spaces, e.g. registry.lan:5000/gitlab-runner-helper:{arch}-v${CI_RUNNER_VERSION}',
    }),
  ),
  /** `[runners.docker] pull_policy`, tried in order; absent: gitlab-runner's default (always). Duplicates: rules.ts */
  pullPolicy: v.optional(
    v.pipe(stringList(oneOf(PULL_POLICIES)), v.minLength(1, 'expected at least one policy')),
  ),
  /** dind executor: who starts the Docker-in-Docker service (see DIND_SERVICES) */
  dindService: v.optional(oneOf(DIND_SERVICES), 'runner'),
  /**
   * apply pulls the images the first job needs on every node (beside registration), so that job starts without
   * pulling; false leaves them to the first job (a small SD card, a metered link)
   */
  prepull: v.optional(bool(), true),
  /**
   * One gitlab-runner version for the fleet: `{version}` in image (default gitlab/gitlab-runner:alpine-v{version}) and
   * the host package gitlab-runner=VERSION-1 (held). Absent: the image as given, hosts keep what apt installed.
   */
  version: v.optional(str({ pattern: VERSION, hint: 'expected a gitlab-runner version such as 17.9.3' })),
  cache: v.optional(cache),
  metrics: v.optional(metrics),
  /** the runner pod's requests and limits (the jobs run beside it, in the node's Docker) */
  resources: v.optional(
    strict({
      requests: v.optional(resourceList, { cpu: '50m', memory: '64Mi' }),
      limits: v.optional(resourceList),
    }),
    {},
  ),
  /** `[runners.docker] memory` and `cpus` for each job container */
  jobResources: v.optional(
    strict({
      memory: v.optional(
        str({
          pattern: DOCKER_SIZE,
          hint: "expected a size such as 2g or 512m (gitlab-runner's [runners.docker] memory)",
        }),
      ),
      cpus: v.optional(
        v.pipe(
          v.union(
            [v.pipe(v.number(), v.transform(String)), v.string()],
            (issue) => `expected a number of CPUs such as 1.5, got ${got(issue)}`,
          ),
          v.check(
            (c) => /^[0-9]+(\.[0-9]+)?$/.test(c) && Number(c) > 0,
            (issue) => `expected a number of CPUs above 0 such as 1.5, got ${got(issue)}`,
          ),
        ),
      ),
    }),
  ),
  tolerations: v.optional(
    v.array(toleration, (issue) => `expected a list of tolerations, got ${got(issue)}`),
    [],
  ),
  /** more node labels the runner pods need, besides kubernetes.nodeLabel */
  nodeSelector: v.optional(
    v.record(
      str({ pattern: LABEL_KEY, hint: 'expected a Kubernetes label key' }),
      v.pipe(
        v.string(
          (issue) => `expected a label value as a string (quote true, false and numbers), got ${got(issue)}`,
        ),
        v.regex(
          LABEL_VALUE,
          'expected a label value (at most 63 letters, digits, -, _ and ., alphanumeric at both ends)',
        ),
      ),
      (issue) => `expected a mapping of label keys to values, got ${got(issue)}`,
    ),
    {},
  ),
});

export const inventoryFile = strict(
  {
    gitlab,
    ssh: v.optional(ssh, {}),
    nodes: v.pipe(
      v.array(node, (issue) => `expected a list, got ${got(issue)}`),
      v.minLength(1, 'is empty'),
    ),
    kubernetes: v.optional(kubernetes, {}),
    runners: v.optional(runners, {}),
    docker: v.optional(docker, {}),
    snap: v.optional(snap, {}),
  },
  { nodes: 'is required (a list of nodes)' },
);

/** The inventory file after its fields are checked and defaulted (before rules.ts and path resolution). */
export type InventoryFile = v.InferOutput<typeof inventoryFile>;

export interface FieldIssue {
  /** `runners.tags[0]`, `nodes[2].docker`; empty for the whole file */
  path: string;
  message: string;
}

/** Checks the fields; `output` is trustworthy only where no issue lies on or under a path (rules.ts checks that). */
export function checkFields(raw: unknown): { output: InventoryFile; issues: FieldIssue[] } {
  const reserved: FieldIssue[] = [];
  const result = v.safeParse(inventoryFile, withoutNulls(raw, '', reserved), { abortPipeEarly: true });
  const issues = (result.issues ?? []).map((issue) => ({
    path: formatPath(issue.path),
    message: issue.message,
  }));
  return { output: result.output as InventoryFile, issues: [...reserved, ...issues] };
}

function formatPath(path: readonly { key: unknown }[] | undefined): string {
  let out = '';
  for (const item of path ?? [])
    out = typeof item.key === 'number' ? `${out}[${item.key}]` : joinKey(out, String(item.key));
  return out;
}

const joinKey = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

/** Keys valibot skips as object keys (they name JavaScript internals), so they would otherwise pass unseen. */
const RESERVED_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

/**
 * `key: null` (or `key:` with nothing) means the key is absent, as everywhere in YAML-configured tools; a reserved
 * key is reported here and dropped.
 */
function withoutNulls(value: unknown, path: string, reserved: FieldIssue[]): unknown {
  if (Array.isArray(value)) return value.map((item, i) => withoutNulls(item, `${path}[${i}]`, reserved));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(value)) {
      if (RESERVED_KEYS.has(k)) reserved.push({ path: joinKey(path, k), message: 'unknown key' });
      else if (item !== null && item !== undefined) out[k] = withoutNulls(item, joinKey(path, k), reserved);
    }
    return out;
  }
  return value;
}

/**
 * kubernetes.nodeLabel unless set: a key per fleet (its namespace, a DNS label, is a valid label name), so two fleets
 * on one cluster label their nodes apart and neither's DaemonSet runs on the other's nodes.
 */
export const defaultNodeLabel = (namespace: string) => `fleet.runner-fleet.dev/${namespace}`;
/** The label every fleet shared before labels were per fleet; converge moves a fleet's nodes off it. */
export const LEGACY_NODE_LABEL = 'runner-fleet.dev/runner';
