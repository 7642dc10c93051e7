// The Docker check in a runner pod: a POSIX sh script that asks the node's dockerd through the socket the runner
// uses (DOCKER_HOST), its output parsed into a typed result, and the words for it.
/** The docker CLI the DaemonSet's init container copies into every runner pod (manifests/daemonset.yaml.hbs). */
export const POD_DOCKER_CLI = '/opt/docker-cli/docker';

export type PodDocker =
  | { kind: 'ok'; version: string }
  | { kind: 'failed'; detail: string }
  /** the check could not run, or the pod has nothing to ask Docker with */
  | { kind: 'unknown'; why: string };

/**
 * `docker version` with the CLI every runner pod carries; pods from before it was copied into every pod fall back to
 * curl's GET /_ping. One `docker-check ok|fail|skip DETAIL` line.
 */
export const podDockerScript = String.raw`sock="${'$'}{DOCKER_HOST#unix://}"; [ -n "$sock" ] || sock=/var/run/docker.sock
if [ -x ${POD_DOCKER_CLI} ]; then
  if out=$(${POD_DOCKER_CLI} -H "unix://$sock" version --format '{{.Server.Version}}' 2>&1); then echo "docker-check ok $out"
  else echo "docker-check fail $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-300)"; fi
elif command -v curl >/dev/null 2>&1; then
  if out=$(curl -sS -m 10 --unix-socket "$sock" http://docker/_ping 2>&1); then echo "docker-check ok $out"
  else echo "docker-check fail $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-300)"; fi
else echo "docker-check skip neither the docker CLI nor curl is in the pod"; fi`;

const LINE = /^docker-check (ok|fail|skip) ?(.*)$/;

export function parsePodDocker(output: string): PodDocker {
  for (const raw of output.split('\n')) {
    const m = LINE.exec(raw.trim());
    if (!m) continue;
    const [, verdict, detail] = m;
    if (verdict === 'ok') return { kind: 'ok', version: detail.trim() };
    if (verdict === 'fail') return { kind: 'failed', detail: detail.trim() || 'no answer' };
    return { kind: 'unknown', why: detail.trim() };
  }
  return { kind: 'unknown', why: 'the check printed nothing' };
}

/** Why a runner pod is not fine with its Docker, or undefined when it is (or could not be told). */
export function describePodDocker(pod: string, d: PodDocker): string | undefined {
  if (d.kind !== 'failed') return undefined;
  return `runner pod ${pod} cannot reach the node's Docker (${d.detail}): jobs there fail until it can`;
}
