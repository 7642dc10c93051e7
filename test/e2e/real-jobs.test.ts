// End to end: real gitlab-runner 17.9.3 in real pods on real kubelets (and on a Pi's host), running the
// ci-snippet job that builds an image on the node and pushes it to the plain-HTTP test registry.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import {
  clusterBinDir,
  down,
  execOnNode,
  type FleetInfo,
  GITLAB_REGISTRY,
  holdJob,
  type JobOptions,
  type JobResult,
  nodeDockerPid,
  nodeFile,
  runCiJob,
  up,
  whenJobHeld,
} from '#testbed';
import type { Executor } from '../../src/inventory/types.js';
import { kubectl, kubectlJson, readInventory, writeVariant, type InventoryDoc } from '../support/fleet.js';
import { runProvision } from '../support/provision.js';
import type { StatusReport } from '../../src/status/health.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('real CI jobs end to end');
const NS = 'gitlab-runner';
const HTTPS_ERROR = 'server gave HTTP response to HTTPS client';

interface PodIdentity {
  node: string;
  uid: string;
  containers: string[];
  restarts: number;
}

describe.runIf(canRun)('real CI jobs on every executor', () => {
  let fleet: FleetInfo;
  let base: InventoryDoc;
  let bin: string;
  let kubeconfig: string;
  const get = (args: string[]) => kubectlJson(bin, kubeconfig, args);
  const variant = (mutate: (inv: InventoryDoc) => void) => writeVariant(fleet.inventory, base, mutate);
  const job = (executor: Executor, opts: Partial<JobOptions> = {}): Promise<JobResult> =>
    runCiJob({ inventoryPath: opts.inventoryPath ?? fleet.inventory, executor, timeout: 240, ...opts });
  const apply = async (executor: Executor, inventory = fleet.inventory, extra: string[] = []) => {
    const r = await runProvision(['--inventory', inventory, '--executor', executor, '--json', ...extra]);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    return r.report!;
  };
  const runnerPods = (executor: Executor): PodIdentity[] =>
    (get(['-n', NS, 'get', 'pods', '-l', `runner-fleet.dev/executor=${executor}`]).items as any[])
      .filter((p) => !p.metadata.deletionTimestamp)
      .map((p) => ({
        node: p.spec.nodeName,
        uid: p.metadata.uid,
        containers: (p.status?.containerStatuses ?? []).map((c: any) => c.containerID).sort(),
        restarts: (p.status?.containerStatuses ?? []).reduce((n: number, c: any) => n + c.restartCount, 0),
      }))
      .sort((a, b) => a.node.localeCompare(b.node));
  const expectPushed = (r: JobResult) => {
    expect(r.status, `${r.failureReason}\n${r.trace}`).toBe('success');
    expect(r.pushed, `the registry does not list ${r.image}\n${r.trace}`).toBe(true);
  };
  const records = () =>
    JSON.parse(
      Buffer.from(
        get(['-n', NS, 'get', 'secret', 'runner-fleet-records']).data['records.json'],
        'base64',
      ).toString('utf8'),
    ) as {
      node: string;
      id: number;
      systemId: string;
    }[];
  const managers = async (runnerId: number): Promise<string[]> => {
    const token = readFileSync(base.gitlab.accessToken.slice('file:'.length), 'utf8').trim();
    const res = await fetch(`${base.gitlab.url}/api/v4/runners/${runnerId}/managers`, {
      headers: { 'private-token': token },
    });
    return ((await res.json()) as { system_id: string }[]).map((m) => m.system_id).sort();
  };

  beforeAll(async () => {
    // apt, snap, and a node with no Docker yet: provision installs it. Every node is a microk8s node, whose
    // containerd pulls the runner image only once runner-fleet wrote its hosts.toml.
    fleet = await up({ nodes: 3, kinds: ['apt', 'snap', 'none'], microk8s: true });
    base = readInventory(fleet.inventory);
    kubeconfig = base.kubernetes.kubeconfig;
    bin = await clusterBinDir();
  });

  afterAll(async () => {
    if (canRun) await down();
  });

  it('before converge the runner image cannot be pulled on a microk8s node; after it, the pods run it', async () => {
    const image = base.runners.image as string;
    kubectl(bin, kubeconfig, ['create', 'namespace', 'pull-probe']);
    writeFileSync(
      `${fleet.stateDir}/pull-probe.json`,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'probe', namespace: 'pull-probe' },
        spec: {
          nodeName: 'pi1',
          containers: [{ name: 'c', image, command: ['gitlab-runner', '--version'] }],
          restartPolicy: 'Never',
        },
      }),
    );
    kubectl(bin, kubeconfig, ['apply', '-f', `${fleet.stateDir}/pull-probe.json`]);
    let waiting = '';
    for (let i = 0; i < 60 && !waiting.includes(HTTPS_ERROR); i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const events = get(['-n', 'pull-probe', 'get', 'events']).items as any[];
      waiting = events.map((e) => e.message ?? '').join('\n');
    }
    expect(waiting).toContain(HTTPS_ERROR);
    kubectl(bin, kubeconfig, ['delete', 'namespace', 'pull-probe', '--wait=false']);

    const report = await apply('dood');
    expect(report.ok).toBe(true);
    expect(runnerPods('dood').map((p) => p.node)).toEqual(['pi1', 'pi2', 'pi3']);
    // The first job's images were pulled by apply (beside registration), one change per node: the helper of the
    // node's architecture and the job image through its Docker, the runner image through microk8s's containerd.
    const helper = (base.runners.helperImage as string)
      .replace('{arch}', 'x86_64')
      .replace('${CI_RUNNER_VERSION}', '17.9.3');
    for (const n of report.nodes) {
      const pulls = n.changes.filter((c) => c.step === 'pull-images');
      expect(pulls, n.name).toHaveLength(1);
      expect(pulls[0].detail).toContain(helper);
      const docker = await execOnNode(n.name, [
        'docker',
        'image',
        'inspect',
        '--format',
        '{{.Id}}',
        helper,
        base.runners.dockerCliImage as string,
      ]);
      expect(docker.code, docker.stderr).toBe(0);
      const ctr = await execOnNode(n.name, ['microk8s', 'ctr', 'images', 'ls', '-q']);
      expect(ctr.stdout.split('\n')).toContain(base.runners.image);
    }
  });

  it('dood: the job builds on the node through its Docker socket and pushes over HTTP', async () => {
    for (const node of ['pi1', 'pi2']) {
      const r = await job('dood', { node });
      expectPushed(r);
      expect(r.node).toBe(node);
      // The job's docker talked to the node's own dockerd: the built image is in that daemon.
      const inspect = await execOnNode(node, ['docker', 'image', 'inspect', '--format', '{{.Id}}', r.image]);
      expect(inspect.code, inspect.stderr).toBe(0);
    }
  });

  it("dood: a job's service is reached by its alias (no network_mode host)", async () => {
    const yaml = stringifyYaml({
      'service-alias': {
        image: base.runners.dockerCliImage,
        tags: ['pi2'],
        services: [
          {
            name: `${fleet.registry}/runner-fleet/base:1`,
            alias: 'web',
            entrypoint: ['httpd', '-f', '-p', '8080', '-h', '/etc'],
          },
        ],
        script: [
          'for i in $(seq 1 30); do if wget -qO- http://web:8080/passwd | grep -q "^root:"; then echo reached web by its alias; exit 0; fi; sleep 1; done; exit 1',
        ],
      },
    });
    const r = await job('dood', { custom: { job: 'service-alias', yaml } });
    expect(r.status, r.trace).toBe('success');
    expect(r.trace).toContain('reached web by its alias');
  });

  it('status is healthy by the runners polling on their own (no hand-made contact)', async () => {
    const r = await runProvision(['status', '--inventory', fleet.inventory, '--executor', 'dood', '--json']);
    expect(r.code, r.stdout).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    for (const n of report.nodes) expect(n.gitlab.state).toBe('online');
    // Each node's pod is its own runner manager: the system_id registration recorded, one per node.
    const ids = records().map((r) => r.systemId);
    expect(new Set(ids).size).toBe(3);
    for (const r of records()) expect(await managers(r.id)).toEqual([r.systemId]);
  });

  it('a rerun changes nothing and restarts no runner pod; a tag edit reaches the runner without a restart', async () => {
    const pods = runnerPods('dood');
    const rerun = await apply('dood');
    expect(rerun.changed).toBe(0);
    // The images are there: the gather's one `docker image inspect` saw them, so no pull.
    expect(rerun.nodes.flatMap((n) => n.changes.map((c) => c.step))).not.toContain('pull-images');
    expect(runnerPods('dood')).toEqual(pods);

    const tagged = variant((inv) => (inv.runners.tags = ['fleet', 'retagged']));
    const edit = await apply('dood', tagged);
    expect(edit.gitlab?.changes.map((c) => c.step)).toEqual([
      'update runner',
      'update runner',
      'update runner',
    ]);
    expect(runnerPods('dood')).toEqual(pods);
    const r = await job('dood', { inventoryPath: tagged });
    expectPushed(r);
  });

  it("GitLab's own registry: a project with capitals logs in with the job's token and pushes to CI_REGISTRY_IMAGE", async () => {
    // GitLab's registry (token auth, the stand-in's /jwt/auth) first: the snippet pushes there; the test registry,
    // with the base image, second.
    const own = variant((inv) => (inv.gitlab.registry = [GITLAB_REGISTRY, ...inv.gitlab.registry]));
    await apply('dood', own);
    const r = await job('dood', { inventoryPath: own, node: 'pi1', project: 'MyTeam/App' });
    expectPushed(r);
    expect(r.image).toMatch(new RegExp(`^${GITLAB_REGISTRY.replace(/\./g, '\\.')}/myteam/app:[0-9a-f]{8}$`));
    expect(r.trace).toContain(`image: ${r.image}`);
    expect(r.trace).toContain('Login Succeeded');
    // Without the job's token that registry gives nothing: the node's own Docker, never logged in, is refused.
    const pull = await execOnNode('pi1', ['docker', 'pull', r.image]);
    expect(pull.code).not.toBe(0);
    expect(pull.stderr).toMatch(/denied|unauthorized/i);
    await apply('dood');
  }, 240_000);

  it('a runner pod deleted by hand comes back as the same runner manager', async () => {
    const pi3 = records().find((r) => r.node === 'pi3')!;
    const before = await managers(pi3.id);
    expect(before).toEqual([pi3.systemId]);
    const old = runnerPods('dood').find((p) => p.node === 'pi3')!;
    kubectl(bin, kubeconfig, [
      '-n',
      NS,
      'delete',
      'pod',
      '-l',
      'runner-fleet.dev/executor=dood',
      '--field-selector',
      'spec.nodeName=pi3',
      '--wait=true',
    ]);
    kubectl(bin, kubeconfig, [
      '-n',
      NS,
      'rollout',
      'status',
      'daemonset/gitlab-runner-dood',
      '--timeout=120s',
    ]);
    expect(runnerPods('dood').find((p) => p.node === 'pi3')!.uid).not.toBe(old.uid);
    const r = await job('dood', { node: 'pi3' });
    expectPushed(r);
    expect(await managers(pi3.id)).toEqual(before);
  });

  it('a job running while apply reloads Docker (apt) keeps running and succeeds', async () => {
    const pid = nodeDockerPid('pi1');
    const running = job('dood', { node: 'pi1', beforeScript: [holdJob(20)] });
    // Wait until the job's script is running, then change the registries: apt's dockerd gets a SIGHUP.
    await whenJobHeld(base.gitlab.url);
    const more = variant((inv) => (inv.gitlab.registry = [...inv.gitlab.registry, 'mirror.fleet.test:5000']));
    const report = await apply('dood', more);
    const pi1 = report.nodes.find((n) => n.name === 'pi1')!.changes;
    expect(pi1.find((c) => c.step === 'reload-docker')?.detail).toMatch(/^systemctl reload docker/);
    expectPushed(await running);
    expect(nodeDockerPid('pi1')).toBe(pid);
    await apply('dood');
  });

  it('runners.version: the new image rolls out one node at a time, and the old pod on pi1 finishes its running job first', async () => {
    // A second tag of the one real runner image (only 17.9.3 exists as a real build): what a version change does to
    // the pods, the DaemonSet's image, is then real. The registry's own API copies the manifest under the new tag,
    // and the helper's too: a registry serving gitlab-runner 17.9.2 serves its helper, which apply pre-pulls.
    const accept =
      'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
    const retag = async (name: string, from: string, to: string) => {
      const repo = `http://${fleet.registry}/v2/runner-fleet/${name}/manifests`;
      const got = await fetch(`${repo}/${from}`, { headers: { accept } });
      expect(got.status, `${name}:${from}`).toBe(200);
      const put = await fetch(`${repo}/${to}`, {
        method: 'PUT',
        headers: { 'content-type': got.headers.get('content-type')! },
        body: Buffer.from(await got.arrayBuffer()),
      });
      expect(put.status, `${name}:${to}`).toBe(201);
    };
    await retag('gitlab-runner', '17.9.3', '17.9.2');
    await retag('gitlab-runner-helper', 'x86_64-v17.9.3', 'x86_64-v17.9.2');
    const pinned = variant((inv) => {
      inv.runners.version = '17.9.2';
      inv.runners.image = `${fleet.registry}/runner-fleet/gitlab-runner:{version}`;
    });
    const pi1 = records().find((r) => r.node === 'pi1')!;
    const before = runnerPods('dood');
    const running = job('dood', { node: 'pi1', beforeScript: [holdJob(20)] });
    await whenJobHeld(base.gitlab.url);
    const report = await apply('dood', pinned);
    const update = report.cluster!.changes.find((c) =>
      /DaemonSet gitlab-runner\/gitlab-runner-dood/.test(c.detail),
    );
    expect(update?.detail).toMatch(
      /gitlab-runner \S+:17\.9\.3 → \S+:17\.9\.2, one node at a time \(each old pod finishes its running jobs first\)/,
    );
    // The job that held pi1's old pod through the rollout finished and pushed.
    expectPushed(await running);
    const after = runnerPods('dood');
    expect(after.map((p) => p.node)).toEqual(before.map((p) => p.node));
    for (const p of after) expect(p.uid, p.node).not.toBe(before.find((b) => b.node === p.node)!.uid);
    const images = (get(['-n', NS, 'get', 'pods', '-l', 'runner-fleet.dev/executor=dood']).items as any[])
      .filter((p) => !p.metadata.deletionTimestamp)
      .map((p) => p.spec.containers.find((c: any) => c.name === 'gitlab-runner').image);
    expect(new Set(images)).toEqual(new Set([`${fleet.registry}/runner-fleet/gitlab-runner:17.9.2`]));
    // The same runner manager across the rollout (the node's system_id), and nothing left to do.
    expect(await managers(pi1.id)).toEqual([pi1.systemId]);
    expect((await apply('dood', pinned)).changed).toBe(0);
    expectPushed(await job('dood', { node: 'pi1', inventoryPath: pinned }));
    await apply('dood');
  });

  it.each([
    ['pi1', 'apt'],
    ['pi2', 'snap'],
  ])(
    '%s (%s): the push fails with the HTTPS error until runner-fleet converges the node, then succeeds',
    async (node) => {
      const path = node === 'pi1' ? '/etc/docker/daemon.json' : '/var/snap/docker/current/config/daemon.json';
      const file = nodeFile(node, path);
      const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      const registries = (config['insecure-registries'] as string[]).filter((r) => r !== fleet.registry);
      writeFileSync(file, `${JSON.stringify({ ...config, 'insecure-registries': registries }, null, 2)}\n`);
      const reload =
        node === 'pi1'
          ? ['systemctl', 'reload', 'docker']
          : ['systemctl', 'kill', '-s', 'HUP', '--kill-whom=main', 'snap.docker.dockerd.service'];
      expect((await execOnNode(node, reload)).code).toBe(0);
      await new Promise((r) => setTimeout(r, 1000));

      // The job's images are already on the node (pull policy if-not-present): the push is what meets the registry.
      const broken = await job('dood', { node });
      expect(broken.status).toBe('failed');
      expect(broken.trace).toContain(HTTPS_ERROR);

      await apply('dood');
      expectPushed(await job('dood', { node }));
    },
  );

  it("dind: the job's own dockerd trusts the registry only through the service's command", async () => {
    await apply('dind');
    const r = await job('dind', {
      node: 'pi2',
      beforeScript: ['docker info --format "insecure: {{json .RegistryConfig.IndexConfigs}}"'],
    });
    expectPushed(r);
    // The daemon the job used is the dind service's (its own data root), not the node's.
    const onNode = await execOnNode('pi2', ['docker', 'image', 'inspect', r.image]);
    expect(onNode.code).not.toBe(0);
    expect(r.trace).toMatch(
      new RegExp(`insecure: .*"${fleet.registry.replace(/\./g, '\\.')}"[^}]*"Secure":false`),
    );
    // A second job on the same node: the runner keeps /certs/client between jobs, the dind service's CA is new.
    expectPushed(await job('dind', { node: 'pi2' }));
  });

  it('gitlab.hostAliases: a GitLab name only the nodes know fails first contact naming resolution; with hostAliases the pods and jobs resolve it', async () => {
    const url = new URL(base.gitlab.url);
    const name = 'gitlab.fleet.test';
    // The nodes (and the operator's machine) know the name from /etc/hosts; pods get the kubelet's /etc/hosts.
    for (const node of ['pi1', 'pi2', 'pi3']) {
      const file = nodeFile(node, '/etc/hosts');
      writeFileSync(file, `${readFileSync(file, 'utf8').trimEnd()}\n${url.hostname} ${name}\n`);
    }
    const hostsFile = `${fleet.stateDir}/operator-hosts`;
    writeFileSync(hostsFile, `${readFileSync('/etc/hosts', 'utf8').trimEnd()}\n${url.hostname} ${name}\n`);
    const named = (aliases: boolean) =>
      variant((inv) => {
        inv.gitlab.url = `http://${name}:${url.port}`;
        if (aliases) inv.gitlab.hostAliases = { [name]: url.hostname };
        inv.runners = { ...inv.runners, contactTimeout: 15 };
      });
    const run = (inventory: string, extra: string[] = []) =>
      runProvision([...extra, '--inventory', inventory, '--executor', 'dood', '--json'], {}, { hostsFile });

    const unresolved = await run(named(false));
    expect(unresolved.code, unresolved.stderr).toBe(1);
    for (const n of unresolved.report!.nodes) {
      expect(n.error, `${unresolved.stderr}\n${unresolved.stdout}`).toMatch(
        new RegExp(`cannot resolve ${name.replace(/\./g, '\\.')} \\(GitLab\\) from the runner pod`),
      );
      expect(n.error).toContain('gitlab.hostAliases');
    }

    const aliased = named(true);
    const plan = await run(aliased, ['plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('spec.template.spec.hostAliases');
    const fixed = await run(aliased);
    expect(fixed.code, `${fixed.stderr}\n${fixed.stdout}`).toBe(0);
    const spec = get(['-n', NS, 'get', 'daemonset', 'gitlab-runner-dood']).spec.template.spec;
    expect(spec.hostAliases).toEqual([{ ip: url.hostname, hostnames: [name] }]);
    expect((await run(aliased)).report!.changed).toBe(0);
    // The job's containers get the name through extra_hosts (the job API here is asked by address).
    const r = await job('dood', { node: 'pi1', beforeScript: [`grep -w ${name} /etc/hosts`] });
    expectPushed(r);
    expect(r.trace).toMatch(
      new RegExp(`${url.hostname.replace(/\./g, '\\.')}\\s+${name.replace(/\./g, '\\.')}`),
    );

    // Dropped from the inventory: gone from the pods.
    await apply('dood');
    expect(
      get(['-n', NS, 'get', 'daemonset', 'gitlab-runner-dood']).spec.template.spec.hostAliases,
    ).toBeUndefined();
  }, 480_000);

  it('shell (placement cluster): the job runs in the runner pod and uses the node dockerd', async () => {
    await apply('shell');
    // The inventory says dood: a plain status judges the shell pods that run and names the mismatch.
    const status = await runProvision(['status', '--json', '--inventory', fleet.inventory]);
    expect(status.code, status.stdout).toBe(0);
    expect((JSON.parse(status.stdout) as StatusReport).mismatch).toEqual([
      { kind: 'executor', deployed: 'shell', inventory: 'dood' },
    ]);
    const r = await job('shell', { node: 'pi1' });
    expectPushed(r);
    expect((await execOnNode('pi1', ['docker', 'image', 'inspect', r.image])).code).toBe(0);
  });

  it('shell (placement host): the real gitlab-runner service on the Pi runs the job', async () => {
    await apply('shell', fleet.inventory, ['--placement', 'host']);
    const r = await job('shell', { node: 'pi3' });
    expectPushed(r);
    const ps = await execOnNode('pi3', [
      'sh',
      '-c',
      'cat /proc/$(cat /run/gitlab-runner.pid)/cmdline | tr "\\0" " "',
    ]);
    expect(ps.stdout).toContain('gitlab-runner run');
    // The cluster runners went first: no runner pod is left.
    expect((get(['-n', NS, 'get', 'pods']).items as any[]).length).toBe(0);
    // The inventory says placement cluster: a plain status names where the runners are, and misses no pod.
    const status = await runProvision(['status', '--json', '--inventory', fleet.inventory]);
    const report = JSON.parse(status.stdout) as StatusReport;
    expect(report.mismatch).toEqual([{ kind: 'placement', deployed: 'host', inventory: 'cluster' }]);
    expect(report.nodes.flatMap((n) => n.problems)).not.toContain('no runner pod on this node');
  });

  it('shell (placement host): a config change during a running job reloads the runner; the job finishes', async () => {
    const pidOf = async () => (await execOnNode('pi3', ['cat', '/run/gitlab-runner.pid'])).stdout.trim();
    const restarts = async () =>
      (
        await execOnNode('pi3', ['sh', '-c', 'cat /var/log/gitlab-runner.restarts 2>/dev/null || echo 0'])
      ).stdout.trim();
    const [pid, before] = [await pidOf(), await restarts()];
    const running = job('shell', { node: 'pi3', beforeScript: [holdJob(15)] });
    await whenJobHeld(base.gitlab.url);
    // concurrent is in config.toml: the runner re-reads the file; nothing may restart it under the job.
    const more = variant((inv) => (inv.runners.concurrent = 2));
    await apply('shell', more, ['--placement', 'host']);
    expectPushed(await running);
    expect(await pidOf()).toBe(pid);
    expect(await restarts()).toBe(before);
  });
});
