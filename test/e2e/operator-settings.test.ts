// Operator settings with the REAL gitlab-runner 17.9.3 (shell executor) against the GitLab stand-in, each runner started from
// the config.toml runner-fleet renders for it: the shared S3 cache (a real S3 server, s3rver, which checks the
// presigned URLs' signatures) saved by one node's runner and restored by the other's, and the metrics listener
// read the way `status` reads it while a job runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitGatherOutput } from '../../src/docker/facts.js';
import { parseInventory } from '../../src/inventory/schema.js';
import type { Inventory } from '../../src/inventory/types.js';
import { renderConfigToml } from '../../src/runners/config-toml.js';
import { metricsGatherScript, metricsTarget, parseJobs } from '../../src/status/metrics.js';
import { startGitlabStandin, type GitlabStandin, type StandinJobView } from '../gitlab/standin.js';
import { findGitlabRunner, requireGitlabRunner } from '../support/gitlabRunner.js';
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import {
  down,
  execOnNode,
  type FleetInfo,
  nodeDockerPid,
  nodeFile,
  servicesNamed,
  startCluster,
  type TestCluster,
  up,
} from '#testbed';
import { requireRoot } from '../support/requireRoot.js';
import { runProvision } from '../support/provision.js';
import { withSecrets } from '../support/secrets.js';
import { KubeClient } from '../../src/kube/client.js';
import { convergeCluster } from '../../src/kube/cluster-converge.js';

const enabled = requireGitlabRunner('operator settings (cache, metrics) with the real gitlab-runner');
const BUCKET = 'runner-cache';
// s3rver's fixed credentials; runner-fleet reads them by reference like any secret.
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface Node {
  name: string;
  runnerId: number;
  metricsPort: number;
  process?: ChildProcess;
  log: string;
}

