// Pure: the .gitlab-ci.yml job `ci-snippet` prints, building an image and pushing it to the inventory's first registry with one executor.
import type { Executor, Inventory } from '../inventory/types.js';

export const JOB_NAME = 'build-image';

/** Tags that send the job to these runners, or why there is no such set (then a comment says what to do). */
export function jobTags(inv: Inventory): { tags: string[]; note?: string } {
  const r = inv.runners;
  if (r.tags.length > 0) return { tags: r.tags };
  if (r.runUntagged) return { tags: [], note: 'no runners.tags: untagged jobs run on these runners (runners.runUntagged)' };
  // Each runner is tagged with its node name; without a common tag a job can only pin itself to one node.
  const first = inv.nodes[0]?.name;
  return {
    tags: first ? [first] : [],
    note: `no runners.tags in the inventory: pinned to node ${first ?? '?'}; add runners.tags (e.g. [pi]) to use any node`,
  };
}

const q = (s: string) => JSON.stringify(s);
/** A single-quoted YAML scalar: nothing but `'` is special inside, so shell lines stay readable. */
const sq = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * The job as YAML text (every value a JSON string, so valid YAML whatever it holds). Script lines use only
 * POSIX sh and the docker CLI; `$REGISTRY` and `$IMAGE` come from the job's variables.
 */
export function ciSnippet(inv: Inventory, executor: Executor): string {
  const registry = inv.gitlab.registries[0];
  const { tags, note } = jobTags(inv);
  const r = inv.runners;
  const lines: string[] = [];
  const head: Record<Executor, string> = {
    dind: `a Docker-in-Docker service per job (its own dockerd, told that ${registry} is plain HTTP)`,
    dood: `the node's own dockerd through /var/run/docker.sock (its daemon.json trusts ${registry}; runner-fleet set that)`,
    shell: `the node's own dockerd from the runner's shell (its daemon.json trusts ${registry}; runner-fleet set that)`,
  };
  lines.push(
    `# .gitlab-ci.yml job printed by runner-fleet (executor: ${executor}): builds the repository's Dockerfile and`,
    `# pushes it to ${registry} with ${head[executor]}.`,
  );
  if (inv.gitlab.registries.length > 1) lines.push(`# The inventory lists more registries (${inv.gitlab.registries.slice(1).join(', ')}); this job pushes to the first.`);
  lines.push(`${JOB_NAME}:`, '  stage: build');
  if (executor === 'dind') {
    lines.push(
      `  image: ${q(r.dockerCliImage)}`,
      '  services:',
      "    # The service's dockerd never reads the node's daemon.json: the registry is passed as a flag. runner-fleet's",
      '    # runners start this same service from config.toml already; GitLab Runner then ignores the duplicate alias,',
      '    # so the job also works on other dind runners.',
      `    - name: ${q(r.dindImage)}`,
      '      alias: docker',
      `      command: [${q(`--insecure-registry=${registry}`)}]`,
      '  variables:',
      '    # TLS between the job and its dind service, as GitLab documents for the Docker executor.',
      `    DOCKER_HOST: ${q('tcp://docker:2376')}`,
      `    DOCKER_TLS_CERTDIR: ${q('/certs')}`,
      `    DOCKER_TLS_VERIFY: ${q('1')}`,
      `    DOCKER_CERT_PATH: ${q('/certs/client')}`,
    );
  } else if (executor === 'dood') {
    lines.push(
      `  image: ${q(r.dockerCliImage)}`,
      '  variables:',
      "    # The runner mounts the node's Docker socket into the job; no dind service, no TLS.",
      `    DOCKER_HOST: ${q('unix:///var/run/docker.sock')}`,
      `    DOCKER_TLS_CERTDIR: ${q('')}`,
    );
  } else {
    lines.push('  variables:');
  }
  lines.push(
    `    REGISTRY: ${q(registry)}`,
    `    IMAGE: ${q('$REGISTRY/$CI_PROJECT_PATH:$CI_COMMIT_SHORT_SHA')}`,
  );
  if (note) lines.push(`  # ${note}`);
  lines.push(`  tags: [${tags.map(q).join(', ')}]`);
  lines.push(
    '  script:',
    '    - docker version',
    '    # Only for GitLab\'s own registry: CI_REGISTRY_* are the job\'s credentials there.',
    `    - ${sq('if [ -n "${CI_REGISTRY_PASSWORD:-}" ] && [ "${CI_REGISTRY:-}" = "$REGISTRY" ]; then echo "$CI_REGISTRY_PASSWORD" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$REGISTRY"; fi')}`,
    `    - ${sq('docker build -t "$IMAGE" .')}`,
    `    - ${sq('docker push "$IMAGE"')}`,
  );
  return `${lines.join('\n')}\n`;
}
