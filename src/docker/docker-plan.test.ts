import { describe, expect, it } from 'vitest';
import { stepScript } from './docker-converge.js';
import { TEST_REGISTRY, fileFact, hostFacts, testNode } from './facts.fixture.js';
import { FORWARDING_SYSCTL_CONTENT, FORWARDING_SYSCTL_FILE, type ForwardingFacts } from './forwarding.js';
import { APT_DAEMON_JSON, SNAP_DAEMON_JSON, parseFacts, sha256, type HostFacts } from './facts.js';
import { planHost, HostPlanError } from './docker-plan.js';

const node = testNode;
const REG = TEST_REGISTRY;

function facts(over: Partial<HostFacts> = {}): HostFacts {
  return hostFacts({
    docker: { version: '20.10.24', indexConfigs: {}, insecureCidrs: ['127.0.0.0/8'] },
    dockerd: { pid: 42 },
    ...over,
  });
}

const converged = (over: Partial<HostFacts> = {}) => {
  const content = `{"insecure-registries":["${REG}"]}`;
  return facts({
    aptDaemonJson: { path: APT_DAEMON_JSON, content, sha256: sha256(content) },
    docker: { version: '20.10.24', indexConfigs: { [REG]: { Secure: false } }, insecureCidrs: [] },
    ...over,
  });
};

