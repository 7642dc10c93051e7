// The pre-pull's gather, its parsing and its pull script, and planPrepull on gathered facts.
import { describe, expect, it } from 'vitest';
import { hostFacts, testNode } from './facts.fixture.js';
import { splitGatherOutput } from './facts.js';
import { planPrepull } from './docker-plan.js';
import {
  normaliseRef,
  parseImageFacts,
  prepullGatherScript,
  prepullScript,
  runPrepull,
  PrepullError,
  type PrepullWant,
} from './prepull.js';
import type { NodeConnection } from '../ssh.js';

const HELPER = 'reg.lan:5000/helper';
const want: PrepullWant = {
  docker: ['alpine:3.20', 'reg.lan:5000/docker:27-dind'],
  helperByArch: { arm64: `${HELPER}:arm64-v17.9.3`, amd64: `${HELPER}:x86_64-v17.9.3` },
  containerd: ['reg.lan:5000/gitlab-runner:17.9.3'],
  notes: [],
};
const ALL_DOCKER = [`${HELPER}:arm64-v17.9.3`, `${HELPER}:x86_64-v17.9.3`, ...want.docker];

/** What the gather prints: one `id` line per image docker has, one "No such image" line per image it lacks. */
function gathered(have: string[], containerd: string[] = [], count = ALL_DOCKER.length) {
  const docker = ALL_DOCKER.map((r) =>
    have.includes(r) ? `id sha256:${'a'.repeat(64)}` : `Error: No such image: ${r}`,
  );
  return splitGatherOutput(
    ['@@images', `count ${count}`, ...docker, '@@containerd-images', ...containerd, '@@end'].join('\n'),
  );
}

const facts = (have: string[], containerd: string[] = [], over = {}) =>
  hostFacts({ gathered: gathered(have, containerd), microk8s: true, ...over });

describe('normaliseRef', () => {
  it.each([
    ['alpine:3.20', 'docker.io/library/alpine:3.20'],
    ['gitlab/gitlab-runner:alpine-v17.9.3', 'docker.io/gitlab/gitlab-runner:alpine-v17.9.3'],
    ['reg.lan:5000/docker:27-dind', 'reg.lan:5000/docker:27-dind'],
    ['localhost/x', 'localhost/x:latest'],
    ['198.18.0.2:5000/a/b@sha256:00', '198.18.0.2:5000/a/b@sha256:00'],
  ])('%s → %s', (ref, full) => expect(normaliseRef(ref)).toBe(full));
});

describe('the pre-pull gather', () => {
  it('is one docker image inspect of every candidate, and containerd filtered to the runner image', () => {
    const script = prepullGatherScript(want);
    expect(script.match(/docker image inspect/g)).toHaveLength(1);
    for (const r of ALL_DOCKER) expect(script).toContain(`'${r}'`);
    expect(script).toContain(`-e 'reg.lan:5000/gitlab-runner:17.9.3'`);
    expect(prepullGatherScript({ ...want, off: 'never' })).toBe('');
  });

  it('an image counts as present only when docker answered for every candidate', () => {
    expect(parseImageFacts(gathered(['alpine:3.20']), want).docker).toEqual(['alpine:3.20']);
    // dockerd down (or docker's output cut): nothing is known present, so everything is pulled.
    const down = splitGatherOutput('@@images\ncount 4\nCannot connect to the Docker daemon\n@@end');
    expect(parseImageFacts(down, want).docker).toEqual([]);
    expect(parseImageFacts(gathered(ALL_DOCKER, [], 3), want).docker).toEqual([]);
    expect(parseImageFacts(undefined, want)).toEqual({ docker: [], containerd: [] });
  });

  it('a daemon that names the missing image normalised (docker.io/library/…) is understood too', () => {
    const out = splitGatherOutput(
      [
        '@@images',
        'count 4',
        ...ALL_DOCKER.slice(0, 3).map(() => `id sha256:${'b'.repeat(64)}`),
        'Error response from daemon: No such image: reg.lan:5000/docker:27-dind',
      ].join('\n'),
    );
    expect(parseImageFacts(out, want).docker).toEqual(ALL_DOCKER.slice(0, 3));
  });
});

describe('planPrepull', () => {
  it("pulls the node's helper (its architecture), the job images and the runner image: one step", () => {
    const step = planPrepull(want, testNode, facts([]))!;
    expect(step.docker).toEqual([`${HELPER}:arm64-v17.9.3`, 'alpine:3.20', 'reg.lan:5000/docker:27-dind']);
    expect(step.containerd).toEqual(['reg.lan:5000/gitlab-runner:17.9.3']);
    expect(step.detail).toMatch(/^pull .* through Docker and .* through microk8s containerd/);
    expect(planPrepull(want, testNode, facts([], [], { arch: 'amd64' }))!.docker[0]).toBe(
      `${HELPER}:x86_64-v17.9.3`,
    );
  });

  it('only what is absent; nothing when all is there (a rerun)', () => {
    const some = planPrepull(want, testNode, facts(['alpine:3.20', `${HELPER}:arm64-v17.9.3`]))!;
    expect(some.docker).toEqual(['reg.lan:5000/docker:27-dind']);
    const runner = ['reg.lan:5000/gitlab-runner:17.9.3'];
    expect(planPrepull(want, testNode, facts(ALL_DOCKER, runner))).toBeUndefined();
  });

  it('the runner image only on a microk8s node; an architecture without a helper pulls the rest', () => {
    const plain = planPrepull(want, { ...testNode, microk8s: false }, facts(ALL_DOCKER))!;
    expect(plain).toBeUndefined();
    const noK8s = planPrepull(want, testNode, facts([], [], { microk8s: false, arch: 'riscv64' }))!;
    expect(noK8s.containerd).toEqual([]);
    expect(noK8s.docker).toEqual(want.docker);
  });

  it('nothing with pullPolicy [never] (want.off) or without a want', () => {
    expect(planPrepull({ ...want, off: 'never' }, testNode, facts([]))).toBeUndefined();
    expect(planPrepull(undefined, testNode, facts([]))).toBeUndefined();
  });
});

describe('the pull script', () => {
  it("pulls Docker's and containerd's side by side, containerd through microk8s's certs.d", () => {
    const script = prepullScript({
      kind: 'pull-images',
      docker: ['alpine:3.20'],
      containerd: ['gitlab/gitlab-runner:alpine-v17.9.3'],
      detail: '',
    });
    expect(script).toContain(`for ref in 'alpine:3.20'; do`);
    expect(script).toContain('docker pull -q "$ref"');
    expect(script).toContain(
      `microk8s ctr images pull --hosts-dir /var/snap/microk8s/current/args/certs.d "$ref"`,
    );
    expect(script).toContain(`'docker.io/gitlab/gitlab-runner:alpine-v17.9.3'`);
  });
});

describe('runPrepull', () => {
  const step = { kind: 'pull-images' as const, docker: ['a:1', 'bad:2'], containerd: [], detail: '' };
  const conn = (code: number, stdout: string) =>
    ({ exec: async () => ({ code, stdout, stderr: '' }) }) as unknown as NodeConnection;

  it('a failed pull is an error naming the image and what docker said', async () => {
    const err = await runPrepull(
      conn(1, '@@pull-failed docker bad:2 Error response from daemon: manifest unknown\n'),
      step,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PrepullError);
    expect((err as Error).message).toContain(
      'docker pull bad:2 failed: Error response from daemon: manifest unknown',
    );
    await expect(runPrepull(conn(0, ''), step)).resolves.toBeUndefined();
  });
});
