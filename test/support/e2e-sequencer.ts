// Orders the e2e suites longest first, from their measured durations, so that three workers finish together: vitest's
// own order on a clean clone (no result cache) is the largest file first, which started the longest suite fourth and
// left the run waiting on it alone at the end.
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds each suite took in a whole `npm test` on this machine's 2 cores (3 at a time; 2026-12-07, 661 s in all).
 * Rough is enough: only the order matters. A suite not listed counts as DEFAULT_SECONDS.
 */
export const SUITE_SECONDS: Record<string, number> = {
  'test/e2e/real-jobs.test.ts': 450,
  'test/e2e/private-ca.test.ts': 185,
  'test/e2e/runners.test.ts': 160,
  'test/e2e/cluster.test.ts': 130,
  'test/e2e/host-placement.test.ts': 120,
  'test/e2e/operator.test.ts': 110,
  'test/e2e/gitops.test.ts': 75,
  'test/e2e/chaos.test.ts': 75,
  'test/e2e/hosts.test.ts': 75,
  'test/e2e/preflight.test.ts': 65,
  'test/e2e/operator-settings.test.ts': 55,
  'test/images.test.ts': 30,
  'src/kube/cluster-converge.test.ts': 25,
  'test/e2e/faults-cluster.test.ts': 20,
  'test/gitlab/real-runner.test.ts': 12,
};
const DEFAULT_SECONDS = 60;

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
