// Host facts: one remote script gathers everything the plan needs, parsed here into HostFacts.
import { DOCKER_INFO_RECORD, dockerInfoCachedFn } from './docker-info-cache.js';
import type { ForwardingFacts } from './forwarding.js';
import { fileFact, shQuote, type FileFact, type GatherOutput } from './gather.js';
import { mtuGatherScript } from './mtu.js';
import type { PruneFacts } from './prune.js';
import type { SnapFacts } from './snap-holds.js';
import { NODE_CLOCK_GATHER } from '../status/clocks.js';

export { fileFact, sha256, shQuote, type FileFact, type GatherOutput } from './gather.js';

/** Packages that are apt-flavoured Docker: a node with any of them installed has Docker. */
export const APT_DOCKER_PACKAGES = ['docker.io', 'docker-ce', 'moby-engine'] as const;

export interface HostFacts {
  os: string;
  /** Debian architecture name (arm64, armhf, amd64) */
  arch: string;
  /**
   * Docker from apt: docker.io, docker-ce or moby-engine installed (aptDockerPackages), or a dockerd running that is
   * not the snap's (installed some other way, still Docker: never installed over)
   */
  aptDocker: boolean;
  /** which of APT_DOCKER_PACKAGES dpkg says are installed */
  aptDockerPackages?: string[];
  snapDocker: boolean;
  snapd: boolean;
  /** the running dockerd, if any */
  dockerd?: { pid: number; configFile?: string; /** found through the snap's pidfile */ snap?: boolean };
  aptDaemonJson: FileFact;
  snapDaemonJson: FileFact;
  /** the file named by the running dockerd's --config-file, when it is neither of the above */
  runningDaemonJson?: FileFact;
  /** `docker info` output, when the daemon answers */
  docker?: {
    version: string;
    indexConfigs: Record<string, { Secure?: boolean }>;
    insecureCidrs: string[];
    /** registry-mirrors the running dockerd loaded (normalised with a trailing slash, as dockerd prints them) */
    mirrors?: string[];
    /** the default log driver of new containers (loaded when dockerd started) */
    loggingDriver?: string;
  };
  dockerInfoError?: string;
  microk8s: boolean;
  /** per daemon.json path: the file where runner-fleet records which insecure-registries entries it added */
  registryState?: Record<string, FileFact>;
  /**
   * Paths of the files the plan may write (daemon.json, its state file, hosts.toml) that exist but are not regular
   * files, with what they are (`directory`): the gather prints them as absent, and no write can replace them.
   */
  notRegular?: Record<string, string>;
  /** containerd hosts.toml per registry, on microk8s nodes */
  hostsToml: Record<string, FileFact>;
  /** IPv4 forwarding and the iptables FORWARD policy and DOCKER-USER rules (src/docker/forwarding.ts), as gatherFacts reads them */
  forwarding?: ForwardingFacts;
  /** docker.prune's timer as gatherFacts reads it (src/docker/prune.ts) */
  prune?: PruneFacts;
  /** the docker and microk8s snaps and their refresh holds (src/docker/snap-holds.ts) */
  snaps?: SnapFacts;
  /** this machine's clock (ms) when the gather returned: the node's own clock, read in it, is compared to it */
  gatheredAt?: number;
  /** the node's clock (ms) as its gather ended (src/status/clocks.ts); undefined when its `date` cannot say */
  nodeClockMs?: number;
  /** every section and file the gather printed, for the sections other modules add (src/host-runner/facts.ts) */
  gathered?: GatherOutput;
}

export const APT_DAEMON_JSON = '/etc/docker/daemon.json';
export const SNAP_DAEMON_JSON = '/var/snap/docker/current/config/daemon.json';
export const MICROK8S_CERTS_D = '/var/snap/microk8s/current/args/certs.d';

/**
 * Beside daemon.json (root, 0600): the insecure-registries entries runner-fleet added, so that it removes only those
 * once the inventory no longer lists them. A file of its own, not a key in daemon.json: dockerd refuses to start
 * with a key it does not know, and a user editing daemon.json by hand keeps or drops a marker without noticing.
 */
export function registryStatePath(daemonJsonPath: string): string {
  return `${daemonJsonPath}.runner-fleet.json`;
}

export function hostsTomlPath(registry: string): string {
  return `${MICROK8S_CERTS_D}/${registry}/hosts.toml`;
}

export const DOCKER_INFO = `docker info --format '{{.ServerVersion}} {{.LoggingDriver}} {{json .RegistryConfig}}'`;

/** Prints a file as `path`, then its base64 or `-` when absent. Also for other gathers that split with splitGatherOutput. */
export const FILE_FN = `emit_file() { echo "@@file $1"; if [ -f "$1" ]; then base64 -w0 "$1"; echo; else echo -; fi; }`;

