// Host-runner facts: the gather section (added to the host phase's one round trip) and its parser.
import { sha256, shQuote, type GatherOutput } from '../docker/facts.js';

/** Where the host runner lives on a node. config.toml's folder and file names are gitlab-runner's own (system mode). */
export const RUNNER_DIR = '/etc/gitlab-runner';
export const CONFIG_TOML = `${RUNNER_DIR}/config.toml`;
/**
 * gitlab-runner keeps its system_id in this file beside config.toml and makes up a new one when it is missing,
 * which GitLab shows as one more stale manager per restart: runner-fleet writes the record's system_id there.
 */
export const SYSTEM_ID_FILE = `${RUNNER_DIR}/.runner_system_id`;
/** runner-fleet's registration record for the node (id, token, system_id): root-only, beside the config it explains. */
export const RECORD_FILE = `${RUNNER_DIR}/runner-fleet-record.json`;
// The names GitLab's own setup script uses, so that a node set up by hand with it converges instead of ending up
// with two entries for one repository (apt refuses conflicting Signed-By values for the same source).
export const SOURCES_FILE = '/etc/apt/sources.list.d/runner_gitlab-runner.list';
// GitLab's script.deb.sh dearmors the key (`gpg --dearmor`) into this binary keyring.
export const KEYRING_FILE = '/etc/apt/keyrings/runner_gitlab-runner-archive-keyring.gpg';
/** The armored keyring earlier runner-fleet versions wrote; removed once the .gpg one is in place. */
export const OLD_KEYRING_FILE = '/etc/apt/keyrings/runner_gitlab-runner-archive-keyring.asc';
export const PIN_FILE = '/etc/apt/preferences.d/pin-gitlab-runner.pref';
export const PACKAGE = 'gitlab-runner';
/** From 17.7.0 gitlab-runner depends on exactly its own version of this package; a pinned install names both. */
export const HELPER_PACKAGE = 'gitlab-runner-helper-images';
export const SERVICE = 'gitlab-runner';
export const RUNNER_USER = 'gitlab-runner';
/** systemd drop-in for the unit `gitlab-runner install` writes: a graceful stop (SIGQUIT) for the stops that remain. */
export const DROP_IN_FILE = '/etc/systemd/system/gitlab-runner.service.d/runner-fleet.conf';

/**
 * The part of config.toml gitlab-runner reads only when it starts (commands/multi.go at v17.9.3: the metrics server
 * and the session server are set up once in run(); everything else, concurrent, check_interval, log_level and the
 * [[runners]] blocks, is re-read on every reload). Its top-level listen_address and the [session_server] table,
 * one trimmed line each: no secrets there. The awk in the gather and this function must agree.
 */
export function restartOnlyConfig(toml: string): string[] {
  const out: string[] = [];
  let table = '';
  for (const raw of toml.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      table = line;
      if (table === '[session_server]') out.push(line);
      continue;
    }
    if ((table === '' && /^listen_address\s*=/.test(line)) || table === '[session_server]') out.push(line);
  }
  return out;
}

/**
 * `started=` the service's main process start on the node's clock, in ms (boot time + its start in clock ticks,
 * /proc/PID/stat field 22), or empty without one. The fields are counted after the `(comm)`, which may hold spaces.
 */
export const SERVICE_STARTED = `echo "started=$(rf_p=$(systemctl show -p MainPID --value ${SERVICE} 2>/dev/null); case "$rf_p" in (''|0|*[!0-9]*) ;; (*) [ -r /proc/$rf_p/stat ] && awk -v hz="$(getconf CLK_TCK)" -v bt="$(awk '$1 == "btime" { print $2 }' /proc/stat)" '{ sub(/^.*\\) /, ""); printf "%.0f", (bt + $20 / hz) * 1000 }' /proc/$rf_p/stat ;; esac)"`;

