// The contact probe: a POSIX sh script run where a runner runs (in its pod, or on its host) that finds the first hop
// to GitLab or a registry it cannot pass; its output parsed into a typed result, and the words for it.
import type { Inventory } from '../inventory/types.js';
import { RUNNER_CA_FILE } from '../runners/config-toml.js';

/**
 * The hops in the order a runner needs them: name resolution, TCP connect, the server's certificate (checked only
 * against gitlab.caFile, as the runner's tls-ca-file), an HTTP answer.
 */
export type Hop = 'dns' | 'tcp' | 'tls' | 'http';
export type ProbeTargetKind = 'gitlab' | 'registry';

export interface ProbeTarget {
  kind: ProbeTargetKind;
  host: string;
  port: number;
  url: string;
  /** the CA file, where the probe runs, that the server's certificate must chain to (the runner's tls-ca-file) */
  ca?: string;
}

export type ProbeResult =
  | { kind: 'ok' }
  | {
      kind: 'failed';
      target: ProbeTarget;
      hop: Hop;
      /** the address the name resolved to, when the failing hop comes after resolution */
      address?: string;
      /** the HTTP status when the answer itself was the problem (5xx) */
      status?: number;
      detail: string;
    }
  /** the probe could not run or said nothing we understand */
  | { kind: 'unknown'; why: string };

/** Where the probe ran, for the words: a runner pod (cluster placement) or the node itself (host placement). */
export type ProbeSite = 'pod' | 'host';

/**
 * What a runner must reach: GitLab's API (its `/api/v4/version`), then each registry's `/v2/`. With gitlab.caFile
 * the registries serve HTTPS, and every HTTPS certificate is checked against the runner's copy of the CA.
 */
export function probeTargets(
  inv: Pick<Inventory, 'gitlab'> & Partial<Pick<Inventory, 'runners'>>,
): ProbeTarget[] {
  const gitlab = new URL(inv.gitlab.url);
  const base = inv.gitlab.url.replace(/\/+$/, '');
  const ca = inv.gitlab.ca ? { ca: RUNNER_CA_FILE[inv.runners?.placement ?? 'cluster'] } : {};
  const targets: ProbeTarget[] = [
    {
      kind: 'gitlab',
      host: hostOf(gitlab),
      port: portOf(gitlab),
      url: `${base}/api/v4/version`,
      ...(gitlab.protocol === 'https:' ? ca : {}),
    },
  ];
  // Without the CA, runner-fleet's registries are the insecure (plain HTTP) ones it lists in daemon.json.
  const scheme = inv.gitlab.ca ? 'https' : 'http';
  for (const registry of inv.gitlab.registries) {
    const u = new URL(`${scheme}://${registry}`);
    targets.push({
      kind: 'registry',
      host: hostOf(u),
      port: portOf(u),
      url: `${scheme}://${registry}/v2/`,
      ...ca,
    });
  }
  return targets;
}

const hostOf = (u: URL) => u.hostname.replace(/^\[(.*)\]$/, '$1');
const portOf = (u: URL) => (u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80);

/**
 * The probe, for `sh -s` or `sh -c`: it uses whatever the place has (getent or nslookup; curl, or nc and wget as
 * busybox images have them) and prints one `probe-hop INDEX HOP ok|fail|skip DETAIL` line per hop, stopping at the
 * first failure. A tool that is missing makes its hop `skip`, never a failure.
 */
