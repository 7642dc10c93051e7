// Pure judgement of a runner found in GitLab with a node's tag and no record: this fleet's lost create, or not ours.
import { parseCreationMarker } from './registration-plan.js';

/** What GitLab says about a runner that no record of this fleet holds. */
export interface StrayCandidate {
  id: number;
  maintenance_note?: unknown;
  contacted_at?: string | null;
}

export type StrayJudgement =
  /** made by this fleet for this node by a create whose answer was lost: adopt or delete it */
  | { kind: 'ours'; attempt: string }
  /** no runner-fleet mark, or one for another node: someone else's, never touched */
  | { kind: 'unmarked' }
  /** another fleet's mark (same GitLab, a node of the same name): never touched, not even mentioned */
  | { kind: 'other-fleet'; fleet: string }
  /** a mark from before marks named their fleet: whose it is cannot be told, so it is left and reported */
  | { kind: 'fleetless'; attempt: string }
  /** carries this fleet's mark but a runner process has used its token: someone runs it, so it is left and reported */
  | { kind: 'in-use'; attempt: string };

export function judgeStray(r: StrayCandidate, fleet: string, node: string): StrayJudgement {
  const mark = parseCreationMarker(r.maintenance_note);
  if (!mark || mark.node !== node) return { kind: 'unmarked' };
  if (mark.fleet === undefined) return { kind: 'fleetless', attempt: mark.attempt };
  if (mark.fleet !== fleet) return { kind: 'other-fleet', fleet: mark.fleet };
  // A lost create's runner was never given to any runner process; one that polled GitLab is somebody's live runner.
  if (r.contacted_at) return { kind: 'in-use', attempt: mark.attempt };
  return { kind: 'ours', attempt: mark.attempt };
}

/** Why a marked runner was left alone, for a warning; undefined for runners that need no word. */
export function strayLeftAlone(id: number, node: string, j: StrayJudgement): string | undefined {
  switch (j.kind) {
    case 'ours':
    case 'unmarked':
    case 'other-fleet':
      return undefined;
    case 'fleetless':
      return `runner #${id} carries an older runner-fleet mark for ${node} (attempt ${j.attempt}) that names no fleet, so runner-fleet cannot tell which fleet made it and leaves it: if no fleet of yours holds it (runner-fleet status), delete it in GitLab`;
    case 'in-use':
      return `runner #${id} carries this fleet's mark for ${node} (attempt ${j.attempt}) but a runner process has contacted GitLab with its token, so it is somebody's live runner and is left alone: delete it in GitLab if it is not wanted`;
  }
}
