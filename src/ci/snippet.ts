// Pure: the .gitlab-ci.yml job `ci-snippet` prints, building an image and pushing it to the inventory's first registry with one executor.
import { EXECUTOR_SPECS, type CiBuild } from '../executors.js';
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
 * The script lines that set `$IMAGE`. Docker refuses upper case in a repository name, while GitLab keeps the case of
 * CI_PROJECT_PATH (`MyTeam/App`); its own registry's CI_REGISTRY_IMAGE is `host:port/` + the path lowercased
 * (Project#container_registry_url). So: CI_REGISTRY_IMAGE when REGISTRY is GitLab's registry, else the lowercased
 * path on REGISTRY. GitLab paths are ASCII, so `tr A-Z a-z` is the whole of Ruby's downcase here.
 */
const IMAGE_LINES = [
  "    # GitLab's own registry: its CI_REGISTRY_IMAGE; any other: the project path, lowercased (Docker needs that).",
  `    - ${sq('if [ -n "${CI_REGISTRY_IMAGE:-}" ] && [ "${CI_REGISTRY:-}" = "$REGISTRY" ]; then IMAGE="$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"; else IMAGE="$REGISTRY/$(printf %s "$CI_PROJECT_PATH" | tr A-Z a-z):$CI_COMMIT_SHORT_SHA"; fi')}`,
  `    - ${sq('echo "image: $IMAGE"')}`,
];

/**
 * The job as YAML text (every value a JSON string, so valid YAML whatever it holds). Script lines use only
 * POSIX sh and the docker CLI; `$REGISTRY` comes from the job's variables, `$IMAGE` from the first script line.
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
  lines.push(`    REGISTRY: ${q(registry)}`);
  if (note) lines.push(`  # ${note}`);
  lines.push(`  tags: [${tags.map(q).join(', ')}]`);
  lines.push('  script:', ...IMAGE_LINES, ...buildLines(spec.ciBuild));
  return `${lines.join('\n')}\n`;
}

/** The script lines that build `$IMAGE` and push it, by how the executor's jobs build. */
function buildLines(build: CiBuild): string[] {
  switch (build) {
    case 'docker-cli':
      return [
        '    - docker version',
        "    # Only for GitLab's own registry: CI_REGISTRY_USER/PASSWORD are the job's credentials there.",
        `    - ${sq('if [ -n "${CI_REGISTRY_PASSWORD:-}" ] && [ "${CI_REGISTRY:-}" = "$REGISTRY" ]; then echo "$CI_REGISTRY_PASSWORD" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$REGISTRY"; fi')}`,
        `    - ${sq('docker build -t "$IMAGE" .')}`,
        `    - ${sq('docker push "$IMAGE"')}`,
      ];
    default: {
      const never: never = build;
      throw new Error(`no build lines for ${String(never)}`);
    }
  }
}
