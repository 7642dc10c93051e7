// Runs a node's cleanup plan for `destroy` in one round trip: removals are guarded by what the plan saw, writes are atomic.
import { dirname } from 'node:path';
import type { NodeSpec } from '../inventory/types.js';
import type { Change } from '../report.js';
import { readStepsRun, stepsScript, tail } from '../remote/steps.js';
import type { NodeConnection } from '../ssh.js';
import { IDENTITY_ROOT } from '../executors.js';
import { identityGatherScript, planHostCleanup, type CleanupPlan, type CleanupStep } from './cleanup-plan.js';
import { gatherFacts, removeFileScript, stepScript } from './docker-converge.js';
import { shQuote } from './facts.js';

/** Gathers (one read-only round trip, the same gather apply makes) and plans. */
export async function planNodeCleanup(
  conn: NodeConnection,
  node: NodeSpec,
  registries: string[],
  opts: { purgeRegistryConfig: boolean; namespace: string; systemIds: readonly string[] },
): Promise<CleanupPlan> {
  const facts = await gatherFacts(conn, registries, identityGatherScript(opts.namespace));
  return planHostCleanup(node, registries, facts, opts);
}

export function cleanupStepScript(step: CleanupStep): string {
  switch (step.kind) {
    case 'remove-file':
      return removeFileScript(step.path, step.expectSha256, step.keepDir);
    case 'remove-dir':
      // The path is an identity folder the plan chose (never user input); each parent goes only when empty.
      return `rm -rf -- ${shQuote(step.path)}\nrmdir ${[
        dirname(step.path),
        dirname(dirname(step.path)),
        IDENTITY_ROOT,
      ]
        .filter((d, i, all) => d.startsWith(IDENTITY_ROOT) && all.indexOf(d) === i)
        .map(shQuote)
        .join(' ')} 2>/dev/null || :`;
    default:
      return stepScript(step);
  }
}

/** Runs every step in order in one round trip; `onChange` hears each step that completed, even when a later one fails. */
export async function runCleanup(
  conn: NodeConnection,
  steps: CleanupStep[],
  onChange: (c: Change) => void,
): Promise<void> {
  if (steps.length === 0) return;
  const r = await conn.exec(`set -e\n${stepsScript(steps, cleanupStepScript)}`, {
    sudo: true,
    step: 'destroy: clean up',
  });
  const run = readStepsRun(steps, r);
  run.done.forEach((s) => onChange({ step: s.kind, detail: s.detail }));
  if (r.code !== 0)
    throw new Error(
      `${run.failed?.detail ?? 'clean up'}: failed (exit ${r.code}): ${tail(r.stderr.trim() || r.stdout)}`,
    );
}
