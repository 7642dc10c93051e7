// `docker info` on a no-op rerun, skipped when nothing it reports can have changed since the last run.
// `docker info` is the most expensive part of the gather round trip on the node (the CLI starts, asks dockerd over
// its socket, dockerd walks its state): what it reports for us (version, log driver, registry config) changes only
// when dockerd restarts or reloads a changed daemon.json. So the gather keeps the last output in a record on the
// node, keyed by dockerd's PID and start time and by the inode and ctime (ns) of every daemon.json it could read;
// any difference, a missing or unreadable record, or a failed `docker info` (never recorded) means asking dockerd.
// Its variables are prefixed: the gather script is one shell with no locals.
// The record is in /run: tmpfs (no SD-card write per run) and gone on reboot, when dockerd's PID changes anyway.
export const DOCKER_INFO_RECORD = '/run/runner-fleet.docker-info';

/**
 * The shell function `docker_info_cached RECORD PID FILE...`: prints `info` (facts.ts's DOCKER_INFO) and its output
 * (at most 64 KiB), from RECORD when its key matches. PID empty (no running dockerd found): always asks. The record
 * is written atomically (mv), mode 0600.
 */
export const dockerInfoCachedFn = (info: string): string => `docker_info_cached() {
  _di_rec=$1; _di_dpid=$2; shift 2
  if [ -z "$_di_dpid" ]; then timeout 15 ${info} 2>&1 | head -c 65536; return; fi
  _di_started=$(sed 's/.*) //' /proc/$_di_dpid/stat 2>/dev/null | cut -d' ' -f20)
  _di_key="v1 $_di_dpid \${_di_started:--}"
  # A file that exists but cannot be stat'ed (a stat without %.9Z) turns the record off: never a constant key.
  for _di_f in "$@"; do
    _di_s=$(stat -c '%i:%.9Z' "$_di_f" 2>/dev/null) || { [ -e "$_di_f" ] && _di_started=; _di_s=-; }
    _di_key="$_di_key $_di_s"
  done
  if [ -n "$_di_started" ] && [ -f "$_di_rec" ] && [ "$(head -n 1 "$_di_rec" 2>/dev/null)" = "$_di_key" ] && [ "$(sed -n 2p "$_di_rec" 2>/dev/null)" = "@@ok" ]; then
    tail -n +3 "$_di_rec"; return
  fi
  _di_out=$(timeout 15 ${info} 2>&1); _di_st=$?
  printf '%s\\n' "$_di_out" | head -c 65536
  if [ "$_di_st" -eq 0 ] && [ -n "$_di_started" ]; then
    ( umask 077; printf '%s\\n@@ok\\n%s\\n' "$_di_key" "$_di_out" > "$_di_rec.$$" && mv -f "$_di_rec.$$" "$_di_rec" ) 2>/dev/null || rm -f "$_di_rec.$$"
  fi
}`;
