// The test fleet's Kubernetes: real etcd, kube-apiserver, controller-manager and scheduler; real kubelets join from the
// fleet's nodes (scripts/testbed/kubelet.ts), kwok plays the nodes the fleet does not have.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ApiException,
  CoreV1Api,
  Health,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { stringify as stringifyYaml } from 'yaml';
import { CNI_CONFLIST, cniConfDir } from './kubelet.js';
import { nodeDir, REPO, stateRoot } from './paths.js';
import { memoryOf, processInfo, sh, signal, sleep, spawnDaemon } from './procs.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILD_SCRIPT = join(REPO, 'scripts', 'build-test-cluster.sh');
const STAGES = join(HERE, 'kwok', 'stages.yaml');

/** Label that the kwok stages in kwok/stages.yaml read: present = the node reports Ready=False. */
export const NOT_READY_LABEL = 'runner-fleet.test/not-ready';
const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';
const SERVICE_CIDR = '10.96.0.0/16';
const STATE_MARKER = '.runner-fleet-test-cluster';

export interface ClusterOptions {
  /** everything lives here: PKI, etcd data, logs, kubeconfigs, pids.json; wiped on start */
  stateDir: string;
  /** Node objects kwok plays (created here) */
  nodes: string[];
  /** nodes a real kubelet registers: each gets a client certificate (system:node:<name>) and a kubeconfig */
  kubelets?: string[];
  /** starts those kubelets once the control plane answers; `up` waits for them to be Ready after it */
  startKubelets?: (plane: ControlPlane) => Promise<void>;
  /** the apiserver's address (default 127.0.0.1); kubelets in node namespaces reach the fleet's host address */
  bindAddress?: string;
  /** more Node objects the fleet does not know (the DaemonSet must stay off them) */
  extraNodes?: string[];
  /** where the binaries are; default: what scripts/build-test-cluster.sh prints */
  binDir?: string;
  /** per component start-up limit, seconds */
  timeout?: number;
}

/** What a kubelet needs from the control plane. */
export interface ControlPlane {
  server: string;
  caFile: string;
  /** kubeconfig per kubelet node name */
  nodeKubeconfigs: Record<string, string>;
  binDir: string;
}

export interface TestCluster {
  /** admin kubeconfig (client certificate in group system:masters) */
  kubeconfig: string;
  server: string;
  stateDir: string;
  /** PIDs by component, as recorded in pids.json */
  pids: Record<string, number>;
  stop(): Promise<void>;
}

interface PidRecord {
  component: string;
  pid: number;
  /** binary and start time (clock ticks since boot): a recycled PID is never taken for ours */
  exe: string;
  startTime: number;
}

/** Which Node objects a cluster has and who plays them (startCluster's options of that name). */
export type ClusterNodes = Pick<ClusterOptions, 'nodes' | 'kubelets' | 'extraNodes'>;

/** Whether startCluster launches kwok: only when some Node object has no kubelet behind it. */
function needsKwok(opts: ClusterNodes): boolean {
  return opts.nodes.length + (opts.extraNodes ?? []).length > 0;
}

/** Binaries a cluster runs: the control plane; kubelet and crictl for real nodes; kwok for the nodes it plays. */
export function clusterBinaries(opts: ClusterNodes): string[] {
  return [
    'kube-apiserver',
    'kube-controller-manager',
    'kube-scheduler',
    'etcd',
    ...((opts.kubelets ?? []).length > 0 ? ['kubelet', 'crictl'] : []),
    ...(needsKwok(opts) ? ['kwok'] : []),
  ];
}

/**
 * Runs the build script (a no-op when built) and returns the bin dir it prints. `binaries`: only those (a cold
 * `up` builds what it runs, not kubectl); default every one. An abort kills the build (its go processes too).
 */
