// Orders the e2e suites longest first, from their measured durations, so that three workers finish together: vitest's
// own order on a clean clone (no result cache) is the largest file first, which started the longest suite fourth and
// left the run waiting on it alone at the end.
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds each suite took in a whole `npm test` on this machine's 2 cores (3 at a time). Rough is enough: only the
 * order matters. A suite not listed counts as DEFAULT_SECONDS.
 */
export const SUITE_SECONDS: Record<string, number> = {
  'test/e2e/real-jobs.test.ts': 650,
  'test/e2e/runners.test.ts': 300,
  'test/e2e/private-ca.test.ts': 250,
  'test/e2e/operator.test.ts': 230,
  'test/e2e/host-placement.test.ts': 220,
  'test/e2e/cluster.test.ts': 200,
  'test/e2e/hosts.test.ts': 180,
  'test/e2e/gitops.test.ts': 170,
  'test/e2e/operator-settings.test.ts': 140,
  'test/e2e/chaos.test.ts': 120,
  'test/e2e/preflight.test.ts': 110,
  'test/images.test.ts': 45,
  'src/kube/cluster-converge.test.ts': 40,
  'test/e2e/faults-cluster.test.ts': 30,
  'test/gitlab/real-runner.test.ts': 15,
};
const DEFAULT_SECONDS = 100;

export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const seconds = (f: TestSpecification) => SUITE_SECONDS[relative(root, f.moduleId)] ?? DEFAULT_SECONDS;
    // The base order keeps each project's files together, in the order the projects run: sort within each e2e run.
    const runs: TestSpecification[][] = [];
    for (const f of sorted) {
      const last = runs.at(-1);
      if (last && last[0].project.name === f.project.name) last.push(f);
      else runs.push([f]);
    }
    return runs.flatMap((run) =>
      run[0].project.name.startsWith('e2e') ? [...run].sort((a, b) => seconds(b) - seconds(a)) : run,
    );
  }
}