/**
 * The one script the gather round trip runs (as root). Output: `@@key` lines followed by values.
 * `extra` is more of the same (it may call emit_file), run last: other concerns join this round trip instead of adding one.
 */
export function gatherScript(registries: string[], extra = ''): string {
  const hostsToml = registries.map((r) => `  emit_file ${shQuote(hostsTomlPath(r))}`).join('\n');
  return `
${FILE_FN}
${dockerInfoCachedFn(DOCKER_INFO)}
echo "@@os"; ( . /etc/os-release 2>/dev/null && echo "$ID $VERSION_ID" ) || uname -s
echo "@@arch"; dpkg --print-architecture 2>/dev/null || uname -m
echo "@@apt"; dpkg-query -W -f='\${Package} \${db:Status-Status}\\n' ${APT_DOCKER_PACKAGES.join(' ')} 2>/dev/null; :
echo "@@snapd"; command -v snap >/dev/null 2>&1 && echo yes || echo no
echo "@@snap"; if command -v snap >/dev/null 2>&1 && snap list docker >/dev/null 2>&1; then echo installed; else echo no; fi
echo "@@dockerd"
# The running dockerd and its own --config-file, read once: that file is the daemon.json it actually reads.
cf=; dpid=
for pf in /run/docker.pid /var/snap/docker/current/run/docker.pid /run/snap.docker/docker.pid; do
  if [ -f "$pf" ]; then pid=$(cat "$pf" 2>/dev/null); if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    cf=$(tr '\\0' '\\n' < /proc/$pid/cmdline 2>/dev/null | awk 'p{print; exit} /^--config-file=/{sub(/^--config-file=/,""); print; exit} /^--config-file$/{p=1}')
    dpid=$pid; echo "$pid"; echo "pidfile=$pf"; [ -n "$cf" ] && echo "--config-file=$cf"
    break
  fi; fi
done
echo
emit_file ${APT_DAEMON_JSON}; emit_file ${registryStatePath(APT_DAEMON_JSON)}
emit_file ${SNAP_DAEMON_JSON}; emit_file ${registryStatePath(SNAP_DAEMON_JSON)}
case "$cf" in ""|${APT_DAEMON_JSON}|${SNAP_DAEMON_JSON}) ;; *) emit_file "$cf"; emit_file "$cf.runner-fleet.json" ;; esac
echo "@@not-regular"
for p in ${[APT_DAEMON_JSON, registryStatePath(APT_DAEMON_JSON), SNAP_DAEMON_JSON, registryStatePath(SNAP_DAEMON_JSON), ...registries.map(hostsTomlPath)].map(shQuote).join(' ')} \${cf:+"$cf" "$cf.runner-fleet.json"}; do
  if [ -e "$p" ] && [ ! -f "$p" ]; then printf '%s\\t%s\\n' "$p" "$(stat -L -c %F "$p" 2>/dev/null || echo 'not a regular file')"; fi
done
echo "@@docker"
if command -v docker >/dev/null 2>&1; then docker_info_cached ${DOCKER_INFO_RECORD} "$dpid" ${APT_DAEMON_JSON} ${SNAP_DAEMON_JSON} \${cf:+"$cf"}; else echo "docker: command not found"; fi
echo
echo "@@microk8s"; if [ -d /var/snap/microk8s ] || command -v microk8s >/dev/null 2>&1; then echo yes
${hostsToml || '  :'}
else echo no; fi
${mtuGatherScript()}
${extra}
${NODE_CLOCK_GATHER}
echo "@@end"
`;
}

const DEBIAN_ARCH: Record<string, string> = {
  aarch64: 'arm64',
  armv7l: 'armhf',
  armv6l: 'armhf',
  x86_64: 'amd64',
};

/** Splits gatherScript() output into sections and files. */
export function splitGatherOutput(stdout: string): GatherOutput {
  const sections = new Map<string, string[]>();
  const files = new Map<string, string>();
  let current: string[] | undefined;
  let filePath: string | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('@@file ')) {
      filePath = line.slice(7);
      current = undefined;
      continue;
    }
    if (line.startsWith('@@')) {
      current = [];
      sections.set(line.slice(2).trim(), current);
      filePath = undefined;
      continue;
    }
    if (filePath !== undefined) {
      files.set(filePath, line);
      filePath = undefined;
      continue;
    }
    current?.push(line);
  }
  return { sections, files };
}

