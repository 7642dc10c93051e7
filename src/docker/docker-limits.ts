// What a node's Docker refuses that the inventory's schema cannot know: rules that depend on the Docker version the
// node runs, and on the log settings its daemon.json already has. Pure; checked after gather, before any change.

/** A Docker version as `docker info` reports it (`20.10.24+dfsg1`, `24.0.5`, `26.1.5+dfsg1`), or undefined. */
export function dockerVersion(text: string | undefined): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text?.trim() ?? '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

const atLeast = (v: [number, number, number], min: [number, number, number]): boolean =>
  v[0] !== min[0] ? v[0] > min[0] : v[1] !== min[1] ? v[1] > min[1] : v[2] >= min[2];

/**
 * moby registry/config.go ValidateMirror refuses a mirror with a path ("path, query, or fragment at end of the URI")
 * up to v24.0.7; v24.0.8 (a backport) and v25.0.0 allow one. A refused mirror fails dockerd's reload (it keeps
 * running with the old configuration) or its start.
 */
export const MIRROR_PATH_SINCE: [number, number, number] = [24, 0, 8];

function hasPath(mirror: string): boolean {
  try {
    const path = new URL(mirror).pathname;
    return path !== '' && path !== '/';
  } catch {
    return false;
  }
}

/**
 * Why this node's Docker would refuse `docker.registryMirrors[i]`, per mirror with a path, or nothing.
 * `version`: what `docker info` reported; undefined when Docker is installed but not answering.
 */
export function mirrorProblems(mirrors: string[], version: string | undefined): string[] {
  const withPath = mirrors.map((m, i) => ({ m, i })).filter(({ m }) => hasPath(m));
  if (withPath.length === 0) return [];
  const parsed = dockerVersion(version);
  if (parsed && atLeast(parsed, MIRROR_PATH_SINCE)) return [];
  const since = MIRROR_PATH_SINCE.join('.');
  return withPath.map(({ m, i }) =>
    parsed
      ? `docker.registryMirrors[${i}]: Docker ${version} on this node refuses a registry mirror with a path (${m}); Docker allows one from ${since}: upgrade Docker, or give the mirror its own host or port without a path (e.g. a Nexus Docker connector port)`
      : `docker.registryMirrors[${i}]: ${m} has a path, which Docker before ${since} refuses, and this node's Docker version is unknown (${version === undefined ? 'dockerd is not answering' : `"${version}"`}): start Docker and run again, or give the mirror a URL without a path`,
  );
}

/** daemon.json's log settings as dockerd would hand them to each new container's log driver. */
interface LogConfig {
  driver: string;
  opts: Record<string, unknown>;
}

const bool = (v: unknown, fallback: boolean): boolean =>
  typeof v === 'string' && /^(1|t|true)$/i.test(v)
    ? true
    : typeof v === 'string' && /^(0|f|false)$/i.test(v)
      ? false
      : fallback;

/**
 * Why every container start would fail with these log settings (dockerd itself starts and `docker info` looks fine;
 * the driver checks its options only when a container starts), or undefined:
 * - local (moby daemon/logger/local/config.go validateConfig): compression, on by default, needs max-file ≥ 2;
 * - json-file (daemon/logger/jsonfilelog/jsonfilelog.go New): compress true needs max-file ≥ 2 and max-size.
 */
export function logConfigProblem(daemonJson: Record<string, unknown>): string | undefined {
  const opts = daemonJson['log-opts'];
  const config: LogConfig = {
    driver: typeof daemonJson['log-driver'] === 'string' ? daemonJson['log-driver'] : 'json-file',
    opts: opts && typeof opts === 'object' && !Array.isArray(opts) ? (opts as Record<string, unknown>) : {},
  };
  const maxFile = config.opts['max-file'] === undefined ? undefined : Number(config.opts['max-file']);
  if (config.driver === 'local' && bool(config.opts.compress, true) && (maxFile ?? 5) <= 1)
    return 'the local log driver with max-file 1 and compression on (its default): every container start would fail ("compression cannot be enabled when max file count is 1")';
  if (
    config.driver === 'json-file' &&
    bool(config.opts.compress, false) &&
    ((maxFile ?? 1) <= 1 || config.opts['max-size'] === undefined)
  )
    return 'the json-file log driver with compress true and max-file 1 or no max-size: every container start would fail ("compress cannot be true when max-file is less than 2 or max-size is not set")';
  return undefined;
}
