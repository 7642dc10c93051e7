// `docker info` on a no-op rerun, skipped when nothing it reports can have changed since the last run.
// `docker info` is the most expensive part of the gather round trip on the node (the CLI starts, asks dockerd over
// its socket, dockerd walks its state): what it reports for us (version, log driver, registry config) changes only
// when dockerd restarts or reloads a changed daemon.json. So the gather keeps the last output in a record on the
// node, keyed by dockerd's PID and start time and by the inode and ctime (ns) of every daemon.json it could read;
// any difference, a missing or unreadable record, or a failed `docker info` (never recorded) means asking dockerd.
// The record is in /run: tmpfs (no SD-card write per run) and gone on reboot, when dockerd's PID changes anyway.
export const DOCKER_INFO_RECORD = '/run/runner-fleet.docker-info';

/**
 * The shell function `docker_info_cached RECORD PID FILE...`: prints `info` (facts.ts's DOCKER_INFO) and its output
 * (at most 64 KiB), from RECORD when its key matches. PID empty (no running dockerd found): always asks. The record
 * is written atomically (mv), mode 0600.
 */
export const dockerInfoCachedFn = (info: string): string => `docker_info_cached() {
  rec=$1; dpid=$2; shift 2
  if [ -z "$dpid" ]; then timeout 15 ${info} 2>&1 | head -c 65536; return; fi
  started=$(sed 's/.*) //' /proc/$dpid/stat 2>/dev/null | cut -d' ' -f20)
  key="v1 $dpid \${started:--}"
  for f in "$@"; do key="$key $(stat -c '%i:%.9Z' "$f" 2>/dev/null || echo -)"; done
  if [ -f "$rec" ] && [ "$(head -n 1 "$rec" 2>/dev/null)" = "$key" ] && [ "$(sed -n 2p "$rec" 2>/dev/null)" = "@@ok" ]; then
    tail -n +3 "$rec"; return
  fi
  out=$(timeout 15 ${info} 2>&1); st=$?
  printf '%s\\n' "$out" | head -c 65536
  if [ "$st" -eq 0 ] && [ -n "$started" ]; then
    ( umask 077; printf '%s\\n@@ok\\n%s\\n' "$key" "$out" > "$rec.$$" && mv -f "$rec.$$" "$rec" ) 2>/dev/null || rm -f "$rec.$$"
  fi
}`;
