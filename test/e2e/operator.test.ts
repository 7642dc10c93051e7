// End to end: status, render, ci-snippet, destroy and the progress output, through provision.ts on the real test fleet.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  clusterBinDir,
  down,
  execOnNode,
  type FleetInfo,
  nodeFile,
  seedImage,
  stopNodeDockerd,
  up,
} from '#testbed';
import { FORWARDING_SYSCTL_FILE } from '../../src/docker/forwarding.js';
import type { StatusReport } from '../../src/status/health.js';
import {
  kubectl,
  kubectlJson,
  readInventory,
  standinState,
  writeVariant,
  type InventoryDoc,
  withoutPrepull,
} from '../support/fleet.js';
import { REPO, allOutput, runProvision } from '../support/provision.js';
import { findKubeseal, requireKubeseal } from '../support/kubeseal.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('operator commands end to end');
const hasKubeseal = canRun && requireKubeseal('render --seal end to end');

const NS = 'gitlab-runner';
const HOSTS_TOML = (reg: string) => `/var/snap/microk8s/current/args/certs.d/${reg}/hosts.toml`;
// eslint-disable-next-line no-control-regex
const ESC = /\x1b\[/;

describe.runIf(canRun)('operator commands: status, render, ci-snippet, destroy', () => {
  let fleet: FleetInfo;
  let base: InventoryDoc;
  let inventory: string;
  let bin: string;
  let kubeconfig: string;
  let gitlabUrl: string;
  const k = (args: string[]) => kubectl(bin, kubeconfig, args);
  const kj = (args: string[]) => kubectlJson(bin, kubeconfig, args);
  const provision = (...args: string[]) => runProvision([...args, '--inventory', inventory]);
  const ours = async () => (await standinState(gitlabUrl)).runners.filter((r) => r.createdVia !== 'preset');
  /** What each runner pod would do every few seconds: ask GitLab for a job, which marks it online. */
  const runnersAskForJobs = async () => {
    for (const r of await ours()) {
      const res = await fetch(`${gitlabUrl}/api/v4/jobs/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: r.token }),
      });
      expect(res.status).toBe(204);
    }
  };
  const seenTokens = new Set<string>();
  const tokens = async () => {
    const list = (await ours()).map((r) => r.token).filter((t): t is string => Boolean(t));
    for (const t of list) seenTokens.add(t);
    return list;
  };

  beforeAll(async () => {
    fleet = await up({ nodes: 3, microk8s: ['pi1', 'pi2'] });
    withoutPrepull(fleet.inventory);
    base = readInventory(fleet.inventory);
    base.runners = { ...base.runners, tags: ['pi'], executor: 'dood' };
    inventory = writeVariant(fleet.inventory, base, () => {});
    gitlabUrl = base.gitlab.url;
    kubeconfig = base.kubernetes.kubeconfig;
    bin = await clusterBinDir();
    const r = await provision('apply', '--json');
    expect(r.code, r.stderr).toBe(0);
    await Promise.all([seedImage('pi1'), seedImage('pi2')]);
  });

  afterAll(async () => {
    if (!canRun) return;
    // Never a token in anything provision.ts printed, in any test of this file.
    const all = allOutput.join('\n');
    expect(seenTokens.size).toBeGreaterThan(0);
    for (const t of seenTokens) expect(all).not.toContain(t);
    await down();
  });

  it('hosts.toml is written once on microk8s nodes and not touched by a rerun (no restart of anything)', async () => {
    const reg = fleet.registry;
    const files = ['pi1', 'pi2'].map((n) => nodeFile(n, HOSTS_TOML(reg)));
    expect(readFileSync(files[0], 'utf8')).toBe(
      `# Managed by runner-fleet: ${reg} serves plain HTTP.\nserver = "http://${reg}"\n\n[host."http://${reg}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    expect(existsSync(nodeFile('pi3', HOSTS_TOML(reg)))).toBe(false); // not a microk8s node
    const before = files.map((f) => ({ ino: statSync(f).ino, mtime: statSync(f).mtimeMs }));
    const r = await provision('apply', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.changed).toBe(0);
    expect(files.map((f) => ({ ino: statSync(f).ino, mtime: statSync(f).mtimeMs }))).toEqual(before);
    expect(files.some((f) => existsSync(`${f}.runner-fleet.bak`))).toBe(false);
    // containerd re-reads hosts.toml on every pull: no microk8s stop/start, no snap restart.
    const log = nodeFile('pi1', '/var/log/microk8s-standin.log');
    expect(existsSync(log) ? readFileSync(log, 'utf8') : '').not.toMatch(/microk8s (stop|start)/);
  });

  it("apply proved every runner's own contact: status right after it is healthy; a FORWARD drop in pi1 only names the failing hop from its pod (status and apply exit 1, the other nodes ok)", async () => {
    // No simulated job request here: the apply in beforeAll returned only once each pod's runner had asked.
    const ok = await provision('status', '--json');
    expect(ok.code, ok.stderr).toBe(0);
    const report = JSON.parse(ok.stdout) as StatusReport;
    expect(report.nodes.map((n) => [n.node, n.healthy, n.gitlab.state, n.reach?.kind])).toEqual([
      ['pi1', true, 'online', 'ok'],
      ['pi2', true, 'online', 'ok'],
      ['pi3', true, 'online', 'ok'],
    ]);
    const gitlab = new URL(gitlabUrl);
    const hop = `cannot connect to ${gitlab.hostname}:${gitlab.port} (GitLab) from the runner pod (nc: timed out)`;
    const rule = ['FORWARD', '-i', 'cni0', '-j', 'DROP'];
    const add = await execOnNode('pi1', ['iptables', '-I', ...rule]);
    expect(add.code, add.stderr).toBe(0);
    try {
      const bad = await provision('status', '--json');
      expect(bad.code, bad.stderr).toBe(1);
      const rows = (JSON.parse(bad.stdout) as StatusReport).nodes;
      expect(rows.map((n) => [n.node, n.healthy])).toEqual([
        ['pi1', false],
        ['pi2', true],
        ['pi3', true],
      ]);
      expect(rows[0].problems).toContain(hop);

      const quick = writeVariant(fleet.inventory, base, (inv) => {
        inv.runners = { ...inv.runners, contactTimeout: 12 };
      });
      const apply = await runProvision(['apply', '--json', '--inventory', quick]);
      expect(apply.code, apply.stderr).toBe(1);
      expect(apply.report!.nodes.map((n) => [n.name, n.ok])).toEqual([
        ['pi1', false],
        ['pi2', true],
        ['pi3', true],
      ]);
      // pi1's runner made its contact before the drop (and behind Workhorse an idle one makes no newer): the way
      // from its pod, checked now, fails.
      expect(apply.report!.nodes[0].error).toMatch(/^its runner last asked GitLab for jobs at \S+; now /);
      expect(apply.report!.nodes[0].error).toContain(hop);
    } finally {
      const del = await execOnNode('pi1', ['iptables', '-D', ...rule]);
      expect(del.code, del.stderr).toBe(0);
    }
  });

  it('status: every row healthy on the converged fleet (exit 0); a stopped dockerd makes its row say so (exit 1)', async () => {
    await runnersAskForJobs();
    const ok = await provision('status', '--json');
    expect(ok.code, ok.stderr).toBe(0);
    const report = JSON.parse(ok.stdout) as StatusReport;
    expect(
      report.nodes.map((n) => [n.node, n.healthy, n.pod.state, n.gitlab.state, n.registries[0].insecure]),
    ).toEqual([
      ['pi1', true, 'ready', 'online', true],
      ['pi2', true, 'ready', 'online', true],
      ['pi3', true, 'ready', 'online', true],
    ]);
    expect(report.nodes.map((n) => n.docker.flavour)).toEqual(['apt', 'snap', 'apt']);
    expect(report.nodes[0].microk8s).toEqual({ missingHostsToml: [] });

    await stopNodeDockerd('pi1');
    try {
      const bad = await provision('status');
      expect(bad.code, bad.stderr).toBe(1);
      const lines = bad.stdout.split('\n');
      expect(lines.find((l) => l.startsWith('pi1'))).toMatch(/^pi1\s+ok\s+\S+\s+apt NOT RUNNING\s+\?.*\bNO$/);
      expect(lines.find((l) => l.startsWith('pi2'))).toMatch(/\byes$/);
      expect(bad.stdout).toMatch(/pi1: dockerd is not answering/);
      expect(bad.stdout).toContain('1 of 3 node(s) not healthy.');
      expect(bad.stdout + bad.stderr).not.toMatch(ESC);
    } finally {
      const start = await execOnNode('pi1', ['systemctl', 'start', 'docker']);
      expect(start.code, start.stderr).toBe(0);
    }
  });

  it('status on a terminal: live lines redrawn in place, then the same table', async () => {
    const { code, out } = await underTerminal(['status', '--inventory', inventory]);
    expect(code, out).toBe(0);
    expect(out).toMatch(ESC); // cursor moves and colour: a terminal gets them
    const plain = out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, ''); // eslint-disable-line no-control-regex
    expect(plain).toMatch(/^NODE\s+SSH\s+ARCH/m);
    expect(plain).toMatch(/^\+ pi1\s+\d+\.\ds {2}Docker /m);
    expect(plain).toContain('All 3 node(s) healthy.');
  });

  it('render: the objects apply sends, one file each; tokens only in the git-ignored secrets file; a node the cluster lacks is refused before GitLab', async () => {
    const out = join(fleet.stateDir, 'gitops');
    const r = await provision('render', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      '.gitignore',
      '01-namespace-gitlab-runner.yaml',
      '02-serviceaccount-gitlab-runner.yaml',
      '04-daemonset-gitlab-runner-dood.yaml',
      'secrets.yaml',
    ]);
    expect(readFileSync(join(out, '.gitignore'), 'utf8')).toMatch(/^\/secrets\.yaml$/m);
    expect(statSync(join(out, 'secrets.yaml')).mode & 0o777).toBe(0o600);
    expect(r.stderr).toMatch(/warning: .*secrets\.yaml holds the runner tokens in plain text/);
    const all = await tokens();
    expect(all).toHaveLength(3);
    for (const f of readdirSync(out).filter((f) => f !== 'secrets.yaml')) {
      const text = readFileSync(join(out, f), 'utf8');
      for (const t of all) expect(text, f).not.toContain(t);
    }

    // Delete ours, apply the rendered files with kubectl: the same objects come back, and apply has nothing to change.
    const what = [
      'daemonset/gitlab-runner-dood',
      'serviceaccount/gitlab-runner',
      'secret/runner-fleet-config',
    ];
    const strip = (o: any) => ({ labels: o.metadata.labels, spec: o.spec, data: o.data });
    const before = what.map((w) => strip(kj(['-n', NS, 'get', w])));
    k(['-n', NS, 'delete', ...what, '--wait=true']);
    k(['apply', '--server-side', '--field-manager=runner-fleet', '-f', out]);
    expect(what.map((w) => strip(kj(['-n', NS, 'get', w])))).toEqual(before);
    const plan = await provision('plan', '--json');
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.report!.cluster).toEqual({ ok: true, changes: [] });

    // A node the cluster does not have: render refuses before GitLab (no runner registered for it) and writes nothing.
    const extra = writeVariant(fleet.inventory, base, (inv) =>
      inv.nodes.push({ name: 'pi9', host: '127.0.6.99', port: 2299 }),
    );
    const runnersBefore = (await ours()).length;
    const missing = await runProvision([
      'render',
      '--out',
      join(fleet.stateDir, 'gitops-2'),
      '--inventory',
      extra,
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /inventory nodes not in the cluster: pi9; nothing changed in GitLab and nothing was written/,
    );
    expect(existsSync(join(fleet.stateDir, 'gitops-2'))).toBe(false);
    expect((await ours()).length).toBe(runnersBefore);
  });

  it.runIf(hasKubeseal)(
    'render --seal: kubeseal missing is exit 2; the real kubeseal seals with --seal-cert, and the key unseals the Secret apply sent',
    async () => {
      const out = join(fleet.stateDir, 'gitops-sealed');
      const noSeal = await runProvision(['render', '--seal', '--out', out, '--inventory', inventory], {
        PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      });
      expect(noSeal.code).toBe(2);
      expect(noSeal.stderr).toMatch(/--seal: kubeseal is not on PATH/);
      const binDir = join(fleet.stateDir, 'kubeseal-bin');
      mkdirSync(binDir, { recursive: true });
      rmSync(join(binDir, 'kubeseal'), { force: true });
      symlinkSync(findKubeseal().path!, join(binDir, 'kubeseal'));
      const PATH = `${binDir}:${process.env.PATH}`;

      // Without a certificate kubeseal asks the cluster for the controller's key; the test cluster runs no controller.
      const noController = await runProvision(['render', '--seal', '--out', out, '--inventory', inventory], {
        PATH,
      });
      expect(noController.code).toBe(1);
      expect(noController.stderr).toMatch(
        /kubeseal could not fetch the certificate of the Sealed Secrets controller kube-system\/sealed-secrets-controller/,
      );
      expect(existsSync(out)).toBe(false);

      // The controller's key pair, as `kubeseal --fetch-cert` and a key backup would give them.
      const cert = join(fleet.stateDir, 'sealed-secrets.crt');
      const key = join(fleet.stateDir, 'sealed-secrets.key');
      const gen = spawnSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '30',
          '-subj',
          '/CN=sealed-secret',
        ],
        { encoding: 'utf8' },
      );
      expect(gen.status, gen.stderr).toBe(0);
      const badCert = await runProvision(
        ['render', '--seal-cert', key, '--out', out, '--inventory', inventory],
        { PATH },
      );
      expect(badCert.code).toBe(2);
      expect(badCert.stderr).toMatch(/--seal-cert: .*holds a private key/);

      const sealed = await runProvision(
        ['render', '--seal-cert', cert, '--out', out, '--inventory', inventory],
        { PATH },
      );
      expect(sealed.code, sealed.stderr).toBe(0);
      expect(readdirSync(out).sort()).toEqual([
        '01-namespace-gitlab-runner.yaml',
        '02-serviceaccount-gitlab-runner.yaml',
        '03-sealedsecret-runner-fleet-config.yaml',
        '04-daemonset-gitlab-runner-dood.yaml',
      ]);
      const sealedText = readFileSync(join(out, '03-sealedsecret-runner-fleet-config.yaml'), 'utf8');
      expect(parse(sealedText).kind).toBe('SealedSecret');
      for (const t of await tokens())
        for (const f of readdirSync(out)) expect(readFileSync(join(out, f), 'utf8')).not.toContain(t);

      const un = spawnSync(
        findKubeseal().path!,
        ['--recovery-unseal', '--recovery-private-key', key, '--format', 'json'],
        { input: sealedText, encoding: 'utf8' },
      );
      expect(un.status, un.stderr).toBe(0);
      const secret = JSON.parse(un.stdout);
      const live = kj(['-n', NS, 'get', 'secret/runner-fleet-config']);
      expect(secret.data).toEqual(live.data);
      expect(secret.metadata.labels).toEqual(live.metadata.labels);
      expect(secret.type).toBe(live.type);
    },
  );

  it("ci-snippet: each executor's job pushes to the test registry from a test node", async () => {
    const reg = fleet.registry;
    // The only registry this machine reaches is the test one: the base image comes from there.
    const seed = await execOnNode('pi1', [
      'sh',
      '-ec',
      `docker tag bb:local ${reg}/bb:base && docker push ${reg}/bb:base && docker rmi ${reg}/bb:base`,
    ]);
    expect(seed.code, seed.stderr).toBe(0);
    const ctx = join(fleet.stateDir, 'ci-context');
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${reg}/bb:base\nCOPY hello.txt /hello.txt\n`);
    writeFileSync(join(ctx, 'hello.txt'), 'built by a runner-fleet ci-snippet\n');

    const jobOf = async (executor: string) => {
      const r = await provision('ci-snippet', '--executor', executor);
      expect(r.code, r.stderr).toBe(0);
      const job = parse(r.stdout)['build-image'];
      expect(job.tags).toEqual(['pi']);
      expect(job.variables.REGISTRY).toBe(reg);
      return job as {
        image?: string;
        services?: { name: string; command: string[] }[];
        variables: Record<string, string>;
        script: string[];
      };
    };
    /** Runs the job's script on the node as a runner would: its variables exported in order, then each line under `sh -e`. */
    const runJob = async (
      node: string,
      job: { variables: Record<string, string>; script: string[] },
      project: string,
      override: Record<string, string | null> = {},
    ) => {
      const vars = { ...job.variables, ...override };
      const exports = Object.entries({
        CI_PROJECT_PATH: project,
        CI_COMMIT_SHORT_SHA: 'abc1234',
        ...vars,
      }).map(([name, value]) =>
        value === null ? `unset ${name}` : `export ${name}="${value.replace(/["\\`]/g, '\\$&')}"`,
      );
      const script = ['set -e', `cd ${ctx}`, ...exports, ...job.script].join('\n');
      const r = await execOnNode(node, ['sh', '-c', script]);
      expect(r.code, `${project}: ${r.stdout}\n${r.stderr}`).toBe(0);
      const tags = await (await fetch(`http://${reg}/v2/${project}/tags/list`)).json();
      expect(tags).toEqual({ name: project, tags: ['abc1234'] });
    };

    await runJob('pi1', await jobOf('shell'), 'fleet/shell');
    await runJob('pi2', await jobOf('dood'), 'fleet/dood'); // the snap's dockerd, through its socket

    // dind: the service's own dockerd, started on pi1 with exactly the snippet's service command and no daemon.json,
    // so only the --insecure-registry flag lets it pull the base image and push.
    const dind = await jobOf('dind');
    expect(dind.services).toEqual([
      { name: base.runners.dindImage, alias: 'docker', command: [`--insecure-registry=${reg}`] },
    ]);
    expect(dind.variables).toMatchObject({ DOCKER_HOST: 'tcp://docker:2376', DOCKER_TLS_CERTDIR: '/certs' });
    const root = join(fleet.stateDir, 'dind');
    writeFileSync(join(fleet.stateDir, 'dind-daemon.json'), '{}\n');
    const flags = [
      '--config-file',
      join(fleet.stateDir, 'dind-daemon.json'),
      '--data-root',
      `${root}/data`,
      '--exec-root',
      '/run/rf-dind',
      '--pidfile',
      '/run/rf-dind.pid',
      '-H',
      'unix:///run/rf-dind.sock',
      '--iptables=false',
      '--bridge=none',
      '--storage-driver=vfs',
      ...dind.services![0].command,
    ];
    const started = await execOnNode('pi1', [
      'sh',
      '-c',
      `setsid dockerd ${flags.join(' ')} </dev/null >/var/log/rf-dind.log 2>&1 &
i=0; until docker -H unix:///run/rf-dind.sock version >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 150 ] && exit 1; sleep 0.2; done`,
    ]);
    expect(started.code, started.stderr).toBe(0);
    try {
      const info = await execOnNode('pi1', [
        'docker',
        '-H',
        'unix:///run/rf-dind.sock',
        'info',
        '--format',
        '{{json .RegistryConfig.IndexConfigs}}',
      ]);
      expect(JSON.parse(info.stdout)[reg]).toMatchObject({ Secure: false });
      // No TLS between the test and that dockerd: it listens on a socket, not on docker:2376.
      await runJob('pi1', dind, 'fleet/dind', {
        DOCKER_HOST: 'unix:///run/rf-dind.sock',
        DOCKER_TLS_VERIFY: null,
        DOCKER_CERT_PATH: null,
        DOCKER_TLS_CERTDIR: null,
      });
    } finally {
      await execOnNode('pi1', [
        'sh',
        '-c',
        'kill $(cat /run/rf-dind.pid) 2>/dev/null; i=0; while [ -e /run/rf-dind.pid ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done; :',
      ]);
    }
  });

  it('destroy on a terminal lists what would go and asks; "n" removes nothing (exit 1)', async () => {
    const { code, out } = await underTerminal(['destroy', '--inventory', inventory], 'n\n');
    expect(code, out).toBe(1);
    const plain = out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''); // eslint-disable-line no-control-regex
    expect(plain).toMatch(
      /runner-fleet destroy will remove:[\s\S]*gitlab +pi1: delete runner #\d+[\s\S]*cluster +delete DaemonSet gitlab-runner\/gitlab-runner-dood/,
    );
    expect(plain).toContain('Remove all of this? [y/N]');
    expect(plain).toContain('Destroy: not confirmed; nothing was removed.');
    expect(await ours()).toHaveLength(3);
  });

  it('destroy: needs --yes without a terminal; removes our runners and objects; a second run is a no-op; --purge-registry-config takes back only our entries', async () => {
    const noTty = await provision('destroy');
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/pass --yes/);
    expect(await ours()).toHaveLength(3);

    const r = await provision('destroy', '--yes', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(await ours()).toEqual([]);
    const managed = k([
      'get',
      'daemonsets,secrets,serviceaccounts,configmaps',
      '-A',
      '-l',
      'app.kubernetes.io/managed-by=runner-fleet',
      '-o',
      'name',
    ]);
    expect(managed.trim()).toBe('');
    expect(k(['get', 'nodes', '-l', 'fleet.runner-fleet.dev/gitlab-runner', '-o', 'name']).trim()).toBe('');
    const ns = (() => {
      try {
        return kj(['get', 'namespace', NS]);
      } catch {
        return undefined;
      }
    })();
    expect(ns === undefined || Boolean(ns.metadata.deletionTimestamp)).toBe(true);
    expect(r.stderr).toMatch(/registry configuration stays/);
    // runner-fleet's forwarding file and tagged DOCKER-USER rules go; forwarding itself stays on until a reboot.
    expect(existsSync(nodeFile('pi1', FORWARDING_SYSCTL_FILE))).toBe(false);
    expect((await execOnNode('pi1', ['iptables', '-S'])).stdout).not.toContain('runner-fleet');
    expect((await execOnNode('pi1', ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('1');

    const again = await provision('destroy', '--yes');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('Destroy: nothing to remove.');

    const apt = nodeFile('pi1', '/etc/docker/daemon.json');
    writeFileSync(
      apt,
      `${JSON.stringify({ 'log-level': 'warn', 'insecure-registries': ['198.19.0.9:5000', fleet.registry] }, null, 2)}\n`,
    );
    const purge = await provision('destroy', '--yes', '--purge-registry-config');
    expect(purge.code, purge.stderr).toBe(0);
    expect(JSON.parse(readFileSync(apt, 'utf8'))).toEqual({
      'log-level': 'warn',
      'insecure-registries': ['198.19.0.9:5000'],
    });
    expect(existsSync(nodeFile('pi1', HOSTS_TOML(fleet.registry)))).toBe(false);
    const info = await execOnNode('pi1', [
      'docker',
      'info',
      '--format',
      '{{json .RegistryConfig.IndexConfigs}}',
    ]);
    expect(JSON.parse(info.stdout)[fleet.registry]).toBeUndefined();
    const last = await provision('destroy', '--yes', '--purge-registry-config');
    expect(last.code, last.stderr).toBe(0);
    expect(last.stderr).toContain('Destroy: nothing to remove.');
  });

  it('without a terminal nothing printed has an escape code', () => {
    for (const text of allOutput) expect(text).not.toMatch(ESC);
  });
});

/** Runs provision.ts under a pseudo-terminal (util-linux `script`), as a person at a terminal would, typing `input`; returns what the terminal showed. */
function underTerminal(args: string[], input = ''): Promise<{ code: number | null; out: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [join(REPO, 'node_modules', '.bin', 'tsx'), join(REPO, 'provision.ts'), ...args]
    .map(quote)
    .join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: REPO,
      env: { ...process.env, COLUMNS: '120' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    // Typed once the question is on the screen, as a person would.
    if (input) {
      const typeWhenAsked = setInterval(() => {
        if (!out.includes('[y/N]')) return;
        clearInterval(typeWhenAsked);
        child.stdin.end(input);
      }, 100);
      child.on('close', () => clearInterval(typeWhenAsked));
    } else child.stdin.end();
  });
}