describe('planHost', () => {
  it('writes daemon.json and reloads (SIGHUP) on apt', () => {
    const plan = planHost(node, [REG], facts());
    // The record of what runner-fleet added goes first, so a run cut off after the write still knows.
    expect(plan.steps.map((s) => (s.kind === 'write-file' ? s.name : s.kind))).toEqual([
      'registry state',
      'daemon.json',
      'reload-docker',
    ]);
    expect(plan.steps[2]).toMatchObject({ action: 'reload' });
    expect(plan.steps[0]).toMatchObject({ path: `${APT_DAEMON_JSON}.runner-fleet.json`, mode: '0600' });
    expect(plan.steps[1]).toMatchObject({ path: APT_DAEMON_JSON, expectSha256: 'absent', preserve: true });
  });

  it('plans nothing when the file has the registry and dockerd has loaded it', () => {
    expect(planHost(node, [REG], converged()).steps).toEqual([]);
  });

  it('reloads without writing when the file is right but dockerd has not loaded it', () => {
    const plan = planHost(
      node,
      [REG],
      converged({ docker: { version: 'x', indexConfigs: {}, insecureCidrs: [] } }),
    );
    expect(plan.steps.map((s) => s.kind)).toEqual(['reload-docker']);
  });

  it("uses the snap daemon.json and reloads the snap's dockerd with SIGHUP to its main PID, no restart", () => {
    const content = '{"log-level": "error"}';
    const plan = planHost(
      node,
      [REG],
      facts({
        aptDocker: false,
        snapDocker: true,
        snapDaemonJson: { path: SNAP_DAEMON_JSON, content, sha256: sha256(content) },
      }),
    );
    expect(plan.flavour).toBe('snap');
    expect(plan.steps[1]).toMatchObject({ path: SNAP_DAEMON_JSON });
    expect(JSON.parse((plan.steps[1] as { content: string }).content)).toEqual({
      'log-level': 'error',
      'insecure-registries': [REG],
    });
    expect(plan.steps[2]).toMatchObject({ action: 'reload', flavour: 'snap' });
    expect(stepScript(plan.steps[2])).toBe(
      'systemctl kill -s HUP --kill-whom=main snap.docker.dockerd.service',
    );
  });

  it("Docker from Docker's own packages (docker-ce) is installed Docker: no install, its daemon.json, apt's reload", () => {
    const gathered = parseFacts(
      `@@os\ndebian 12\n@@arch\narm64\n@@apt\ndocker.io not-installed\ndocker-ce installed\n@@snapd\nno\n@@snap\nno\n@@dockerd\n4242\npidfile=/run/docker.pid\n\n@@file ${APT_DAEMON_JSON}\n-\n@@file ${SNAP_DAEMON_JSON}\n-\n@@docker\n27.3.1 {"IndexConfigs":{},"InsecureRegistryCIDRs":[]}\n@@microk8s\nno\n@@end\n`,
    );
    expect(gathered.aptDocker).toBe(true);
    expect(gathered.aptDockerPackages).toEqual(['docker-ce']);
    const plan = planHost(node, [REG], gathered);
    // the registry record, daemon.json, the reload
    expect(plan.steps.map((s) => s.kind)).toEqual(['write-file', 'write-file', 'reload-docker']);
    expect(plan.steps[1]).toMatchObject({ path: APT_DAEMON_JSON });
    expect(stepScript(plan.steps[2])).toBe('systemctl reload docker');
    expect(plan.steps.map(stepScript).join('\n')).not.toContain('apt-get install');
  });

  it('a dockerd running without any package is installed Docker too; its --config-file is the daemon.json', () => {
    const plan = planHost(
      node,
      [REG],
      facts({
        aptDocker: true,
        aptDockerPackages: [],
        dockerd: { pid: 7, configFile: '/opt/docker/daemon.json' },
        runningDaemonJson: { path: '/opt/docker/daemon.json', sha256: 'absent' },
      }),
    );
    expect(plan.steps.map((s) => s.kind)).toEqual(['write-file', 'write-file', 'reload-docker']);
    expect(plan.steps[1]).toMatchObject({ path: '/opt/docker/daemon.json' });
  });

  it('docker: snap asked for on a node with apt Docker installs nothing over it', () => {
    expect(() =>
      planHost({ ...node, docker: 'snap' }, [REG], facts({ snapd: true, aptDockerPackages: ['docker-ce'] })),
    ).toThrow(/will not install a second one/);
  });

  it("prefers the running daemon's own --config-file", () => {
    const plan = planHost(
      node,
      [REG],
      facts({ runningDaemonJson: { path: '/opt/d.json', sha256: 'absent' } }),
    );
    expect(plan.steps.slice(0, 2)).toMatchObject([
      { path: '/opt/d.json.runner-fleet.json' },
      { path: '/opt/d.json' },
    ]);
  });

  it('installs with apt when nothing is there (auto) and regathers', () => {
    const plan = planHost(node, [REG], facts({ aptDocker: false, dockerd: undefined, docker: undefined }));
    expect(plan.steps).toEqual([expect.objectContaining({ kind: 'install-docker', flavour: 'apt' })]);
    expect(plan.regather).toBe(true);
  });

  it('refuses to guess when both Dockers are installed', () => {
    expect(() => planHost(node, [REG], facts({ snapDocker: true }))).toThrow(HostPlanError);
  });

  it('starts a stopped dockerd instead of reloading it', () => {
    const plan = planHost(node, [REG], facts({ dockerd: undefined, docker: undefined }));
    expect(plan.steps.map((s) => s.kind === 'reload-docker' && s.action)).toContain('start');
  });

  it('never overwrites invalid JSON', () => {
    expect(() =>
      planHost(
        node,
        [REG],
        facts({ aptDaemonJson: { path: APT_DAEMON_JSON, content: '{oops', sha256: 'x' } }),
      ),
    ).toThrow(/not valid JSON/);
  });

  it('writes hosts.toml once on microk8s nodes', () => {
    const plan = planHost(node, [REG], converged({ microk8s: true }));
    expect(plan.steps.map((s) => s.kind)).toEqual(['write-file']);
    const again = planHost(
      node,
      [REG],
      converged({
        microk8s: true,
        hostsToml: {
          [REG]: { path: 'p', content: (plan.steps[0] as { content: string }).content, sha256: 'x' },
        },
      }),
    );
    expect(again.steps).toEqual([]);
  });
});