const RESTART_ONLY_AWK = `awk '{ l = $0; gsub(/^[ \\t]+|[ \\t\\r]+$/, "", l) } l == "" || l ~ /^#/ { next } l ~ /^\\[/ { t = l; if (t == "[session_server]") print l; next } (t == "" && l ~ /^listen_address[ \\t]*=/) || t == "[session_server]" { print l }'`;

/** A small file as gathered: undefined content when absent. Bytes are kept: a keyring may be binary. */
export interface GatheredFile {
  path: string;
  bytes?: Buffer;
  /** utf8 text of `bytes` */
  content?: string;
  sha256: string | 'absent';
}

export interface FileMode {
  /** octal, as `stat -c %a` prints it */
  mode: string;
  owner: string;
}

export interface HostRunnerFacts {
  /** /etc/os-release ID and VERSION_CODENAME: the repository path is <url>/<id>/ <codename> */
  os: { id: string; codename: string };
  package: {
    installed: boolean;
    version?: string;
    /** packages apt-mark holds, of PACKAGE and HELPER_PACKAGE */ held?: string[];
  };
  /** `systemctl is-active` / `is-enabled` answers; empty when the unit does not exist */
  service: { active: string; enabled: string; /** main process start, node clock, ms */ startedMs?: number };
  /** only the digest: config.toml holds the token and is never sent back; and the lines only a restart applies */
  config: { sha256: string | 'absent'; restartOnly?: string[] } & Partial<FileMode>;
  /** runner-fleet's systemd drop-in for the unit */
  dropIn?: GatheredFile;
  systemId: GatheredFile & Partial<FileMode>;
  /** holds the runner token: parsed into records (and registered for redaction), never printed */
  record: GatheredFile & Partial<FileMode>;
  /** what installing needs to know; absent in the probe gathered in cluster placement */
  install?: {
    user: { exists: boolean; groups: string[] };
    dockerGroup: boolean;
    keyring: GatheredFile;
    /** the .asc keyring earlier runner-fleet versions wrote */
    oldKeyring: boolean;
    sources: GatheredFile;
    pin: GatheredFile;
    /** other apt source files that name the same repository */
    otherSources: string[];
  };
}

/** `full` when the node should have a host runner; `probe` (cluster placement) only looks for one left over to remove. */
export type HostRunnerGather = 'full' | 'probe';

/**
 * The gather section. It runs inside the host gather script (emit_file is defined there). The record file and
 * .runner_system_id are read back; config.toml only as a digest, since it needs no parsing and holds the token.
 */