describe.runIf(enabled)('runners.cache and runners.metrics with the real gitlab-runner', () => {
  let dir: string;
  let gl: GitlabStandin;
  let s3: S3rver;
  let s3Port = 0;
  let inv: Inventory;
  const nodes: Node[] = [
    { name: 'pi1', runnerId: 0, metricsPort: 0, log: '' },
    { name: 'pi2', runnerId: 0, metricsPort: 0, log: '' },
  ];

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(gl.url + path, {
      method,
      headers: { 'content-type': 'application/json', 'PRIVATE-TOKEN': gl.tokens.accessToken },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const queue = async (job: string, ciYaml: string) => {
    const res = await fetch(`${gl.url}/_standin/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ project: 'ci/cached', ciYaml, job }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: number }).id;
  };
  const view = async (id: number) =>
    (await (await fetch(`${gl.url}/_standin/jobs/${id}`)).json()) as StandinJobView;
  const waitFor = async (
    id: number,
    ms: number,
    done = (v: StandinJobView) => ['success', 'failed', 'canceled'].includes(v.status),
  ) => {
    const until = Date.now() + ms;
    for (;;) {
      const v = await view(id);
      if (done(v)) return v;
      if (Date.now() > until)
        throw new Error(
          `job ${id} still ${v.status} after ${ms} ms; runner logs:\n${nodes.map((n) => `--- ${n.name}\n${n.log}`).join('\n')}`,
        );
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  /** What `status` runs on the node, here on this machine: the sum of gitlab_runner_jobs. */
  const jobsOf = async (node: Node) => {
    const target = metricsTarget('127.0.0.1', node.metricsPort);
    const { stdout } = await promisify(execFile)('sh', ['-c', metricsGatherScript(target)]);
    return parseJobs(splitGatherOutput(stdout).sections, target);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rf-operator-settings-'));
    s3 = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: join(dir, 's3'),
      configureBuckets: [{ name: BUCKET, configs: [] }],
    });
    s3Port = (await s3.run()).port;
    gl = await startGitlabStandin({ stateDir: join(dir, 'gitlab') });
    const res = await fetch(`${gl.url}/_standin/projects`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'ci/cached', files: { 'README.md': 'cache test\n' } }),
    });
    expect(res.status).toBe(201);

    process.env.RF_TEST_CACHE_AK = ACCESS_KEY;
    writeFileSync(join(dir, 'secret-key'), `${SECRET_KEY}\n`, { mode: 0o600 });
    for (const n of nodes) n.metricsPort = await freePort();
    inv = withSecrets(
      parseInventory(
        [
          `gitlab: { url: "${gl.url}", registry: "127.0.0.1:5000", accessToken: env:RF_UNUSED }`,
          'nodes: [{ name: pi1, host: 127.0.0.11 }, { name: pi2, host: 127.0.0.12 }]',
          'runners:',
          '  executor: shell',
          '  checkInterval: 1',
          `  cache: { serverAddress: "127.0.0.1:${s3Port}", bucketName: ${BUCKET}, bucketLocation: us-east-1, insecure: true, accessKey: env:RF_TEST_CACHE_AK, secretKey: "file:${join(dir, 'secret-key')}", path: fleet }`,
          '  metrics: { port: 9252 }',
          '',
        ].join('\n'),
        join(dir, 'fleet.yaml'),
      ),
      // Read as apply reads them, once, before anything is contacted; the token is never used here.
      { 'gitlab.accessToken': 'glpat-unused-0001' },
    );

    for (const n of nodes) {
      const created = await api('POST', '/api/v4/user/runners', {
        runner_type: 'instance_type',
        description: n.name,
        tag_list: [n.name],
        run_untagged: false,
      });
      expect(created.status).toBe(201);
      n.runnerId = created.body.id;
      const systemId = `s_${n.name}settings00`.slice(0, 14);
      const record = {
        node: n.name,
        mode: 'access' as const,
        id: n.runnerId,
        token: created.body.token as string,
        systemId,
        settings: null,
        createdAt: new Date().toISOString(),
      };
      const node = inv.nodes.find((x) => x.name === n.name)!;
      // Rendered by runner-fleet for a host runner (the node's loopback only); only the port moves, so the two
      // runners on this one machine do not share it.
      const rendered = renderConfigToml({
        inventory: inv,
        node,
        record,
        executor: 'shell',
        arch: 'amd64',
        placement: 'host',
      });
      expect(rendered).toContain('listen_address = "127.0.0.1:9252"');
      const text = rendered.replace(
        'listen_address = "127.0.0.1:9252"',
        `listen_address = "127.0.0.1:${n.metricsPort}"`,
      );
      const configDir = join(dir, n.name, 'config');
      mkdirSync(configDir, { recursive: true });
      writeFileSync(join(configDir, 'config.toml'), text, { mode: 0o600 });
      writeFileSync(join(configDir, '.runner_system_id'), `${systemId}\n`, { mode: 0o600 });
      const work = join(dir, n.name, 'work');
      mkdirSync(work);
      n.process = spawn(
        findGitlabRunner().path!,
        ['run', '--config', join(configDir, 'config.toml'), '--working-directory', work],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: work } },
      );
      n.process.stdout!.on('data', (d) => (n.log += d));
      n.process.stderr!.on('data', (d) => (n.log += d));
    }
    const until = Date.now() + 60_000;
    while (
      !nodes.every((n) =>
        gl.state.managers.some(
          (m) => m.runnerId === n.runnerId && m.systemId !== '<legacy>' && m.contactedAt,
        ),
      )
    ) {
      for (const n of nodes)
        if (n.process!.exitCode !== null)
          throw new Error(`gitlab-runner ${n.name} exited ${n.process!.exitCode}:\n${n.log}`);
      if (Date.now() > until)
        throw new Error(`the runners never polled:\n${nodes.map((n) => n.log).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(
      nodes.map(async (n) => {
        const p = n.process;
        if (!p || p.exitCode !== null) return;
        const exited = new Promise<void>((r) => p.once('exit', () => r()));
        p.kill('SIGQUIT');
        const killed = setTimeout(() => p.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(killed);
      }),
    );
    await gl?.close();
    await s3?.close();
    delete process.env.RF_TEST_CACHE_AK;
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('the metrics listener answers with 0 jobs, then counts the one running', async () => {
    expect(await jobsOf(nodes[0])).toEqual({ jobs: 0 });
    const id = await queue('busy', ['busy:', '  tags: [pi1]', '  script:', '    - sleep 6', ''].join('\n'));
    await waitFor(id, 60_000, (v) => v.status === 'running');
    // The runner counts the job from the moment it starts it; give the metric a moment to show it.
    let seen = 0;
    for (let i = 0; i < 20 && seen === 0; i++) {
      const j = await jobsOf(nodes[0]);
      if (j && 'jobs' in j) seen = j.jobs;
      if (seen === 0) await new Promise((r) => setTimeout(r, 250));
    }
    expect(seen).toBe(1);
    expect((await waitFor(id, 60_000)).status).toBe('success');
    expect(await jobsOf(nodes[0])).toEqual({ jobs: 0 });
  }, 120_000);

  it("a cache saved by pi1's runner is restored by pi2's, through the S3 server", async () => {
    const value = `cached-${Math.random().toString(36).slice(2)}`;
    const save = await queue(
      'save',
      [
        'save:',
        '  tags: [pi1]',
        '  cache: { key: fleet-shared, paths: [cached/] }',
        '  script:',
        `    - mkdir -p cached && echo ${value} > cached/value.txt`,
        '',
      ].join('\n'),
    );
    const saved = await waitFor(save, 90_000);
    expect(saved.status, `${saved.trace}\n--- runner ---\n${nodes[0].log}`).toBe('success');
    expect(saved.runnerId).toBe(nodes[0].runnerId);
    // Shared: one object for every runner, under the path prefix, in the bucket.
    expect(saved.trace).toMatch(
      new RegExp(
        `Uploading cache\\.zip to http://127\\.0\\.0\\.1:${s3Port}/${BUCKET}/fleet/project/\\d+/fleet-shared-protected`,
      ),
    );
    expect(saved.trace).toContain('Created cache');

    const restore = await queue(
      'restore',
      [
        'restore:',
        '  tags: [pi2]',
        '  cache: { key: fleet-shared, paths: [cached/], policy: pull }',
        '  script:',
        '    - cat cached/value.txt',
        '',
      ].join('\n'),
    );
    const restored = await waitFor(restore, 90_000);
    expect(restored.status, `${restored.trace}\n--- runner ---\n${nodes[1].log}`).toBe('success');
    expect(restored.runnerId).toBe(nodes[1].runnerId);
    expect(restored.trace).toContain('Successfully extracted cache');
    expect(restored.trace).toContain(value);
    // The keys reached the runner only through config.toml: never in a trace.
    expect(saved.trace + restored.trace).not.toContain(`AccessKey`);
  }, 200_000);
});

// docker.registryMirrors and docker.logs on a node's REAL dockerd (the test fleet's apt node): merged into its
// daemon.json, a mirror loaded by a reload (same dockerd), the log settings by a restart (a new dockerd), a rerun
// changing nothing, and dropping them taking back only what runner-fleet set.
const canRunFleet = requireRoot('docker.registryMirrors and docker.logs on a real dockerd');
const APT_JSON = '/etc/docker/daemon.json';

describe.runIf(canRunFleet)('docker.registryMirrors and docker.logs on a real dockerd', () => {
  let fleet: FleetInfo;
  let inventory: Record<string, any>;
  const USER_KEYS = { 'log-level': 'warn', 'max-concurrent-downloads': 2 };
  const write = (docker: unknown) => {
    const copy = structuredClone(inventory);
    if (docker !== undefined) copy.docker = docker;
    const path = join(fleet.stateDir, `settings-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, stringify(copy));
    return path;
  };
  const info = async () => {
    const r = await execOnNode('pi1', [
      'docker',
      'info',
      '--format',
      '{{.LoggingDriver}} {{json .RegistryConfig.Mirrors}}',
    ]);
    const [driver, mirrors] = r.stdout.trim().split(' ');
    return { driver, mirrors: JSON.parse(mirrors) as string[] };
  };
  const daemonJson = () =>
    JSON.parse(readFileSync(nodeFile('pi1', APT_JSON), 'utf8')) as Record<string, unknown>;
  const changesOf = (r: {
    report?: { nodes: { name: string; changes: { step: string; detail: string }[] }[] };
  }) => r.report!.nodes.find((n) => n.name === 'pi1')!.changes;

  beforeAll(async () => {
    // Docker settings only: the registry (a mirror), no GitLab, no cluster.
    fleet = await up({ nodes: 1, services: servicesNamed([]) });
    inventory = parse(readFileSync(fleet.inventory, 'utf8'));
    delete inventory.kubernetes;
    for (const k of ['accessToken', 'runnerToken', 'registrationToken']) delete inventory.gitlab[k];
    writeFileSync(
      nodeFile('pi1', APT_JSON),
      `${JSON.stringify({ ...USER_KEYS, 'log-driver': 'json-file' }, null, 2)}\n`,
    );
    await execOnNode('pi1', ['systemctl', 'restart', 'docker']);
    // The registries first, so that what follows is only the docker.* settings.
    const r = await runProvision(['apply', '--inventory', write(undefined), '--json']);
    expect(r.code, r.stderr).toBe(0);
  }, 600_000);

  afterAll(async () => {
    if (canRunFleet) await down();
  }, 300_000);

  const logs = { driver: 'local', maxSize: '10m', maxFile: 3 };

  it('mirror and log settings: merged, dockerd restarted once (the plan says containers stop), a rerun changes nothing', async () => {
    const mirror = `http://${fleet.registry}`;
    const pid = await nodeDockerPid('pi1');
    const path = write({ registryMirrors: [mirror], logs });
    const plan = await runProvision(['plan', '--inventory', path, '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    const restart = changesOf(plan).find((c) => c.step === 'reload-docker');
    expect(restart?.detail).toMatch(
      /^restart dockerd \(systemctl restart docker\): log-driver and log-opts are read only when dockerd starts.*EVERY RUNNING CONTAINER STOPS/,
    );
    expect(await nodeDockerPid('pi1')).toBe(pid);

    const r = await runProvision(['apply', '--inventory', path, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(daemonJson()).toMatchObject({
      ...USER_KEYS,
      'registry-mirrors': [mirror],
      'log-driver': 'local',
      'log-opts': { 'max-size': '10m', 'max-file': '3' },
    });
    expect(await info()).toEqual({ driver: 'local', mirrors: [`${mirror}/`] });
    const restarted = await nodeDockerPid('pi1');
    expect(restarted).not.toBe(pid);
    const record = JSON.parse(readFileSync(nodeFile('pi1', `${APT_JSON}.runner-fleet.json`), 'utf8'));
    expect(record).toMatchObject({
      'registry-mirrors-added': [mirror],
      'settings-set': { 'log-driver': { value: 'local', previous: 'json-file' } },
    });

    const again = await runProvision(['apply', '--inventory', path, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.report!.changed).toBe(0);
    expect(await nodeDockerPid('pi1')).toBe(restarted);
  }, 300_000);

  it('another mirror alone is a reload: the same dockerd loads it', async () => {
    const mirrors = [`http://${fleet.registry}`, 'https://mirror.example.invalid'];
    const pid = await nodeDockerPid('pi1');
    const r = await runProvision([
      'apply',
      '--inventory',
      write({ registryMirrors: mirrors, logs }),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(changesOf(r).find((c) => c.step === 'reload-docker')?.detail).toMatch(
      /^systemctl reload docker .*to load the new registry-mirrors/,
    );
    expect(await nodeDockerPid('pi1')).toBe(pid);
    expect((await info()).mirrors).toEqual(mirrors.map((m) => `${m}/`));
  }, 300_000);

  it('dropping them takes back only what runner-fleet set: the previous log driver returns, other keys stay', async () => {
    const r = await runProvision(['apply', '--inventory', write(undefined), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const now = daemonJson();
    expect(now).toMatchObject({ ...USER_KEYS, 'log-driver': 'json-file' });
    // An empty list, not a missing key: dockerd's reload leaves a key that is not in the file as it was.
    expect(now['registry-mirrors'] ?? []).toEqual([]);
    expect(now).not.toHaveProperty('log-opts');
    expect(await info()).toEqual({ driver: 'json-file', mirrors: [] });
    const again = await runProvision(['apply', '--inventory', write(undefined), '--json']);
    expect(again.report!.changed).toBe(0);
  }, 300_000);

  it('what this node would refuse fails it before any change: a mirror with a path on its Docker 20.10, a daemon.json that is a directory', async () => {
    const before = readFileSync(nodeFile('pi1', APT_JSON), 'utf8');
    const pid = await nodeDockerPid('pi1');
    const mirror = `http://${fleet.registry}/repository/dockerhub`;
    const r = await runProvision(['apply', '--inventory', write({ registryMirrors: [mirror] }), '--json']);
    expect(r.code, r.stderr).toBe(1);
    const pi1 = r.report!.nodes.find((n) => n.name === 'pi1')!;
    expect(pi1.error).toContain(
      `docker.registryMirrors[0]: Docker 20.10.24+dfsg1 on this node refuses a registry mirror with a path (${mirror}); Docker allows one from 24.0.8`,
    );
    expect(pi1.changes).toEqual([]);
    expect(readFileSync(nodeFile('pi1', APT_JSON), 'utf8')).toBe(before);
    expect(await nodeDockerPid('pi1')).toBe(pid);

    // The file moved aside and a directory in its place: named, with what to do, every run (never "run again").
    const aside = `${nodeFile('pi1', APT_JSON)}.e2e-aside`;
    renameSync(nodeFile('pi1', APT_JSON), aside);
    mkdirSync(nodeFile('pi1', APT_JSON));
    try {
      const dir = await runProvision(['apply', '--inventory', write(undefined), '--json']);
      expect(dir.code, dir.stderr).toBe(1);
      expect(dir.report!.nodes[0].error).toContain(
        `pi1: ${APT_JSON} is a directory, not a file (dockerd cannot read it as its configuration either); runner-fleet will not replace it: remove it if it is empty (sudo rmdir ${APT_JSON})`,
      );
      expect(dir.report!.nodes[0].changes).toEqual([]);
    } finally {
      rmdirSync(nodeFile('pi1', APT_JSON));
      renameSync(aside, nodeFile('pi1', APT_JSON));
    }
  }, 300_000);

  it('a log driver with which no container starts (journald, absent here): one throwaway container shows it, the previous daemon.json and driver come back', async () => {
    const before = readFileSync(nodeFile('pi1', APT_JSON), 'utf8');
    const r = await runProvision(['apply', '--inventory', write({ logs: { driver: 'journald' } }), '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.report!.nodes[0].error).toMatch(
      /with the new \/etc\/docker\/daemon\.json dockerd runs, but no container can start: a throwaway container failed \(.*failed to initialize logging driver: journald is not enabled on this host.*\); .*restored the previous file from \.runner-fleet\.bak and brought Docker back/,
    );
    expect(readFileSync(nodeFile('pi1', APT_JSON), 'utf8')).toBe(before);
    expect((await info()).driver).toBe('json-file');
    // The throwaway image and container are gone.
    const left = await execOnNode('pi1', [
      'sh',
      '-c',
      'docker ps -aq; docker image ls -q runner-fleet-log-check',
    ]);
    expect(left.stdout.trim()).toBe('');
  }, 300_000);

  it('destroy --purge-registry-config takes back the mirror and log settings too; the log driver waits for the next start', async () => {
    const mirror = `http://${fleet.registry}`;
    const path = write({ registryMirrors: [mirror], logs });
    const r = await runProvision(['apply', '--inventory', path, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await info()).toEqual({ driver: 'local', mirrors: [`${mirror}/`] });
    const pid = await nodeDockerPid('pi1');

    const purge = await runProvision(['destroy', '--yes', '--purge-registry-config', '--inventory', path]);
    expect(purge.code, purge.stderr).toBe(0);
    // Back to what the user had: their keys and their log driver; nothing of runner-fleet's, no state file.
    expect(daemonJson()).toEqual({
      ...USER_KEYS,
      'log-driver': 'json-file',
      'insecure-registries': [],
      'registry-mirrors': [],
    });
    expect(existsSync(nodeFile('pi1', `${APT_JSON}.runner-fleet.json`))).toBe(false);
    // The mirror went with a reload (same dockerd); the log driver is read at dockerd's next start, and destroy says so.
    expect(await nodeDockerPid('pi1')).toBe(pid);
    expect(await info()).toEqual({ driver: 'local', mirrors: [] });
    expect(purge.stderr).toMatch(
      /log-driver and log-opts are back as before in \/etc\/docker\/daemon\.json; dockerd reads them when it next starts/,
    );
    await execOnNode('pi1', ['systemctl', 'restart', 'docker']);
    expect((await info()).driver).toBe('json-file');

    const last = await runProvision(['destroy', '--yes', '--purge-registry-config', '--inventory', path]);
    expect(last.code, last.stderr).toBe(0);
    expect(last.stderr).toContain('Destroy: nothing to remove.');
  }, 300_000);
});

// The pod settings against the real test control plane (apiserver, controllers, scheduler; kwok kubelets): applied,
// a rerun changes nothing although the apiserver rewrites quantities (0.5 → 500m), and a runners.version change is
// planned as an upgrade that rolls out one node at a time.
const canRunCluster = requireRoot(
  'runners.resources, tolerations, nodeSelector, metrics and version on the test cluster',
);

describe.runIf(canRunCluster)('pod settings and runners.version on the test cluster', () => {
  let cluster: TestCluster;
  let stateDir: string;
  let client: KubeClient;
  const NODES = ['pi1', 'pi2'];

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'rf-operator-cluster-'));
    cluster = await startCluster({ stateDir, nodes: NODES });
    client = KubeClient.load({ kubeconfig: cluster.kubeconfig });
  }, 300_000);

  afterAll(async () => {
    await cluster?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }, 120_000);

  const inventory = (version: string) =>
    parseInventory(
      [
        'gitlab: { url: "https://gitlab.lan", registry: "gitlab.lan:5050" }',
        `nodes: [${NODES.map((n, i) => `{ name: ${n}, host: 127.0.0.${11 + i} }`).join(', ')}]`,
        `kubernetes: { kubeconfig: "${cluster.kubeconfig}", rolloutTimeout: 90 }`,
        'runners:',
        `  version: ${version}`,
        '  image: "reg.lan:5000/gitlab-runner:alpine-v{version}"',
        '  metrics: { port: 9252, annotations: true }',
        '  resources: { requests: { cpu: "0.05", memory: 64Mi }, limits: { cpu: "0.5", memory: 0.25Gi } }',
        '  tolerations: [{ key: dedicated, value: ci, effect: NoSchedule }]',
        '  nodeSelector: { "kubernetes.io/os": linux }',
        '',
      ].join('\n'),
      join(stateDir, 'fleet.yaml'),
    );
  const configs = Object.fromEntries(
    NODES.map((n) => [n, `[[runners]]\n  name = "${n}"\n  token = "glrt-fake${n}tokenxyz"\n`]),
  );
  const converge = (version: string, dryRun = false) =>
    convergeCluster({ inventory: inventory(version), executor: 'dood', configs, dryRun, client });

  it('applies the pod settings; a rerun changes nothing; a new version is a visible one-node-at-a-time upgrade', async () => {
    const first = await converge('17.9.3');
    expect(first.ok, first.error).toBe(true);
    const ds = (await client.read({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'gitlab-runner-dood', namespace: 'gitlab-runner' },
    })) as any;
    const pod = ds.spec.template.spec;
    expect(pod.containers[0].image).toBe('reg.lan:5000/gitlab-runner:alpine-v17.9.3');
    expect(pod.containers[0].ports).toEqual([{ name: 'metrics', containerPort: 9252, protocol: 'TCP' }]);
    // The apiserver keeps quantities in its canonical form.
    expect(pod.containers[0].resources).toEqual({
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '500m', memory: '256Mi' },
    });
    expect(pod.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'ci', effect: 'NoSchedule' },
    ]);
    expect(pod.nodeSelector).toEqual({
      'kubernetes.io/os': 'linux',
      'fleet.runner-fleet.dev/gitlab-runner': 'true',
    });
    expect(ds.spec.template.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9252',
    });

    const again = await converge('17.9.3');
    expect(again).toEqual({ ok: true, changes: [] });

    const planned = await converge('17.11.0', true);
    expect(planned.ok, planned.error).toBe(true);
    expect(planned.changes).toEqual([
      {
        step: 'apply',
        detail: expect.stringMatching(
          /^DaemonSet gitlab-runner\/gitlab-runner-dood: update gitlab-runner reg\.lan:5000\/gitlab-runner:alpine-v17\.9\.3 → reg\.lan:5000\/gitlab-runner:alpine-v17\.11\.0, one node at a time \(each old pod finishes its running jobs first\)/,
        ),
      },
    ]);
    expect(ds.spec.updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 1, maxSurge: 0 },
    });
  }, 300_000);
});
