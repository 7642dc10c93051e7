// A vitest reporter that ends the run with one plain line, `N passed, N failed, N skipped`, that any CI can read,
// after a table of the slowest test files (total, the tests' own share, and the rest: hooks such as a fleet's up,
// and collecting), so a run that grows past its budget says where the time went.
import type { Reporter, TestModule } from 'vitest/node';

/** Files under this many seconds stay out of the table (the unit files). */
const TABLE_MIN_SECONDS = 20;

export function timingTable(modules: ReadonlyArray<TestModule>): string[] {
  const rows = modules
    .map((mod) => {
      const d = mod.diagnostic();
      const total = (d.duration + d.collectDuration + d.setupDuration) / 1000;
      let tests = 0;
      let slowest = { name: '', s: 0 };
      for (const test of mod.children.allTests()) {
        const s = (test.diagnostic()?.duration ?? 0) / 1000;
        tests += s;
        if (s > slowest.s) slowest = { name: test.name, s };
      }
      return { file: mod.relativeModuleId, project: mod.project.name, total, tests, slowest };
    })
    .filter((r) => r.total >= TABLE_MIN_SECONDS)
    .sort((a, b) => b.total - a.total);
  if (rows.length === 0) return [];
  const s = (x: number) => `${Math.round(x)} s`;
  return [
    `\nslowest files (total = tests + hooks and collecting; slowest test):`,
    ...rows.map(
      (r) =>
        `  ${s(r.total).padStart(6)}  tests ${s(r.tests).padStart(6)}  other ${s(r.total - r.tests).padStart(6)}  [${r.project}] ${r.file}  (${s(r.slowest.s)}: ${r.slowest.name.slice(0, 70)})`,
    ),
  ];
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of modules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      if (mod.state() === 'failed' && [...mod.children.allTests()].length === 0) failed++;
    }
    failed += errors.length;
    const table = timingTable(modules);
    if (table.length > 0) process.stdout.write(`${table.join('\n')}\n`);
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