describe('planHost: registries runner-fleet added', () => {
  const withState = (list: string[], file: string[]) => {
    const content = JSON.stringify({ 'insecure-registries': file });
    const state = JSON.stringify({ 'insecure-registries-added': list });
    return facts({
      aptDaemonJson: { path: APT_DAEMON_JSON, content, sha256: sha256(content) },
      registryState: {
        [APT_DAEMON_JSON]: {
          path: `${APT_DAEMON_JSON}.runner-fleet.json`,
          content: state,
          sha256: sha256(state),
        },
      },
      docker: {
        version: 'x',
        indexConfigs: Object.fromEntries(file.map((r) => [r, { Secure: false }])),
        insecureCidrs: [],
      },
    });
  };
  it('removes an entry it added once the inventory drops it, and forgets it after the verify', () => {
    const plan = planHost(
      node,
      [REG],
      withState(['old.lan:5000', REG], ['user.lan:5000', 'old.lan:5000', REG]),
    );
    const write = plan.steps.find((s) => s.kind === 'write-file' && s.name === 'daemon.json') as {
      content: string;
      detail: string;
    };
    expect(JSON.parse(write.content)['insecure-registries']).toEqual(['user.lan:5000', REG]);
    expect(write.detail).toMatch(/remove old\.lan:5000 from insecure-registries \(runner-fleet added it/);
    expect(plan.steps.map((s) => s.kind)).toEqual(['write-file', 'reload-docker']);
    expect(plan.afterVerify).toHaveLength(1);
    expect(
      JSON.parse((plan.afterVerify[0] as { content: string }).content)['insecure-registries-added'],
    ).toEqual([REG]);
  });
  it('never touches an entry it did not add, even when the inventory drops it', () => {
    expect(planHost(node, [], withState([], ['user.lan:5000'])).steps).toEqual([]);
    expect(planHost(node, [], withState(['other.lan:1'], ['user.lan:5000'])).steps).toEqual([]);
  });
});

describe('parseFacts', () => {
  it('parses the gather output', () => {
    const json = Buffer.from('{"a":1}').toString('base64');
    const out = [
      '@@os',
      'debian 12',
      '@@arch',
      'arm64',
      '@@apt',
      'installed',
      '@@snapd',
      'no',
      '@@snap',
      'no',
      '@@dockerd',
      '123',
      '--config-file=/etc/docker/daemon.json',
      '',
      `@@file ${APT_DAEMON_JSON}`,
      json,
      `@@file ${SNAP_DAEMON_JSON}`,
      '-',
      '@@docker',
      `20.10.24 {"IndexConfigs":{"${REG}":{"Secure":false}},"InsecureRegistryCIDRs":["127.0.0.0/8"]}`,
      '@@microk8s',
      'no',
      '@@end',
      '',
    ].join('\n');
    const f = parseFacts(out);
    expect(f).toMatchObject({
      arch: 'arm64',
      aptDocker: true,
      snapDocker: false,
      dockerd: { pid: 123, configFile: APT_DAEMON_JSON },
    });
    expect(f.aptDaemonJson.content).toBe('{"a":1}');
    expect(f.snapDaemonJson.sha256).toBe('absent');
    expect(f.docker?.indexConfigs[REG].Secure).toBe(false);
  });

  it('names what is not a regular file among the files a plan may write', () => {
    const out = [
      '@@os',
      'debian 12',
      '@@not-regular',
      `${APT_DAEMON_JSON}\tdirectory`,
      '@@docker',
      'x',
      '@@end',
    ];
    expect(parseFacts(out.join('\n')).notRegular).toEqual({ [APT_DAEMON_JSON]: 'directory' });
  });

  it('refuses truncated output', () => {
    expect(() => parseFacts('@@os\ndebian')).toThrow(/cut short/);
  });
});

describe('planHost: docker.registryMirrors and docker.logs', () => {
  const MIRROR = 'https://mirror.lan:5000';
  const settings = {
    registryMirrors: [MIRROR],
    logs: { driver: 'local' as const, maxSize: '10m', maxFile: 3 },
  };
  /** A node after such a run: the file, runner-fleet's record of it, and a dockerd that loaded it. */
  const after = (plan: ReturnType<typeof planHost>, loaded: { mirrors: string[]; loggingDriver: string }) => {
    const file = plan.steps.find((s) => s.kind === 'write-file' && s.name === 'daemon.json') as {
      content: string;
    };
    const stateStep = [...plan.steps, ...plan.afterVerify]
      .filter((s) => s.kind === 'write-file' && s.name === 'registry state')
      .at(-1) as { content: string };
    return facts({
      aptDaemonJson: { path: APT_DAEMON_JSON, content: file.content, sha256: sha256(file.content) },
      registryState: {
        [APT_DAEMON_JSON]: {
          path: `${APT_DAEMON_JSON}.runner-fleet.json`,
          content: stateStep.content,
          sha256: sha256(stateStep.content),
        },
      },
      docker: { version: '27.5.1', indexConfigs: { [REG]: { Secure: false } }, insecureCidrs: [], ...loaded },
    });
  };

  it('merges mirrors and log settings, restarts dockerd for the log settings and says what that does to containers', () => {
    const plan = planHost(node, [REG], converged(), settings);
    const write = plan.steps.find((s) => s.kind === 'write-file' && s.name === 'daemon.json') as {
      content: string;
      detail: string;
    };
    expect(JSON.parse(write.content)).toEqual({
      'insecure-registries': [REG],
      'registry-mirrors': [MIRROR],
      'log-driver': 'local',
      'log-opts': { 'max-size': '10m', 'max-file': '3' },
    });
    expect(write.detail).toContain(
      `add ${MIRROR} to registry-mirrors; set log-driver to local; set log-opts.max-file to 3; set log-opts.max-size to 10m`,
    );
    const restart = plan.steps.at(-1) as { kind: string; action: string; detail: string };
    expect(restart).toMatchObject({ kind: 'reload-docker', action: 'restart' });
    expect(restart.detail).toMatch(
      /log-driver and log-opts are read only when dockerd starts .*EVERY RUNNING CONTAINER STOPS/,
    );
    // The rerun: nothing to do.
    expect(
      planHost(node, [REG], after(plan, { mirrors: [`${MIRROR}/`], loggingDriver: 'local' }), settings).steps,
    ).toEqual([]);
  });

  it('mirrors alone are a reload (SIGHUP: running jobs keep going); with live-restore a restart still fails jobs in flight, and says so', () => {
    const plan = planHost(node, [REG], converged(), { registryMirrors: [MIRROR] });
    expect(plan.steps.at(-1)).toMatchObject({ kind: 'reload-docker', action: 'reload' });
    expect((plan.steps.at(-1) as { detail: string }).detail).toMatch(/to load the new registry-mirrors/);
    const live = `{"insecure-registries":["${REG}"],"live-restore":true}`;
    const withLive = planHost(
      node,
      [REG],
      converged({ aptDaemonJson: { path: APT_DAEMON_JSON, content: live, sha256: sha256(live) } }),
      settings,
    );
    expect((withLive.steps.at(-1) as { detail: string }).detail).toMatch(
      /live-restore is on, so running containers keep running, but A CI JOB IN FLIGHT FAILS \(its runner loses the connection to its containers, which are left behind\)/,
    );
    expect((withLive.steps.at(-1) as { detail: string }).detail).not.toMatch(/keep going/);
  });

  it("takes back only what it set: the previous log driver returns, a user's mirror stays", () => {
    const own = `{"insecure-registries":["${REG}"],"registry-mirrors":["https://user.lan"],"log-driver":"journald"}`;
    const start = converged({ aptDaemonJson: { path: APT_DAEMON_JSON, content: own, sha256: sha256(own) } });
    const first = planHost(node, [REG], start, settings);
    const state = after(first, { mirrors: ['https://user.lan/', `${MIRROR}/`], loggingDriver: 'local' });
    expect(JSON.parse(state.registryState![APT_DAEMON_JSON].content!)['settings-set']['log-driver']).toEqual({
      value: 'local',
      previous: 'journald',
    });
    const back = planHost(node, [REG], state, { registryMirrors: [] });
    const write = back.steps.find((s) => s.kind === 'write-file' && s.name === 'daemon.json') as {
      content: string;
      detail: string;
    };
    expect(JSON.parse(write.content)).toEqual({
      'insecure-registries': [REG],
      'registry-mirrors': ['https://user.lan'],
      'log-driver': 'journald',
    });
    expect(write.detail).toMatch(
      /remove https:\/\/mirror\.lan:5000 from registry-mirrors .*put log-driver back to journald/,
    );
    expect(back.steps.at(-1)).toMatchObject({ action: 'restart' });
  });

  it('the last mirror taken out leaves an empty list, which the reload applies (a missing key it would ignore)', () => {
    const first = planHost(node, [REG], converged(), { registryMirrors: [MIRROR] });
    const state = after(first, { mirrors: [`${MIRROR}/`], loggingDriver: 'json-file' });
    const back = planHost(node, [REG], state, { registryMirrors: [] });
    const write = back.steps.find((s) => s.kind === 'write-file' && s.name === 'daemon.json') as {
      content: string;
    };
    expect(JSON.parse(write.content)).toEqual({ 'insecure-registries': [REG], 'registry-mirrors': [] });
    expect(back.steps.at(-1)).toMatchObject({ kind: 'reload-docker', action: 'reload' });
    // Once dockerd has loaded the empty list: nothing left to do.
    expect(
      planHost(node, [REG], after(back, { mirrors: [], loggingDriver: 'json-file' }), { registryMirrors: [] })
        .steps,
    ).toEqual([]);
  });

  it('reloads or restarts when the file is right but the running dockerd has not loaded it (a run cut off)', () => {
    const plan = planHost(node, [REG], converged(), settings);
    const stale = planHost(node, [REG], after(plan, { mirrors: [], loggingDriver: 'json-file' }), settings);
    expect(stale.steps).toEqual([expect.objectContaining({ kind: 'reload-docker', action: 'restart' })]);
  });
});

describe('planHost: what the node itself would refuse, before any change', () => {
  const NEXUS = 'https://nexus.lan/repository/dockerhub';
  it('a mirror with a path on Docker 20.10: the node fails naming the version and the mirror; on 25 it is merged', () => {
    const settings = { registryMirrors: [NEXUS] };
    expect(() => planHost(node, [REG], converged(), settings)).toThrow(
      `docker.registryMirrors[0]: Docker 20.10.24 on this node refuses a registry mirror with a path (${NEXUS})`,
    );
    const newer = converged({
      docker: { version: '25.0.0', indexConfigs: { [REG]: { Secure: false } }, insecureCidrs: [] },
    });
    expect(planHost(node, [REG], newer, settings).steps.map((s) => s.kind)).toContain('write-file');
  });

  it('no Docker yet: the install is planned, and the mirror is checked against the installed version on the re-plan', () => {
    const none = facts({ aptDocker: false, dockerd: undefined, docker: undefined });
    expect(planHost(node, [REG], none, { registryMirrors: [NEXUS] })).toMatchObject({ regather: true });
    expect(() => planHost(node, [REG], facts(), { registryMirrors: [NEXUS] })).toThrow(HostPlanError);
  });

  it('a daemon.json that is a directory is named with the node, the path and what to do', () => {
    const dir = facts({ notRegular: { [APT_DAEMON_JSON]: 'directory' } });
    expect(() => planHost(node, [REG], dir)).toThrow(
      `pi1: ${APT_DAEMON_JSON} is a directory, not a file (dockerd cannot read it as its configuration either); runner-fleet will not replace it: remove it if it is empty (sudo rmdir ${APT_DAEMON_JSON}) or move it aside (sudo mv ${APT_DAEMON_JSON} ${APT_DAEMON_JSON}.moved), then run again`,
    );
  });

  it('maxFile 1 where daemon.json already has the local driver: refused naming docker.logs and the file', () => {
    const content = `{"insecure-registries":["${REG}"],"log-driver":"local"}`;
    const local = converged({ aptDaemonJson: { path: APT_DAEMON_JSON, content, sha256: sha256(content) } });
    expect(() => planHost(node, [REG], local, { registryMirrors: [], logs: { maxFile: 1 } })).toThrow(
      /^docker\.logs: with what \/etc\/docker\/daemon\.json already holds, the local log driver with max-file 1/,
    );
    expect(
      planHost(node, [REG], local, { registryMirrors: [], logs: { maxFile: 2 } }).steps.length,
    ).toBeGreaterThan(0);
  });
});

describe('parseDockerInfo with the log driver', () => {
  it('reads version, driver and registry config, and the older two-field form', async () => {
    const { parseDockerInfo } = await import('./facts.js');
    expect(parseDockerInfo('27.5.1 local {"IndexConfigs":{},"Mirrors":["https://m.lan/"]}')).toMatchObject({
      version: '27.5.1',
      loggingDriver: 'local',
      mirrors: ['https://m.lan/'],
    });
    expect(parseDockerInfo('20.10.24 {"IndexConfigs":{}}')).toMatchObject({
      version: '20.10.24',
      mirrors: [],
    });
    expect(parseDockerInfo('20.10.24  {"IndexConfigs":{}}')).not.toHaveProperty('loggingDriver');
  });
});

describe('planHost: forwarding on cluster nodes', () => {
  const pods = { placement: 'cluster' as const, podCidr: '10.1.0.0/16' };
  const off: ForwardingFacts = {
    ipForward: false,
    sysctlFile: fileFact(FORWARDING_SYSCTL_FILE),
    iptables: {},
  };
  const on: ForwardingFacts = {
    ipForward: true,
    sysctlFile: fileFact(FORWARDING_SYSCTL_FILE, FORWARDING_SYSCTL_CONTENT),
    iptables: { forwardPolicy: 'ACCEPT', dockerUser: [] },
  };
  const kinds = (steps: { kind: string }[]) => steps.map((s) => s.kind);

  it('turns forwarding on before Docker is installed, so its first start leaves the FORWARD policy alone', () => {
    const plan = planHost(
      node,
      [REG],
      facts({ aptDocker: false, dockerd: undefined, docker: undefined, forwarding: off }),
      undefined,
      pods,
    );
    expect(kinds(plan.steps)).toEqual(['enable-forwarding', 'install-docker']);
    expect(plan.regather).toBe(true);
  });

  it('before the daemon.json write and the start or restart of dockerd', () => {
    const plan = planHost(
      node,
      [REG],
      facts({ dockerd: undefined, docker: undefined, forwarding: off }),
      undefined,
      pods,
    );
    expect(kinds(plan.steps)).toEqual(['enable-forwarding', 'write-file', 'write-file', 'reload-docker']);
  });

  it('the regather after the install plans the DOCKER-USER rules if Docker set DROP anyway', () => {
    const after = facts({
      forwarding: { ...on, iptables: { forwardPolicy: 'DROP', dockerUser: ['-A DOCKER-USER -j RETURN'] } },
    });
    expect(kinds(planHost(node, [REG], after, undefined, pods).steps)).toEqual([
      'pod-traffic-rules',
      'write-file',
      'write-file',
      'reload-docker',
    ]);
  });

  it('a converged node plans nothing; a node that is no cluster node, or a caller without pods, gets no forwarding', () => {
    expect(planHost(node, [REG], converged({ forwarding: on }), undefined, pods).steps).toEqual([]);
    expect(
      planHost(node, [REG], converged({ forwarding: off }), undefined, { ...pods, placement: 'host' }).steps,
    ).toEqual([]);
    expect(planHost(node, [REG], converged({ forwarding: off })).steps).toEqual([]);
    expect(
      kinds(
        planHost(node, [REG], converged({ forwarding: off, microk8s: true, hostsToml: {} }), undefined, {
          ...pods,
          placement: 'host',
        }).steps,
      ),
    ).toEqual(['enable-forwarding', 'write-file']);
  });
});
