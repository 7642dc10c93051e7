// The `images` service of the test fleet: pushes the locally built runner, helper, job, dind and base images to the
// test registry and points the inventory's runner images at them (nothing can be pulled from the internet here).
import { IMAGE_PATHS, ensureTestImages, pushTestImages, type TestImages } from './images.js';
import { REGISTRY } from './registry.js';
import type { TestbedService } from './services.js';

export const imagesService: TestbedService<TestImages> = {
  name: 'images',
  after: ['registry'],
  // Built (or found in the cache) while the nodes start; only the push needs the registry.
  prepare: ({ log }) => ensureTestImages({ log }),
  async start(ctx, built) {
    const t0 = Date.now();
    const refs = await pushTestImages(REGISTRY, built ?? (await ensureTestImages({ log: ctx.log })));
    ctx.log(`images pushed to ${REGISTRY} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const helper = IMAGE_PATHS['gitlab-runner-helper'].repository;
    return {
      runners: {
        image: refs['gitlab-runner'],
        jobImage: refs['docker-cli'],
        dockerCliImage: refs['docker-cli'],
        dindImage: refs['docker-dind'],
        // What an air-gapped fleet sets: the helper from its own registry, the arch and version filled in.
        helperImage: `${REGISTRY}/${helper}:{arch}-v\${CI_RUNNER_VERSION}`,
        // The images are pushed once per `up`; a job should not pull them again for every run.
        pullPolicy: ['if-not-present'],
      },
    };
  },
  async stop() {
    // Nothing runs: the registry's data goes with the registry.
  },
};