export async function clusterBinDir(binaries?: string[], abort?: AbortSignal): Promise<string> {
  const env = binaries ? { ...process.env, RUNNER_FLEET_CLUSTER_BINARIES: binaries.join(' ') } : process.env;
  const build = sh({ env })`bash ${BUILD_SCRIPT}`;
  const kill = (): void => {
    // zx ends the whole tree (go and its compilers). Throws when the build already settled: nothing to end then.
    try {
      void build.kill().catch(() => {});
    } catch {
      /* settled */
    }
  };
  abort?.addEventListener('abort', kill, { once: true });
  try {
    const { stdout } = await build;
    const dir = stdout.trim().split('\n').pop() ?? '';
    if (!existsSync(join(dir, 'kube-apiserver')))
      throw new Error(`build-test-cluster.sh printed no bin dir (got "${dir}")`);
    return dir;
  } finally {
    abort?.removeEventListener('abort', kill);
  }
}

export async function startCluster(opts: ClusterOptions): Promise<TestCluster> {
  const stateDir = resolve(opts.stateDir);
  const timeoutMs = (opts.timeout ?? 60) * 1000;
  const kubelets = opts.kubelets ?? [];
  const kwok = needsKwok(opts);
  const bin = opts.binDir ?? (await clusterBinDir(clusterBinaries(opts)));
  await stopCluster(stateDir);
  // Wiped on start, but only a directory that is empty or that we made: a wrong path must not lose data.
  if (existsSync(stateDir) && readdirSync(stateDir).length > 0 && !existsSync(join(stateDir, STATE_MARKER))) {
    throw new Error(
      `${stateDir} is not empty and was not made by startCluster (no ${STATE_MARKER}); refusing to wipe it`,
    );
  }
  rmSync(stateDir, { recursive: true, force: true });
  for (const d of ['pki', 'logs', 'etcd', 'kwok-home'])
    mkdirSync(join(stateDir, d), { recursive: true, mode: 0o700 });
  writeFileSync(join(stateDir, STATE_MARKER), '');

  const bind = opts.bindAddress ?? '127.0.0.1';
  const [etcdClient, etcdPeer] = await freePorts(2);
  const [apiPort] = await freePorts(1, bind);
  const pids: PidRecord[] = [];
  const stop = async (): Promise<void> => stopCluster(stateDir);
  try {
    // etcd and the PKI do not depend on each other: start etcd first, it is the slowest to settle.
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    pids.push(
      launch(stateDir, 'etcd', join(bin, 'etcd'), [
        '--name=test',
        `--data-dir=${join(stateDir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=test=http://127.0.0.1:${etcdPeer}`,
        // A throw-away store: durability buys nothing here and fsync makes every write slow.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]),
    );
    writePids(stateDir, pids);

    const server = `https://${bind}:${apiPort}`;
    const pki = await makePki(join(stateDir, 'pki'), bind, kubelets);
    const kubeconfigs: Record<string, string> = {};
    for (const [name, cert] of Object.entries(pki.clients)) {
      kubeconfigs[name] = join(stateDir, `${name}.kubeconfig`);
      writeKubeconfig(kubeconfigs[name], server, pki.caFile, cert, name);
    }
    const nodeKubeconfigs: Record<string, string> = {};
    for (const [name, cert] of Object.entries(pki.nodes)) {
      nodeKubeconfigs[name] = join(stateDir, `node-${name}.kubeconfig`);
      writeKubeconfig(nodeKubeconfigs[name], server, pki.caFile, cert, `system:node:${name}`);
    }

    await waitFor(
      'etcd',
      timeoutMs,
      async () => (await etcdHealth(etcdUrl)).includes('"health":"true"'),
      stateDir,
      pids,
    );

    const p = (f: string): string => join(stateDir, 'pki', f);
    pids.push(
      launch(stateDir, 'kube-apiserver', join(bin, 'kube-apiserver'), [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${bind}`,
        `--advertise-address=${bind}`,
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${p('apiserver.crt')}`,
        `--tls-private-key-file=${p('apiserver.key')}`,
        `--client-ca-file=${p('ca.crt')}`,
        // logs, exec and port-forward go to the kubelets as system:masters, at the node's own address
        `--kubelet-client-certificate=${p('apiserver-kubelet-client.crt')}`,
        `--kubelet-client-key=${p('apiserver-kubelet-client.key')}`,
        '--kubelet-preferred-address-types=InternalIP,Hostname',
        '--authorization-mode=Node,RBAC',
        // The default plugin set stays on; NodeRestriction is what real clusters add on top of it.
        '--enable-admission-plugins=NodeRestriction',
        `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
        `--service-account-key-file=${p('sa.pub')}`,
        `--service-account-signing-key-file=${p('sa.key')}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        // Endpoints may not hold loopback addresses; without this the apiserver logs an error every few seconds.
        '--endpoint-reconciler-type=none',
        '--profiling=false',
        '--v=1',
      ]),
    );
    writePids(stateDir, pids);
    const admin = adminClient(kubeconfigs.admin);
    await waitFor(
      'kube-apiserver',
      timeoutMs,
      () => new Health(admin.config).readyz({ signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }),
      stateDir,
      pids,
    );

    pids.push(
      launch(stateDir, 'kube-controller-manager', join(bin, 'kube-controller-manager'), [
        `--kubeconfig=${kubeconfigs['kube-controller-manager']}`,
        // No metrics/health endpoint is needed, so nothing listens at all.
        '--secure-port=0',
        '--leader-elect=false',
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${p('sa.key')}`,
        `--root-ca-file=${p('ca.crt')}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        // Pods on a node that turned NotReady are marked NotReady within 2 s instead of 5 s.
        '--node-monitor-period=2s',
        '--v=1',
      ]),
      launch(stateDir, 'kube-scheduler', join(bin, 'kube-scheduler'), [
        `--kubeconfig=${kubeconfigs['kube-scheduler']}`,
        '--secure-port=0',
        '--leader-elect=false',
        '--v=1',
      ]),
    );
    if (kwok)
      pids.push(
        launch(
          stateDir,
          'kwok',
          join(bin, 'kwok'),
          [
            `--kubeconfig=${kubeconfigs.kwok}`,
            `--config=${STAGES}`,
            `--manage-nodes-with-annotation-selector=${KWOK_ANNOTATION}=fake`,
            '--node-lease-duration-seconds=40',
            '--node-ip=198.18.0.1',
            '--cidr=10.244.0.0/16',
          ],
          // kwok also reads ~/.kwok/kwok.yaml when it exists; a private HOME keeps a developer's file out.
          { HOME: join(stateDir, 'kwok-home') },
        ),
      );
    writePids(stateDir, pids);

    for (const name of [...opts.nodes, ...(opts.extraNodes ?? [])])
      await timed(admin.core.createNode({ body: nodeObject(name) }));
    await opts.startKubelets?.({ server, caFile: pki.caFile, nodeKubeconfigs, binDir: bin });
    // Ready and untainted: the node lifecycle controller lifts the initial not-ready taint a moment after
    // kwok reports Ready, and until then the scheduler would leave DaemonSet pods Pending.
    await waitFor(
      'nodes Ready',
      timeoutMs,
      async () => {
        const list = await timed(admin.core.listNode());
        return [...opts.nodes, ...kubelets, ...(opts.extraNodes ?? [])].every((n) =>
          list.items.some(
            (i) =>
              i.metadata?.name === n &&
              nodeReady(i) &&
              !(i.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/')),
          ),
        );
      },
      stateDir,
      pids,
    );
    return {
      kubeconfig: kubeconfigs.admin,
      server,
      stateDir,
      pids: Object.fromEntries(pids.map((r) => [r.component, r.pid])),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Stops whatever startCluster recorded in stateDir; safe from another process and when nothing runs. */
export async function stopCluster(stateDir: string): Promise<void> {
  const file = join(resolve(stateDir), 'pids.json');
  if (!existsSync(file)) return;
  let records: PidRecord[];
  try {
    records = JSON.parse(readFileSync(file, 'utf8')) as PidRecord[];
  } catch {
    return;
  }
  // Reverse start order: kwok and the controllers go before the apiserver, the apiserver before etcd.
  for (const r of [...records].reverse()) {
    if (!isOurProcess(r)) continue;
    signal(-r.pid, 'SIGTERM'); // the whole process group: spawnDaemon starts each in its own session
    const deadline = Date.now() + 10_000;
    while (isOurProcess(r) && Date.now() < deadline) await sleep(50);
    if (isOurProcess(r)) {
      signal(-r.pid, 'SIGKILL');
      while (isOurProcess(r)) await sleep(20);
    }
  }
  rmSync(file, { force: true });
}

/**
 * Makes a node report Ready=False, or Ready again, and waits until the Node shows it. A kwok node through the stage
 * keyed on NOT_READY_LABEL; a real kubelet the way a real one gets there: its CNI configuration goes away (the
 * container runtime's network is not ready; containerd notices at once, the kubelet reports it within ~10 s) and
 * comes back. Pods on the node keep running and keep their last status. On the way back, kwok pods left NotReady
 * are deleted for the DaemonSet to recreate, because kwok (unlike a kubelet) never reports an existing pod Ready again.
 */
export async function setNodeReady(
  kubeconfig: string,
  name: string,
  ready: boolean,
  timeoutSec = 60,
): Promise<void> {
  const { core } = adminClient(kubeconfig);
  const current = await timed(core.readNode({ name }));
  const kwok = current.metadata?.annotations?.[KWOK_ANNOTATION] !== undefined;
  if (kwok) {
    await timed(
      core.patchNode(
        { name, body: { metadata: { labels: { [NOT_READY_LABEL]: ready ? null : 'true' } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  } else {
    const conf = join(cniConfDir({ name }, stateRoot()), CNI_CONFLIST);
    const parked = join(nodeDir(name), 'k8s', `${CNI_CONFLIST}.parked`);
    // containerd 1.6 reloads on rename, remove and write, not on create: put it back by writing it.
    if (ready && existsSync(parked)) {
      writeFileSync(conf, readFileSync(parked));
      rmSync(parked);
    }
    if (!ready && existsSync(conf)) renameSync(conf, parked);
  }
  const deadline = Date.now() + timeoutSec * 1000;
  for (;;) {
    const node = await timed(core.readNode({ name }));
    const tainted = (node.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
    // Ready again also means the node controller lifted its not-ready taints, or nothing schedules there.
    if (nodeReady(node) === ready && (!ready || !tainted)) break;
    if (Date.now() > deadline)
      throw new Error(`node ${name} did not become ${ready ? 'Ready' : 'NotReady'} within ${timeoutSec}s`);
    await sleep(200);
  }
  if (!kwok) return;
  if (ready) {
    const pods = await timed(core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${name}` }));
    for (const p of pods.items.filter((x) => !podReady(x))) {
      const gone = timed(
        core.deleteNamespacedPod({
          name: p.metadata?.name ?? '',
          namespace: p.metadata?.namespace ?? '',
          gracePeriodSeconds: 0,
        }),
      );
      // Deleted meanwhile (the DaemonSet controller is quicker): what was asked for.
      await gone.catch((err: unknown) => {
        if (!(err instanceof ApiException && err.code === 404)) throw err;
      });
    }
  }
}

/** Resident memory of the cluster's processes in MiB, by component. */
export function clusterMemory(stateDir: string): Record<string, number> {
  const file = join(resolve(stateDir), 'pids.json');
  if (!existsSync(file)) return {};
  const records = JSON.parse(readFileSync(file, 'utf8')) as PidRecord[];
  return Object.fromEntries(
    records.filter(isOurProcess).map((r) => [r.component, Math.round(memoryOf([r.pid]).rssKb / 1024)]),
  );
}

// ---------------------------------------------------------------------------------------------------------------

function nodeReady(n: V1Node): boolean {
  return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}
function podReady(p: V1Pod): boolean {
  return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function nodeObject(name: string): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/arch': 'arm64',
        'kubernetes.io/os': 'linux',
        'kubernetes.io/hostname': name,
        type: 'kwok',
      },
      annotations: { [KWOK_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
    },
    // No taints: the node lifecycle controller adds and removes not-ready taints itself.
    spec: {},
  };
}

function launch(
  stateDir: string,
  component: string,
  exe: string,
  args: string[],
  env: Record<string, string> = {},
): PidRecord {
  const pid = spawnDaemon(exe, args, {
    log: join(stateDir, 'logs', `${component}.log`),
    env: { ...process.env, ...env },
  });
  const info = processInfo(pid);
  if (!info)
    throw new Error(`${component} exited at once:\n${tail(join(stateDir, 'logs', `${component}.log`))}`);
  return { component, pid, exe, startTime: info.startTime };
}

function writePids(stateDir: string, pids: PidRecord[]): void {
  writeFileSync(join(stateDir, 'pids.json'), JSON.stringify(pids, null, 2));
}

function isOurProcess(r: PidRecord): boolean {
  const info = processInfo(r.pid); // undefined for a zombie too
  return info !== undefined && info.startTime === r.startTime && info.cmdline.startsWith(r.exe);
}

async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  stateDir: string,
  pids: PidRecord[],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    const dead = pids.find((r) => !isOurProcess(r));
    if (dead)
      throw new Error(
        `${dead.component} exited while waiting for ${what}:\n${tail(join(stateDir, 'logs', `${dead.component}.log`))}`,
      );
    try {
      if (await check()) return;
    } catch (err) {
      // not up yet; said on timeout, where a refused connection and a rejected request look different
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs / 1000}s waiting for ${what}${lastError ? ` (last error: ${lastError.slice(0, 300)})` : ''} (logs in ${join(stateDir, 'logs')})`,
      );
    await sleep(100);
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Free TCP ports on host (held open together so that they differ). */
async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((ok, fail) => {
          const s = createServer();
          s.once('error', fail);
          s.listen(0, host, () => ok(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

// ---------------------------------------------------------------------------------------------------------------
// PKI: one CA signs the apiserver's serving cert and a client cert per component; EC P-256 keys are instant.

interface Pki {
  caFile: string;
  clients: Record<
    'admin' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok',
    { cert: string; key: string }
  >;
  /** per kubelet node: O=system:nodes, CN=system:node:<name> (what the Node authorizer and NodeRestriction expect) */
  nodes: Record<string, { cert: string; key: string }>;
}

/** `openssl req` making a self-signed P-256 certificate with a new, unencrypted key: the CA and every leaf. */
const NEW_EC_CERT = [
  'req',
  '-x509',
  '-new',
  '-newkey',
  'ec',
  '-pkeyopt',
  'ec_paramgen_curve:prime256v1',
  '-nodes',
];

async function makePki(dir: string, bind: string, kubelets: string[]): Promise<Pki> {
  await ensureOpenssl();
  const f = (n: string): string => join(dir, n);
  await openssl([
    ...NEW_EC_CERT,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-subj',
    '/CN=runner-fleet-test-ca',
    '-days',
    '30',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaf = async (
    name: string,
    subject: string[][],
    ext: string[],
  ): Promise<{ cert: string; key: string }> => {
    const cnf = f(`${name}.cnf`);
    writeFileSync(
      cnf,
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        ...subject.map(([k, v]) => `${k} = ${v}`),
        '[ext]',
        'basicConstraints = critical,CA:FALSE',
        'keyUsage = critical,digitalSignature,keyEncipherment',
        ...ext,
        '',
      ].join('\n'),
    );
    await openssl([
      ...NEW_EC_CERT,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.crt`),
      '-config',
      cnf,
      '-extensions',
      'ext',
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-days',
      '30',
    ]);
    rmSync(cnf);
    return { cert: f(`${name}.crt`), key: f(`${name}.key`) };
  };
  const client = ['extendedKeyUsage = clientAuth'];
  const [, admin, cm, sched, kwok] = await Promise.all([
    leaf(
      'apiserver',
      [['CN', 'kube-apiserver']],
      [
        'extendedKeyUsage = serverAuth',
        `subjectAltName = IP:127.0.0.1,${bind === '127.0.0.1' ? '' : `IP:${bind},`}IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`,
      ],
    ),
    leaf(
      'admin',
      [
        ['O', 'system:masters'],
        ['CN', 'runner-fleet-test-admin'],
      ],
      client,
    ),
    leaf('kube-controller-manager', [['CN', 'system:kube-controller-manager']], client),
    leaf('kube-scheduler', [['CN', 'system:kube-scheduler']], client),
    // kwok speaks for every fake node at once, which the Node authorizer cannot express (one node per identity).
    leaf(
      'kwok',
      [
        ['O', 'system:masters'],
        ['CN', 'kwok'],
      ],
      client,
    ),
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('sa.key')]),
    leaf(
      'apiserver-kubelet-client',
      [
        ['O', 'system:masters'],
        ['CN', 'kube-apiserver-kubelet-client'],
      ],
      client,
    ),
  ]);
  await openssl(['pkey', '-in', f('sa.key'), '-pubout', '-out', f('sa.pub')]);
  const nodes: Pki['nodes'] = {};
  for (const name of kubelets)
    nodes[name] = await leaf(
      `node-${name}`,
      [
        ['O', 'system:nodes'],
        ['CN', `system:node:${name}`],
      ],
      client,
    );
  return {
    caFile: f('ca.crt'),
    clients: { admin, 'kube-controller-manager': cm, 'kube-scheduler': sched, kwok },
    nodes,
  };
}

async function openssl(args: string[]): Promise<void> {
  const r = await sh({ nothrow: true })`openssl ${args}`;
  if (!r.ok) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim()}`);
}

async function ensureOpenssl(): Promise<void> {
  if ((await sh({ nothrow: true })`openssl version`).ok) return;
  const apt = sh({ env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const install = () => apt`apt-get install -y --no-install-recommends openssl`;
  // A fresh machine may have no package lists yet.
  await install().catch(async () => {
    await apt`apt-get update`;
    await install();
  });
}

function writeKubeconfig(
  path: string,
  server: string,
  caFile: string,
  cert: { cert: string; key: string },
  user: string,
): void {
  const b64 = (file: string): string => readFileSync(file).toString('base64');
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'runner-fleet-test', cluster: { server, 'certificate-authority-data': b64(caFile) } }],
    users: [
      { name: user, user: { 'client-certificate-data': b64(cert.cert), 'client-key-data': b64(cert.key) } },
    ],
    contexts: [{ name: 'runner-fleet-test', context: { cluster: 'runner-fleet-test', user } }],
    'current-context': 'runner-fleet-test',
  };
  writeFileSync(path, stringifyYaml(doc), { mode: 0o600 });
}

// ---------------------------------------------------------------------------------------------------------------
// A few API calls (creating nodes, flipping readiness) through client-node's own CoreV1Api. The product talks to
// Kubernetes only through src/kube/client.ts; the test fleet stays independent of that module so that it can check it.

/** The longest one request may take: a wedged apiserver must not outlast the waits' own deadlines. */
const REQUEST_TIMEOUT_MS = 10_000;

function adminClient(kubeconfig: string): { config: KubeConfig; core: CoreV1Api } {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  return { config, core: config.makeApiClient(CoreV1Api) };
}

/** Rejects once REQUEST_TIMEOUT_MS have passed (client-node's calls take no timeout of their own). */
function timed<T>(call: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, fail) => {
    timer = setTimeout(
      () => fail(new Error(`no answer from the apiserver within ${REQUEST_TIMEOUT_MS} ms`)),
      REQUEST_TIMEOUT_MS,
    );
  });
  return Promise.race([call, late]).finally(() => clearTimeout(timer));
}

/** etcd's own /health (plain HTTP on loopback; etcd is no apiserver), or '' when it does not answer 200 yet. */
async function etcdHealth(etcdUrl: string): Promise<string> {
  const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(5000) });
  return res.status === 200 ? (await res.text()).trim() : '';
}

// `tsx scripts/testbed/cluster.ts start <stateDir> <node>... [--extra <node>...]` | `stop <stateDir>`
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  // `--extra` is a divider: the names after it are kwok's nodes, the ones before it the fleet's.
  const { positionals, tokens } = parseArgs({
    options: { extra: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
    tokens: true,
  });
  const divider = tokens.find((t) => t.kind === 'option')?.index ?? Infinity;
  const before = tokens.filter((t) => t.kind === 'positional' && t.index < divider).length;
  const [cmd, stateDir, ...rest] = positionals;
  if (cmd === 'stop' && stateDir) {
    await stopCluster(stateDir);
  } else if (cmd === 'start' && stateDir) {
    const nodes = rest.slice(0, Math.max(0, before - 2));
    const extraNodes = rest.slice(Math.max(0, before - 2));
    const t0 = Date.now();
    const c = await startCluster({ stateDir, nodes, extraNodes });
    console.log(
      `cluster up in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${c.server}\nKUBECONFIG=${c.kubeconfig}`,
    );
  } else {
    console.error('usage: cluster.ts start <stateDir> <node>... [--extra <node>...] | stop <stateDir>');
    process.exit(2);
  }
}
