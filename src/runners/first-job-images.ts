// The images a runner's first job needs on each node (and its pod's own image), for the host phase to pre-pull.
import { EXECUTOR_SPECS } from '../executors.js';
import type { PrepullWant } from '../docker/prepull.js';
import type { Executor, Inventory } from '../inventory/types.js';
import { helperImageFor } from './config-toml.js';

/** The architecture names the host gather reports (facts.arch) for which GitLab publishes a helper. */
const NODE_ARCHES = ['arm64', 'armhf', 'armel', 'amd64'];

/**
 * The gitlab-runner version the runners will run: runners.version, else the version in the runner image's tag.
 * gitlab-runner expands `${CI_RUNNER_VERSION}` in helper_image to its own version (executors/docker/docker.go
 * getHelperImage → ExpandValue), which is also the `v17.9.3` of GitLab's own helper tags (helperimage/info.go).
 */
export function runnerVersion(inv: Inventory): string | undefined {
  return inv.runners.version ?? inv.runners.image.match(/:[^/]*?v?(\d+\.\d+\.\d+)/)?.[1];
}

/**
 * What `apply` pulls on every node so that the first job does not: the helper of the node's architecture, the job
 * image and the docker CLI image (what the ci-snippet's jobs run), the dind service image for dind; the runner image
 * through containerd for the pods. runners.pullPolicy `[never]` means the images are put there by other means: none
 * is pulled. Any other policy pulls what is absent (if-not-present); with `always` the runner still checks the
 * registry at each job, but finds the layers there.
 */
export function firstJobImages(inv: Inventory, executor: Executor): PrepullWant {
  const r = inv.runners;
  const policies = r.pullPolicy ?? [];
  if (policies.length > 0 && policies.every((p) => p === 'never'))
    return {
      docker: [],
      helperByArch: {},
      containerd: [],
      off: 'runners.pullPolicy is [never]: the images are expected on the nodes already',
      notes: [],
    };
  const docker = EXECUTOR_SPECS[executor].docker;
  const version = runnerVersion(inv);
  const notes: string[] = [];
  const helperByArch: Record<string, string> = {};
  if (docker && version === undefined)
    notes.push(
      "the helper image is not pre-pulled: its tag carries the runner's version, which neither runners.version nor the runner image's tag gives (set runners.version)",
    );
  else if (docker)
    for (const arch of NODE_ARCHES)
      helperByArch[arch] = helperImageFor(arch, r.helperImage).split('${CI_RUNNER_VERSION}').join(version!);
  return {
    docker: docker
      ? [...new Set([r.jobImage, r.dockerCliImage, ...(docker.dindService ? [r.dindImage] : [])])]
      : [],
    helperByArch,
    containerd: r.placement === 'cluster' ? [r.image] : [],
    notes,
  };
}
