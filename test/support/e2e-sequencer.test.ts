import { describe, expect, it } from 'vitest';
import type { TestSpecification, Vitest } from 'vitest/node';
import LongestFirstSequencer from './e2e-sequencer.js';

const root = '/repo';
const spec = (project: string, file: string, groupOrder: number) =>
  ({
    moduleId: `${root}/${file}`,
    project: { name: project, config: { sequence: { groupOrder }, isolate: true } },
  }) as unknown as TestSpecification;
const ctx = {
  config: { root },
  cache: { getFileTestResults: () => undefined, getFileStats: () => undefined },
} as unknown as Vitest;

describe('LongestFirstSequencer', () => {
  it('puts the e2e suites longest first and leaves the projects and the unit files in their order', async () => {
    const files = [
      spec('e2e', 'test/e2e/hosts.test.ts', 1),
      spec('unit', 'src/b.test.ts', 0),
      spec('e2e-alone', 'test/testbed.test.ts', 2),
      spec('e2e', 'test/gitlab/real-runner.test.ts', 1),
      spec('e2e', 'test/e2e/real-jobs.test.ts', 1),
      spec('unit', 'src/a.test.ts', 0),
      spec('e2e', 'test/e2e/new-suite.test.ts', 1),
    ];
    const sorted = await new LongestFirstSequencer(ctx).sort(files);
    expect(sorted.map((f) => `${f.project.name} ${f.moduleId.slice(root.length + 1)}`)).toEqual([
      'unit src/b.test.ts',
      'unit src/a.test.ts',
      'e2e test/e2e/real-jobs.test.ts',
      'e2e test/e2e/hosts.test.ts',
      'e2e test/e2e/new-suite.test.ts',
      'e2e test/gitlab/real-runner.test.ts',
      'e2e-alone test/testbed.test.ts',
    ]);
  });
});
