// destroy's look for runners this fleet made but holds no record of (a create whose answer was lost): found by mark, deleted.
import type { GitlabRunnerApi, RunnerDetails } from '../gitlab/api.js';
import { ApiError } from '../errors.js';
import type { RunnerType } from '../inventory/types.js';
import { redact } from '../secrets.js';
import { strayLookupDeniedMessage, type RunnerChange, type RunnerIssue } from './reconcile.js';
import { judgeStray, strayLeftAlone, type StrayCandidate } from './strays.js';

export interface SweepInput {
  api: GitlabRunnerApi;
  /** the access token */
  secret: string;
  fleet: string;
  /** every node name this fleet may have made runners for (the inventory's and the records') */
  nodes: string[];
  /** runner ids the records hold: those were deleted (or kept) through their records already */
  held: ReadonlySet<number>;
  type?: RunnerType;
  dryRun: boolean;
}

export interface SweepResult {
  changes: RunnerChange[];
  errors: RunnerIssue[];
  warnings: RunnerIssue[];
}

const messageOf = (err: unknown): string => redact(err instanceof Error ? err.message : String(err));
const refused = (err: unknown): err is ApiError =>
  err instanceof ApiError && (err.status === 401 || err.status === 403);

/**
 * For each node: the runners tagged with its name that carry this fleet's creation mark and no record, deleted by
 * id (dry run: listed). Another fleet's runners and runners some process has used are never touched. A token that
 * may not list runners is one warning: what it cannot see stays, and the person is told how to find it.
 */
export async function sweepFleetStrays(input: SweepInput): Promise<SweepResult> {
  const out: SweepResult = { changes: [], errors: [], warnings: [] };
  for (const node of input.nodes) {
    let list;
    try {
      list = await input.api.listAllRunners(input.secret, { tagList: [node], type: input.type });
    } catch (err) {
      if (!refused(err)) throw err;
      out.warnings.push({
        node,
        message: `runners this fleet made whose create answer was lost cannot be looked for: ${strayLookupDeniedMessage(err)}. Look in GitLab for runners whose maintenance note has [runner-fleet fleet=${input.fleet} …] and delete them`,
      });
      return out;
    }
    for (const r of list) {
      if (input.held.has(r.id)) continue;
      let details: RunnerDetails;
      try {
        details = await input.api.getRunner(input.secret, r.id);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) continue;
        throw err;
      }
      const j = judgeStray(details as StrayCandidate, input.fleet, node);
      const why = strayLeftAlone(r.id, node, j);
      if (why) out.warnings.push({ node, message: why });
      if (j.kind !== 'ours') continue;
      const detail = `${node}: ${input.dryRun ? 'delete' : 'deleted'} runner #${r.id}, made by this fleet (attempt ${j.attempt}) and held by no record`;
      if (input.dryRun) {
        out.changes.push({ node, step: 'delete runner', detail });
        continue;
      }
      try {
        await input.api.deleteRunnerById(input.secret, r.id);
        out.changes.push({ node, step: 'delete runner', detail });
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) continue;
        out.errors.push({ node, message: `could not delete runner #${r.id} (${messageOf(err)})` });
      }
    }
  }
  return out;
}
