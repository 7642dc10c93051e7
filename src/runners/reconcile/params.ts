// Runner settings in the API's words, for a create (with runner-fleet's maintenance note and mark) or an update.
import type { RunnerParams } from '../../gitlab/api.js';
import type { RunnerSettings } from '../records.js';

/** What a create sends: the settings, and a maintenance note naming the node (and the creation mark, if any). */
export function createParams(s: RunnerSettings, node: string, mark?: string): RunnerParams {
  const p: RunnerParams = {
    description: s.description,
    tag_list: s.tagList,
    run_untagged: s.runUntagged,
    locked: s.locked,
    access_level: s.accessLevel,
    paused: s.paused,
    maintenance_note: `Managed by runner-fleet for node ${node}; edits here are overwritten on the next run.${mark ? ` ${mark}` : ''}`,
  };
  if (s.maximumTimeout !== null) p.maximum_timeout = s.maximumTimeout;
  return p;
}

/**
 * What an update sends: the settings without the note (it keeps the creation mark), and an explicit null where a
 * limit GitLab has (`hadTimeout`) is to be cleared: a missing field would leave it.
 */
export function updateParams(
  s: RunnerSettings,
  node: string,
  hadTimeout: number | null | undefined,
): RunnerParams {
  const params = createParams(s, node);
  delete params.maintenance_note;
  if (s.maximumTimeout === null && hadTimeout != null) params.maximum_timeout = null;
  return params;
}