export function hostRunnerGatherScript(mode: HostRunnerGather, repositoryUrl: string): string {
  const probe = `
echo "@@hr-os"; ( . /etc/os-release 2>/dev/null; echo "\${ID:-unknown} \${VERSION_CODENAME:-}" )
echo "@@hr-package"; dpkg-query -W -f='\${db:Status-Status} \${Version}' ${PACKAGE} 2>/dev/null; echo
echo "@@hr-held"; apt-mark showhold ${PACKAGE} ${HELPER_PACKAGE} 2>/dev/null; :
echo "@@hr-service"; echo "active=$(systemctl is-active ${SERVICE} 2>/dev/null)"; echo "enabled=$(systemctl is-enabled ${SERVICE} 2>/dev/null)"; ${SERVICE_STARTED}
echo "@@hr-config"; if [ -f ${CONFIG_TOML} ]; then sha256sum ${CONFIG_TOML} | cut -d' ' -f1; stat -c '%a %U' ${CONFIG_TOML}; else echo absent; fi
echo "@@hr-config-restart-only"; [ -f ${CONFIG_TOML} ] && ${RESTART_ONLY_AWK} ${CONFIG_TOML}; :
emit_file ${DROP_IN_FILE}
echo "@@hr-system-id-mode"; stat -c '%a %U' ${SYSTEM_ID_FILE} 2>/dev/null; :
emit_file ${SYSTEM_ID_FILE}
echo "@@hr-record-mode"; stat -c '%a %U' ${RECORD_FILE} 2>/dev/null; :
emit_file ${RECORD_FILE}`;
  if (mode === 'probe') return probe;
  const hostPath = repositoryUrl.replace(/^https?:\/\//, '');
  return `${probe}
echo "@@hr-user"; if id -u ${RUNNER_USER} >/dev/null 2>&1; then echo "user $(id -nG ${RUNNER_USER})"; else echo none; fi
echo "@@hr-docker-group"; if getent group docker >/dev/null 2>&1; then echo yes; else echo no; fi
emit_file ${KEYRING_FILE}
echo "@@hr-old-keyring"; [ -e ${OLD_KEYRING_FILE} ] && echo yes; :
emit_file ${SOURCES_FILE}
emit_file ${PIN_FILE}
echo "@@hr-other-sources"; grep -lsF ${shQuote(hostPath)} /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -vxF ${SOURCES_FILE}; :`;
}

function gatheredFile(path: string, encoded: string | undefined): GatheredFile {
  const v = encoded?.trim();
  if (v === undefined || v === '-') return { path, sha256: 'absent' };
  const bytes = Buffer.from(v, 'base64');
  const content = bytes.toString('utf8');
  return { path, bytes, content, sha256: sha256(content) };
}

function fileMode(line: string | undefined): Partial<FileMode> {
  const m = line?.trim().match(/^([0-7]{3,4}) (\S+)$/);
  return m ? { mode: m[1], owner: m[2] } : {};
}

/** `started=` as a number, when it is one. */
export function startedMs(value: string | undefined): { startedMs?: number } {
  return value && /^\d+$/.test(value) ? { startedMs: Number(value) } : {};
}

/** The host-runner facts in a gather's output, or undefined when the gather had no host-runner section. */
export function parseHostRunnerFacts(g: GatherOutput | undefined): HostRunnerFacts | undefined {
  if (!g?.sections.has('hr-os')) return undefined;
  const lines = (key: string) => (g.sections.get(key) ?? []).map((l) => l.trim()).filter(Boolean);
  const [id = 'unknown', codename = ''] = (lines('hr-os')[0] ?? '').split(/\s+/);
  const [status, version] = (lines('hr-package')[0] ?? '').split(/\s+/);
  const svc = Object.fromEntries(lines('hr-service').map((l) => l.split('=', 2) as [string, string]));
  const [configSha, configMode] = lines('hr-config');
  const facts: HostRunnerFacts = {
    os: { id, codename },
    package:
      status === 'installed' ? { installed: true, version, held: lines('hr-held') } : { installed: false },
    service: { active: svc.active ?? '', enabled: svc.enabled ?? '', ...startedMs(svc.started) },
    config:
      !configSha || configSha === 'absent'
        ? { sha256: 'absent' }
        : { sha256: configSha, restartOnly: lines('hr-config-restart-only'), ...fileMode(configMode) },
    dropIn: gatheredFile(DROP_IN_FILE, g.files.get(DROP_IN_FILE)),
    systemId: {
      ...gatheredFile(SYSTEM_ID_FILE, g.files.get(SYSTEM_ID_FILE)),
      ...fileMode(lines('hr-system-id-mode')[0]),
    },
    record: {
      ...gatheredFile(RECORD_FILE, g.files.get(RECORD_FILE)),
      ...fileMode(lines('hr-record-mode')[0]),
    },
  };
  if (g.sections.has('hr-user')) {
    const user = lines('hr-user')[0] ?? 'none';
    facts.install = {
      user: user.startsWith('user')
        ? { exists: true, groups: user.split(/\s+/).slice(1) }
        : { exists: false, groups: [] },
      dockerGroup: lines('hr-docker-group')[0] === 'yes',
      keyring: gatheredFile(KEYRING_FILE, g.files.get(KEYRING_FILE)),
      oldKeyring: lines('hr-old-keyring')[0] === 'yes',
      sources: gatheredFile(SOURCES_FILE, g.files.get(SOURCES_FILE)),
      pin: gatheredFile(PIN_FILE, g.files.get(PIN_FILE)),
      otherSources: lines('hr-other-sources'),
    };
  }
  return facts;
}
