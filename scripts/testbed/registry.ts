// The test registry: Debian's docker-registry on 198.18.<slot>.2:5000 in network namespace rf-registry[-<slot>], on the fleet's bridge;
// and GitLab's own container registry on :5050 in the same namespace, which only takes the GitLab stand-in's tokens.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { leaveLan, joinLan } from './network.js';
import { net, slot } from './paths.js';
import { sh, terminate, waitFor } from './procs.js';
import type { ServiceContext, TestbedService } from './services.js';

const SUFFIX = slot() ? `-${slot()}` : '';
export const REGISTRY_NETNS = `rf-registry${SUFFIX}`;
/** This machine's address on the fleet's bridge; 198.18.0.0/15 is the benchmarking range, never routed anywhere. */
export const REGISTRY_HOST_ADDR = net.hostAddr();
export const REGISTRY_ADDR = `198.18.${slot()}.2`;
export const REGISTRY_PORT = 5000;
/** Not loopback on purpose: Docker trusts loopback registries without configuration. */
export const REGISTRY = `${REGISTRY_ADDR}:${REGISTRY_PORT}`;
/** GitLab's container registry (its usual port 5050): CI_REGISTRY of every stand-in job. */
export const GITLAB_REGISTRY = `${REGISTRY_ADDR}:5050`;
const HOST_LINK = `rf${slot()}vreg`;
/** The point-to-point pair of fleets before the bridge; removed if one is left over. */
const OLD_HOST_LINK = `rf-reg0${SUFFIX}`;

async function registryAnswers(): Promise<boolean> {
  try {
    const res = await fetch(`http://${REGISTRY}/v2/`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

async function removeNetwork(): Promise<void> {
  const pids = await sh({ nothrow: true })`ip netns pids ${REGISTRY_NETNS}`;
  if (pids.ok) {
    await terminate(pids.stdout.split('\n').filter(Boolean).map(Number), 3000);
  }
  // The host end goes with the namespace normally; a half-made pair may be left from a failed start.
  await leaveLan({ netns: REGISTRY_NETNS, link: HOST_LINK });
  await sh({ nothrow: true })`ip link del ${OLD_HOST_LINK}`;
}

export const registryService: TestbedService = {
  name: 'registry',

  async start(ctx) {
    await removeNetwork();
    // On the bridge up made before the nodes: nodes, their containers and pods reach it directly.
    await joinLan([{ netns: REGISTRY_NETNS, link: HOST_LINK, addr: REGISTRY_ADDR }]);

    const data = join(ctx.dir, 'data');
    mkdirSync(data, { recursive: true });
    const config = join(ctx.dir, 'config.yml');
    writeFileSync(
      config,
      [
        '# The runner-fleet test registry: plain HTTP, no auth. Written by scripts/testbed.',
        'version: 0.1',
        'log: {level: info}',
        `storage: {filesystem: {rootdirectory: ${JSON.stringify(data)}}, delete: {enabled: true}}`,
        `http: {addr: "${REGISTRY}"}`,
        '',
      ].join('\n'),
    );
    // nsenter, not `ip netns exec`: that one makes a mount namespace holding a copy of every named netns.
    ctx.spawnDaemon('registry', 'nsenter', [
      `--net=/run/netns/${REGISTRY_NETNS}`,
      '--',
      'docker-registry',
      'serve',
      config,
    ]);
    if (!(await waitFor(registryAnswers, 15_000, 100))) {
      throw new Error(
        `registry did not answer on http://${REGISTRY}/v2/ (see ${join(ctx.dir, 'registry.log')})`,
      );
    }
    ctx.log(`registry on ${REGISTRY}`);
    return { gitlab: { registry: [REGISTRY] } };
  },

  async stop() {
    await removeNetwork();
  },
};

/**
 * The key GitLab signs registry tokens with (gitlab.yml `registry.key`) and the certificate the registry trusts
 * them by (its `auth.token.rootcertbundle`), made once per `up`.
 */
export async function makeGitlabRegistryKey(dir: string): Promise<{ keyFile: string; certFile: string }> {
  const [keyFile, certFile] = [join(dir, 'registry-token.key'), join(dir, 'registry-token.crt')];
  await sh`openssl req -x509 -newkey rsa:2048 -nodes -keyout ${keyFile} -out ${certFile} -days 7 -subj /CN=gitlab-standin-registry-token`;
  return { keyFile, certFile };
}

/**
 * GitLab's container registry as GitLab runs it: distribution with token auth, whose challenge sends Docker to the
 * stand-in's /jwt/auth (`realm`) and which accepts only tokens signed with the stand-in's key. Same data-less
 * config otherwise; the registry's own namespace, so nodes reach it like the other one.
 */
export async function startGitlabRegistry(
  ctx: ServiceContext,
  realm: string,
  certFile: string,
): Promise<void> {
  const config = join(ctx.dir, 'gitlab-registry.yml');
  writeFileSync(
    config,
    [
      "# GitLab's container registry for the runner-fleet test fleet: token auth against the GitLab stand-in.",
      'version: 0.1',
      'log: {level: info}',
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(ctx.dir, 'gitlab-registry-data'))}}, delete: {enabled: true}}`,
      `http: {addr: "${GITLAB_REGISTRY}"}`,
      // gitlab.yml's registry defaults: service container_registry, issuer gitlab-issuer.
      `auth: {token: {realm: ${JSON.stringify(realm)}, service: container_registry, issuer: gitlab-issuer, rootcertbundle: ${JSON.stringify(certFile)}}}`,
      '',
    ].join('\n'),
  );
  ctx.spawnDaemon('gitlab-registry', 'nsenter', [
    `--net=/run/netns/${REGISTRY_NETNS}`,
    '--',
    'docker-registry',
    'serve',
    config,
  ]);
  const challenged = async () => {
    try {
      const res = await fetch(`http://${GITLAB_REGISTRY}/v2/`, { signal: AbortSignal.timeout(1000) });
      return res.status === 401 && (res.headers.get('www-authenticate') ?? '').startsWith('Bearer ');
    } catch {
      return false;
    }
  };
  if (!(await waitFor(challenged, 15_000, 100)))
    throw new Error(
      `GitLab's registry did not answer with a token challenge on http://${GITLAB_REGISTRY}/v2/ (see ${join(ctx.dir, 'gitlab-registry.log')})`,
    );
  ctx.log(`GitLab's registry on ${GITLAB_REGISTRY} (tokens from ${realm})`);
}

/**
 * A path MTU black hole in front of the registries: their namespace drops ICMP "fragmentation needed", as firewalls
 * and tunnels that swallow ICMP do. A sender that never hears it keeps its segments at the size the receiver
 * announced (its MSS), so a client behind a narrower link than its own interface says gets no large packet back.
 * Without it this kernel's path MTU discovery hides the mismatch (verified: the download then just works). Goes with
 * the namespace at `down`; the route cache is flushed so nothing learned earlier stays.
 */
export async function blackholePathMtu(): Promise<void> {
  const inNetns = ['nsenter', `--net=/run/netns/${REGISTRY_NETNS}`, '--'];
  await sh`${inNetns} iptables -w -I INPUT -p icmp --icmp-type fragmentation-needed -j DROP`;
  await sh`${inNetns} ip route flush cache`;
}