export function probeScript(targets: ProbeTarget[]): string {
  const calls = targets
    .map(
      (t, i) => `probe ${i} ${shq(t.host)} ${t.port} ${shq(t.url)}${t.ca ? ` ${shq(t.ca)}` : ''} || exit 0`,
    )
    .join('\n');
  return `${PROBE_FUNCTIONS}\n${calls}\n`;
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const PROBE_FUNCTIONS = String.raw`have() { command -v "$1" >/dev/null 2>&1; }
one() { tr '\r\n' '  ' | sed 's/ *$//' | cut -c1-200; }
hop() { printf 'probe-hop %s %s %s %s\n' "$1" "$2" "$3" "$4"; }
resolve() {
  case $1 in *:*|*[!0-9.]*) ;; *) echo "$1"; return 0 ;; esac
  case $1 in *:*) echo "$1"; return 0 ;; esac
  if have getent; then getent hosts "$1" | awk '{ print $1; exit }'; return; fi
  a=$(awk -v h="$1" '$1 !~ /^#/ { for (i = 2; i <= NF; i++) if ($i == h) { print $1; exit } }' /etc/hosts 2>/dev/null)
  if [ -n "$a" ]; then echo "$a"
  elif have nslookup; then
    nslookup "$1" 2>/dev/null | awk '/^Name:/ { n = 1 } n && /^Address/ { sub(/^Address[^:]*:[ \t]*/, ""); print $1; exit }'
  else echo '?'; fi
}
probe() {
  i=$1 host=$2 port=$3 url=$4 ca=${'$'}{5:-}
  addr=$(resolve "$host")
  if [ -z "$addr" ]; then hop "$i" dns fail "name does not resolve"; return 1; fi
  if [ "$addr" = '?' ]; then hop "$i" dns skip "no getent or nslookup"; addr=$host; else hop "$i" dns ok "$addr"; fi
  if have curl; then
    # The certificate is checked as the runner checks it: against tls-ca-file, or else the system's roots.
    if [ -n "$ca" ]; then set -- --cacert "$ca"; else set --; fi
    out=$(curl -sS "$@" -o /dev/null -w 'http_code=%{http_code}' --connect-timeout 5 -m 10 "$url" 2>&1); rc=$?
    code=${'$'}{out##*http_code=} out=${'$'}{out%http_code=*}
    case $rc in
      0) hop "$i" tcp ok -; case $url in https:*) hop "$i" tls ok - ;; esac; hop "$i" http ok "$code"; return 0 ;;
      35|51|58|60|77|83) hop "$i" tcp ok -; hop "$i" tls fail "$(echo "$out" | one)"; return 1 ;;
      6) hop "$i" dns fail "$(echo "$out" | one)"; return 1 ;;
      7) hop "$i" tcp fail "$(echo "$out" | one)"; return 1 ;;
      28) case $out in
            *'onnection timed out'*|*'Failed to connect'*) hop "$i" tcp fail "$(echo "$out" | one)"; return 1 ;;
          esac ;;
    esac
    hop "$i" tcp ok -; hop "$i" http fail "$(echo "$out" | one)"; return 1
  fi
  if have nc; then
    err=$(timeout 8 nc -w 5 "$addr" "$port" </dev/null 2>&1 >/dev/null); rc=$?
    if [ "$rc" -ne 0 ] && [ -n "$err" ]; then hop "$i" tcp fail "$(echo "$err" | one)"; return 1; fi
    hop "$i" tcp ok -
  else hop "$i" tcp skip "no curl or nc"; fi
  case $url in https:*) hop "$i" tls skip "no curl to check the certificate" ;; esac
  if have wget; then
    out=$(timeout 10 wget -S -O /dev/null --no-check-certificate "$url" 2>&1); rc=$?
    code=$(echo "$out" | awk '/^ *HTTP\/[0-9.]+ [0-9][0-9][0-9]/ { c = $2 } END { print c }')
    if [ -n "$code" ]; then hop "$i" http ok "$code"; return 0; fi
    [ "$rc" -ge 124 ] && out="no answer within 10 s"
    hop "$i" http fail "$(echo "$out" | grep -v '^Connecting to' | one)"; return 1
  fi
  hop "$i" http skip "no curl or wget"
}`;

const HOP_LINE = /^probe-hop (\d+) (dns|tcp|tls|http) (ok|fail|skip) ?(.*)$/;

/** The first failing hop in the probe's output; `ok` when every target answered. */
export function parseProbe(output: string, targets: ProbeTarget[]): ProbeResult {
  const addresses = new Map<number, string>();
  let seen = 0;
  for (const line of output.split('\n')) {
    const m = HOP_LINE.exec(line.trim());
    if (!m) continue;
    seen++;
    const [, index, hop, verdict, detail] = m;
    const target = targets[Number(index)];
    if (!target) continue;
    if (hop === 'dns' && verdict === 'ok') addresses.set(Number(index), detail);
    const address = addresses.get(Number(index));
    const at = address && address !== target.host ? { address } : {};
    if (verdict === 'fail') return { kind: 'failed', target, hop: hop as Hop, ...at, detail };
    if (hop === 'http' && verdict === 'ok') {
      const status = Number(detail);
      // Any HTTP answer proves the path (GitLab answers 401 without a token, a registry 401 or 200); a 5xx does not.
      if (status >= 500)
        return { kind: 'failed', target, hop: 'http', ...at, status, detail: `HTTP ${status}` };
    }
  }
  if (seen === 0) return { kind: 'unknown', why: 'the probe printed nothing' };
  return { kind: 'ok' };
}

const SITE: Record<ProbeSite, string> = { pod: 'the runner pod', host: 'the node' };

/**
 * A pod's /etc/hosts is the kubelet's and its resolver the cluster DNS (or the host's resolv.conf): a name the node
 * knows from its own /etc/hosts or a LAN DNS the pods do not ask stays unknown there (microk8s #1070, #3004).
 */
const DNS_HINT: Record<ProbeSite, (host: string) => string> = {
  pod: (host) =>
    `; pods do not read the node's /etc/hosts: if the node resolves ${host}, give its address in gitlab.hostAliases`,
  host: () => '',
};

/** One phrase for a probe result, e.g. "cannot connect to 198.18.0.1:8080 from the runner pod (timed out)". */
export function describeProbe(result: ProbeResult, site: ProbeSite): string {
  if (result.kind === 'ok') return `GitLab and the registries answer from ${SITE[site]}`;
  if (result.kind === 'unknown') return `could not probe from ${SITE[site]}: ${result.why}`;
  const { target, hop } = result;
  const what = target.kind === 'gitlab' ? 'GitLab' : `the registry ${target.host}:${target.port}`;
  const from = `from ${SITE[site]}`;
  const why = result.detail && result.detail !== '-' ? ` (${result.detail})` : '';
  const where = `${result.address ?? target.host}:${target.port}`;
  switch (hop) {
    case 'dns':
      return `cannot resolve ${target.host} (${what}) ${from}${why}${DNS_HINT[site](target.host)}`;
    case 'tcp':
      return `cannot connect to ${where}${result.address ? ` (${target.host})` : ''} (${what}) ${from}${why}`;
    case 'tls':
      return `x509: the certificate of ${what} does not verify ${from} against ${target.ca ? `${target.ca} (gitlab.caFile, the runner's tls-ca-file)` : "the system's CAs (set gitlab.caFile to a private CA)"}${why}`;
    case 'http':
      return result.status
        ? `${what} answers ${target.url} with HTTP ${result.status} ${from}`
        : `no HTTP answer from ${target.url} (${what}) ${from}${why}`;
  }
}

/** status's gather section for host placement: the probe from the node, in a subshell (its `exit` ends only it). */
export const REACH_SECTION = 'rf-reach';

export function reachGatherScript(targets: ProbeTarget[]): string {
  return `echo "@@${REACH_SECTION}"\n(\n${probeScript(targets)})`;
}

/** The section's result; undefined when the gather had none. */
export function parseReach(
  sections: Map<string, string[]> | undefined,
  targets: ProbeTarget[],
): ProbeResult | undefined {
  const lines = sections?.get(REACH_SECTION);
  return lines ? parseProbe(lines.join('\n'), targets) : undefined;
}
