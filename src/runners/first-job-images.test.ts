// Which images apply pre-pulls for each executor, placement and pull policy, from an in-memory inventory.
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../inventory/schema.js';
import type { Executor, Inventory } from '../inventory/types.js';
import { firstJobImages, runnerVersion } from './first-job-images.js';

function inventory(runners = ''): Inventory {
  return parseInventory(
    `gitlab:
  url: https://gitlab.lan
  registry: gitlab.lan:5050
nodes:
  - { name: pi1, host: 10.0.0.1 }
runners:
  jobImage: alpine:3.20
${runners}`,
    '/tmp/inventory.yaml',
  );
}

const HELPER = 'registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper';

describe('firstJobImages', () => {
  const cases: [Executor, string[]][] = [
    ['dood', ['alpine:3.20', 'docker:27-cli']],
    ['dind', ['alpine:3.20', 'docker:27-cli', 'docker:27-dind']],
    ['shell', []],
  ];
  for (const [executor, docker] of cases)
    it(`${executor}: the job images through Docker, the runner image through containerd`, () => {
      const want = firstJobImages(inventory(), executor);
      expect(want.docker).toEqual(docker);
      expect(want.containerd).toEqual(['gitlab/gitlab-runner:alpine-v17.11.0']);
      expect(want.off).toBeUndefined();
    });

  it("the helper per node architecture, with the runner image's version (GitLab's tag: ARCH-vVERSION)", () => {
    expect(firstJobImages(inventory(), 'dood').helperByArch).toEqual({
      arm64: `${HELPER}:arm64-v17.11.0`,
      armhf: `${HELPER}:arm-v17.11.0`,
      armel: `${HELPER}:arm-v17.11.0`,
      amd64: `${HELPER}:x86_64-v17.11.0`,
    });
    expect(firstJobImages(inventory(), 'shell').helperByArch).toEqual({});
  });

  it('runners.helperImage and runners.version: a mirror, its {arch} and ${CI_RUNNER_VERSION} filled in', () => {
    const inv = inventory(
      '  version: 17.9.3\n  helperImage: "reg.lan:5000/helper:{arch}-v${CI_RUNNER_VERSION}"\n',
    );
    expect(runnerVersion(inv)).toBe('17.9.3');
    expect(firstJobImages(inv, 'dind').helperByArch.arm64).toBe('reg.lan:5000/helper:arm64-v17.9.3');
    expect(firstJobImages(inv, 'dind').containerd).toEqual(['gitlab/gitlab-runner:alpine-v17.9.3']);
  });

  it('host placement (shell jobs on the node): nothing to pull', () => {
    const want = firstJobImages(inventory('  placement: host\n  executor: shell\n'), 'shell');
    expect(want).toMatchObject({ docker: [], helperByArch: {}, containerd: [] });
  });

  it('a runner image whose tag names no version: no helper, and the plan says why', () => {
    const want = firstJobImages(inventory('  image: reg.lan:5000/gitlab-runner:latest\n'), 'dood');
    expect(want.helperByArch).toEqual({});
    expect(want.notes.join()).toContain('runners.version');
    expect(want.docker).toEqual(['alpine:3.20', 'docker:27-cli']);
  });

  it('pullPolicy [never] pulls nothing; a list that can pull does', () => {
    const never = firstJobImages(inventory('  pullPolicy: [never]\n'), 'dind');
    expect(never.off).toContain('never');
    expect(never.docker).toEqual([]);
    expect(never.containerd).toEqual([]);
    expect(firstJobImages(inventory('  pullPolicy: [never, if-not-present]\n'), 'dind').off).toBeUndefined();
    expect(firstJobImages(inventory('  pullPolicy: [always]\n'), 'dind').docker).toHaveLength(3);
  });
});