/** Parses gatherScript() output. Throws if the output is cut short (e.g. the connection dropped). */
export function parseFacts(stdout: string): HostFacts {
  if (!stdout.includes('@@end')) throw new Error('fact gathering was cut short (no end marker)');
  const gathered = splitGatherOutput(stdout);
  const { sections, files } = gathered;
  const text = (key: string) => (sections.get(key) ?? []).join('\n').trim();

  const dockerdLines = text('dockerd').split('\n').filter(Boolean);
  const pid = Number(dockerdLines[0]);
  const configFile = dockerdLines.find((l) => l.startsWith('--config-file='))?.slice('--config-file='.length);
  const pidfile = dockerdLines.find((l) => l.startsWith('pidfile='))?.slice('pidfile='.length);
  const dockerd =
    Number.isInteger(pid) && pid > 0
      ? { pid, configFile, snap: pidfile !== undefined && pidfile.includes('snap') }
      : undefined;
  const aptDockerPackages = text('apt')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(
      ([name, status]) => (APT_DOCKER_PACKAGES as readonly string[]).includes(name) && status === 'installed',
    )
    .map(([name]) => name);
  const snapDocker = text('snap') === 'installed';
  const facts: HostFacts = {
    os: text('os'),
    arch: DEBIAN_ARCH[text('arch')] ?? text('arch'),
    // A dockerd running outside the snap is Docker however it got there: never planned as missing.
    aptDocker: aptDockerPackages.length > 0 || (dockerd !== undefined && !dockerd.snap),
    aptDockerPackages,
    snapDocker,
    snapd: text('snapd') === 'yes',
    dockerd,
    aptDaemonJson: fileFact(APT_DAEMON_JSON, files.get(APT_DAEMON_JSON)),
    snapDaemonJson: fileFact(SNAP_DAEMON_JSON, files.get(SNAP_DAEMON_JSON)),
    microk8s: text('microk8s').split('\n')[0] === 'yes',
    hostsToml: {},
    gathered,
  };
  if (configFile && configFile !== APT_DAEMON_JSON && configFile !== SNAP_DAEMON_JSON) {
    facts.runningDaemonJson = fileFact(configFile, files.get(configFile));
  }
  facts.registryState = {};
  for (const dj of [
    APT_DAEMON_JSON,
    SNAP_DAEMON_JSON,
    ...(facts.runningDaemonJson ? [facts.runningDaemonJson.path] : []),
  ]) {
    const state = registryStatePath(dj);
    if (files.has(state)) facts.registryState[dj] = fileFact(state, files.get(state));
  }
  for (const [path, encoded] of files) {
    const m = path.match(/\/certs\.d\/([^/]+)\/hosts\.toml$/);
    if (m) facts.hostsToml[m[1]] = fileFact(path, encoded);
  }
  const notRegular = (sections.get('not-regular') ?? []).filter((l) => l.includes('\t'));
  if (notRegular.length > 0)
    facts.notRegular = Object.fromEntries(notRegular.map((l) => l.split('\t', 2) as [string, string]));
  const parsed = parseDockerInfo(text('docker'));
  if ('error' in parsed) facts.dockerInfoError = parsed.error;
  else facts.docker = parsed;
  return facts;
}

/** Parses DOCKER_INFO's output (the log driver is optional: earlier gathers printed only version and registry config). */
export function parseDockerInfo(out: string): NonNullable<HostFacts['docker']> | { error: string } {
  const m = out.trim().match(/^(\S+) +(?:([^\s{]+) +)?(\{.*\})$/s);
  if (!m) return { error: out.trim().slice(0, 300) || 'docker info printed nothing' };
  try {
    const reg = JSON.parse(m[3]) as {
      IndexConfigs?: Record<string, { Secure?: boolean }>;
      InsecureRegistryCIDRs?: string[];
      Mirrors?: string[];
    };
    return {
      version: m[1],
      indexConfigs: reg.IndexConfigs ?? {},
      insecureCidrs: reg.InsecureRegistryCIDRs ?? [],
      mirrors: reg.Mirrors ?? [],
      ...(m[2] ? { loggingDriver: m[2] } : {}),
    };
  } catch {
    return { error: out.trim().slice(0, 300) };
  }
}

function ipv4ToInt(ip: string): number | undefined {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

/** Whether the running dockerd treats `registry` (host:port) as insecure, per `docker info`. */
export function registryIsInsecure(docker: NonNullable<HostFacts['docker']>, registry: string): boolean {
  const entry = docker.indexConfigs[registry];
  if (entry) return entry.Secure === false;
  const host = registry.replace(/:\d+$/, '');
  const ip = ipv4ToInt(host);
  if (ip === undefined) return false;
  return docker.insecureCidrs.some((cidr) => {
    const [net, bits] = cidr.split('/');
    const base = ipv4ToInt(net);
    const n = Number(bits);
    if (base === undefined || !Number.isInteger(n)) return false;
    const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
    return (ip & mask) === (base & mask);
  });
}
