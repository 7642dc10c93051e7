// The per-node lock around a node's daemon.json edit: two runs (or a run without a cluster, where there is no fleet
// Lease) never interleave their writes and reloads on one node. Root-only file, same round trip as the edit.

/** On the node: /run is root's tmpfs, so a lock left by a crashed machine is gone after its reboot. */
export const NODE_LOCK_FILE = '/run/runner-fleet.lock';
/** Exit code of a wrapped script whose lock another run held for the whole wait. */
export const NODE_LOCK_BUSY = 75;
export const NODE_LOCK_WAIT_SECONDS = 60;

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Wraps a root shell script so that it runs under `flock` on `lockFile` (created 0600), waiting up to
 * `waitSeconds`; exit NODE_LOCK_BUSY with a message on stderr if it never got it, before anything ran. The script
 * goes through a 0600 temp file (no argument length limit, never on a command line) and runs with `flock -o`, so
 * what it starts (a dockerd brought back, a reloaded service) does not inherit the lock and hold it after the run.
 * Without flock (not Debian's util-linux) the script runs unlocked, as before.
 */
export function withNodeLock(script: string, opts: { lockFile?: string; waitSeconds?: number } = {}): string {
  const lock = shq(opts.lockFile ?? NODE_LOCK_FILE);
  const wait = opts.waitSeconds ?? NODE_LOCK_WAIT_SECONDS;
  const b64 = Buffer.from(script, 'utf8').toString('base64');
  return `rf_s=$(umask 077; mktemp) || exit 1
printf '%s' '${b64}' | base64 -d > "$rf_s" || { rm -f "$rf_s"; exit 1; }
if command -v flock >/dev/null 2>&1; then
  (umask 077; : >> ${lock}) || { rm -f "$rf_s"; exit 1; }
  flock -o -E ${NODE_LOCK_BUSY} -w ${wait} ${lock} sh "$rf_s" </dev/null; rf_rc=$?
  if [ $rf_rc = ${NODE_LOCK_BUSY} ]; then echo "another runner-fleet run held ${opts.lockFile ?? NODE_LOCK_FILE} on this node for ${wait}s; nothing was changed" >&2; fi
else
  sh "$rf_s" </dev/null; rf_rc=$?
fi
rm -f "$rf_s"
exit $rf_rc
`;
}
