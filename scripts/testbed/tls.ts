// A private CA for the test fleet: a test CA made with openssl, an HTTPS registry beside the plain one, and the GitLab
// stand-in with an HTTPS listener, both with a certificate from that CA.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StandinServerInfo } from '../../test/gitlab/server.js';
import { net, REPO } from './paths.js';
import { sh, spawnDaemon, terminate, waitFor } from './procs.js';
import { REGISTRY_ADDR, REGISTRY_NETNS } from './registry.js';

/** The HTTPS registry's port, beside the plain one (5000) in the same namespace. */
export const TLS_REGISTRY_PORT = 5443;
export const TLS_REGISTRY = `${REGISTRY_ADDR}:${TLS_REGISTRY_PORT}`;

export interface TestPki {
  dir: string;
  /** the CA certificate (what gitlab.caFile names) */
  ca: string;
  cert: string;
  key: string;
}

/**
 * A CA and one server certificate for the registry's and the stand-in's addresses (IP SANs: both are reached by
 * address). Everything lives in `dir`; the CA's key never leaves it.
 */
export async function makeTestPki(dir: string): Promise<TestPki> {
  mkdirSync(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  await sh`openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=runner-fleet-test-ca -keyout ${p('ca.key')} -out ${p('ca.pem')}`;
  await sh`openssl req -newkey rsa:2048 -nodes -subj /CN=runner-fleet-test-server -keyout ${p('server.key')} -out ${p('server.csr')}`;
  writeFileSync(
    p('san.cnf'),
    `subjectAltName = IP:${REGISTRY_ADDR}, IP:${net.hostAddr()}\nextendedKeyUsage = serverAuth\n`,
  );
  await sh`openssl x509 -req -in ${p('server.csr')} -CA ${p('ca.pem')} -CAkey ${p('ca.key')} -CAcreateserial -days 2 -extfile ${p('san.cnf')} -out ${p('server.pem')}`;
  return { dir, ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

export interface TlsService {
  pid: number;
  stop(): Promise<void>;
}

/**
 * Debian's docker-registry serving HTTPS on TLS_REGISTRY, in the registry's namespace; its data under `storage`
 * (default `dir/data`). Given the plain registry's data directory, it serves what the images service pushed there
 * (the runner, helper, job and dind images) at no extra push: a registry keeps no state outside its storage.
 */
export async function startTlsRegistry(
  dir: string,
  pki: TestPki,
  storage = join(dir, 'data'),
): Promise<TlsService> {
  mkdirSync(dir, { recursive: true });
  mkdirSync(storage, { recursive: true });
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    [
      '# The runner-fleet test registry over HTTPS (a private CA). Written by scripts/testbed/tls.ts.',
      'version: 0.1',
      'log: {level: info}',
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(storage)}}, delete: {enabled: true}}`,
      `http: {addr: "${TLS_REGISTRY}", tls: {certificate: ${JSON.stringify(pki.cert)}, key: ${JSON.stringify(pki.key)}}}`,
      '',
    ].join('\n'),
  );
  const pid = spawnDaemon(
    'nsenter',
    [`--net=/run/netns/${REGISTRY_NETNS}`, '--', 'docker-registry', 'serve', config],
    { log: join(dir, 'registry.log') },
  );
  const answers = async () =>
    (await sh({ nothrow: true })`curl -sf --cacert ${pki.ca} -o /dev/null https://${TLS_REGISTRY}/v2/`).ok;
  if (!(await waitFor(answers, 15_000, 200)))
    throw new Error(`the HTTPS registry did not answer (see ${join(dir, 'registry.log')})`);
  return { pid, stop: () => terminate([pid], 3000) };
}

/** Whether the HTTPS registry's `storage` holds `repository:tag` (read on disk: this process does not trust the test CA). */
export function tlsRegistryHasTag(storage: string, repository: string, tag: string): boolean {
  return existsSync(
    join(storage, 'docker', 'registry', 'v2', 'repositories', repository, '_manifests', 'tags', tag),
  );
}

/** The GitLab stand-in with an HTTPS listener too; `url` (plain HTTP) is for the test's own calls. */
export async function startTlsStandin(
  dir: string,
  pki: TestPki,
): Promise<TlsService & { info: StandinServerInfo }> {
  mkdirSync(dir, { recursive: true });
  const stateFile = join(dir, 'server.json');
  const pid = spawnDaemon(
    join(REPO, 'node_modules', '.bin', 'tsx'),
    [
      join(REPO, 'test', 'gitlab', 'server.ts'),
      '--host',
      net.hostAddr(),
      '--port',
      '0',
      '--state-file',
      stateFile,
      '--tokens-dir',
      join(dir, 'tokens'),
      '--tls-cert',
      pki.cert,
      '--tls-key',
      pki.key,
    ],
    { log: join(dir, 'gitlab.log') },
  );
  if (!(await waitFor(async () => existsSync(stateFile), 30_000, 100)))
    throw new Error(`the HTTPS GitLab stand-in did not start (see ${join(dir, 'gitlab.log')})`);
  const info = JSON.parse(readFileSync(stateFile, 'utf8')) as StandinServerInfo;
  return { pid, info, stop: () => terminate([pid], 3000) };
}
