// Pure: the .gitlab-ci.yml job `ci-snippet` prints, building an image and pushing it to the inventory's first registry with one executor.
import { EXECUTOR_SPECS } from '../executors.js';
import type { Executor, Inventory } from '../inventory/types.js';

export const JOB_NAME = 'build-image';

/** Tags that send the job to these runners, or why there is no such set (then a comment says what to do). */
export function jobTags(inv: Inventory): { tags: string[]; note?: string } {
  const r = inv.runners;
  if (r.tags.length > 0) return { tags: r.tags };
  if (r.runUntagged)
    return { tags: [], note: 'no runners.tags: untagged jobs run on these runners (runners.runUntagged)' };
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
  const spec = EXECUTOR_SPECS[executor];
  const lines: string[] = [
    `# .gitlab-ci.yml job printed by runner-fleet (executor: ${executor}): builds the repository's Dockerfile and`,
    `# pushes it to ${registry} with ${spec.ciHead(registry)}.`,
  ];
  if (inv.gitlab.registries.length > 1)
    lines.push(
      `# The inventory lists more registries (${inv.gitlab.registries.slice(1).join(', ')}); this job pushes to the first.`,
    );
  lines.push(`${JOB_NAME}:`, '  stage: build', ...spec.ciLines(inv, registry));
  lines.push(
    `    REGISTRY: ${q(registry)}`,
    `    IMAGE: ${q('$REGISTRY/$CI_PROJECT_PATH:$CI_COMMIT_SHORT_SHA')}`,
  );
  if (note) lines.push(`  # ${note}`);
  lines.push(`  tags: [${tags.map(q).join(', ')}]`);
  lines.push(
    '  script:',
    '    - docker version',
    "    # Only for GitLab's own registry: CI_REGISTRY_* are the job's credentials there.",
    `    - ${sq('if [ -n "${CI_REGISTRY_PASSWORD:-}" ] && [ "${CI_REGISTRY:-}" = "$REGISTRY" ]; then echo "$CI_REGISTRY_PASSWORD" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$REGISTRY"; fi')}`,
    `    - ${sq('docker build -t "$IMAGE" .')}`,
    `    - ${sq('docker push "$IMAGE"')}`,
  );
  return `${lines.join('\n')}\n`;
}
