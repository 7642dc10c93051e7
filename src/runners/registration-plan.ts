// Pure registration planner: inventory + stored records → the GitLab actions that make one runner (or manager) per node.
import type { Inventory } from '../inventory/types.js';
import { REGISTRATION_MODE_KEYS } from '../gitlab/auth-modes.js';
import {
  desiredSettings,
  diffSettings,
  modeForAuth,
  SCOPE_FIELDS,
  type RegistrationMode,
  type RunnerRecord,
  type RunnerSettings,
} from './records.js';

/**
 * What to do in GitLab. Every action that starts from an existing record verifies its token first
 * (POST /runners/verify); a token GitLab rejects (403) is replaced by a fresh create, whatever the action.
 */
export type RegistrationAction =
  /** a new runner for the node (access: POST /user/runners, registration: POST /runners);
   *  `replaces` is deleted only after the new record is saved */
  | {
      kind: 'create';
      node: string;
      mode: 'access' | 'registration';
      settings: RunnerSettings;
      systemId?: string;
      replaces?: RunnerRecord;
      reason: string;
    }
  /** shared token: verify it under the node's system_id, which makes the node a manager of the shared runner */
  | { kind: 'join'; node: string; systemId?: string; replaces?: RunnerRecord; reason: string }
  /** nothing changed: verify the token (and refresh the manager) only */
  | { kind: 'verify'; node: string; record: RunnerRecord; settings: RunnerSettings | null }
  /** settings changed: PUT /runners/:id with the access token (falls back to re-create if the token may not) */
  | { kind: 'update'; node: string; record: RunnerRecord; settings: RunnerSettings; changed: string[] }
  /** the node left the inventory, or the record was superseded: DELETE /runners (or /runners/managers in shared mode) */
  | { kind: 'delete'; node: string; record: RunnerRecord; reason: string }
  /** nothing can be done without a token in the inventory */
  | { kind: 'blocked'; node: string; reason: string };

export interface PlanOptions {
  /** the resolved gitlab.runnerToken, to notice that it changed; the planner reads no secret itself */
  sharedToken?: string;
  /** limit the run to these nodes (`--only`): other records are neither verified nor deleted */
  only?: string[];
  /**
   * Why records of nodes the given inventory lacks are deleted, for their messages (default "node left the
   * inventory"). Placement passes its own ("runners.placement is host") once reconcileRunners passes it through.
   */
  dropReason?: string;
}

const NO_TOKEN =
  'gitlab has no accessToken, runnerToken or registrationToken: set one to register a runner for this node';

export function planRegistrations(
  inv: Inventory,
  records: readonly RunnerRecord[],
  opts: PlanOptions = {},
): RegistrationAction[] {
  const actions: RegistrationAction[] = [];
  const mode = modeForAuth(inv.gitlab.auth.kind);
  const inScope = (node: string) => !opts.only || opts.only.includes(node);
  const wanted = new Set(inv.nodes.map((n) => n.name));

  for (const node of inv.nodes) {
    if (!inScope(node.name)) continue;
    const live = records.filter((r) => r.node === node.name && !r.retiredAt);
    // Two live records for one node can only come from an interrupted run: keep the newest.
    live.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    const [current, ...extra] = live;
    for (const r of extra)
      actions.push({
        kind: 'delete',
        node: node.name,
        record: r,
        reason: 'a newer record exists for this node',
      });

    if (!current) {
      if (!mode) actions.push({ kind: 'blocked', node: node.name, reason: NO_TOKEN });
      else if (mode === 'shared') actions.push({ kind: 'join', node: node.name, reason: 'new node' });
      else
        actions.push({
          kind: 'create',
          node: node.name,
          mode,
          settings: desiredSettings(inv, node, mode),
          reason: 'new node',
        });
      continue;
    }
    if (!mode) {
      actions.push({ kind: 'verify', node: node.name, record: current, settings: null });
      continue;
    }
    const sharedTokenChanged =
      mode === 'shared' && opts.sharedToken !== undefined && current.token !== opts.sharedToken;
    if (current.mode !== mode || sharedTokenChanged) {
      const reason =
        current.mode !== mode
          ? `registration changed from ${describeMode(current.mode)} to ${describeMode(mode)}`
          : 'gitlab.runnerToken changed';
      // The node keeps its system_id: it is the machine's identity, not the runner's.
      if (mode === 'shared')
        actions.push({
          kind: 'join',
          node: node.name,
          systemId: current.systemId,
          replaces: current,
          reason,
        });
      else
        actions.push({
          kind: 'create',
          node: node.name,
          mode,
          settings: desiredSettings(inv, node, mode),
          systemId: current.systemId,
          replaces: current,
          reason,
        });
      continue;
    }
    if (mode === 'shared') {
      actions.push({ kind: 'verify', node: node.name, record: current, settings: null });
      continue;
    }
    const settings = desiredSettings(inv, node, mode);
    const diff = diffSettings(current.settings, settings);
    if (diff.length === 0) {
      actions.push({ kind: 'verify', node: node.name, record: current, settings });
    } else if (
      mode === 'access' &&
      current.id !== undefined &&
      !diff.some((d) => SCOPE_FIELDS.includes(d.field))
    ) {
      actions.push({
        kind: 'update',
        node: node.name,
        record: current,
        settings,
        changed: diff.map((d) => d.text),
      });
    } else {
      // Without an access token (or to move a runner to another group/project) the only way is a new runner.
      actions.push({
        kind: 'create',
        node: node.name,
        mode,
        settings,
        systemId: current.systemId,
        replaces: current,
        reason: diff.map((d) => d.text).join(', '),
      });
    }
  }

  for (const r of records) {
    if (!inScope(r.node)) continue;
    if (r.retiredAt)
      actions.push({
        kind: 'delete',
        node: r.node,
        record: r,
        reason: 'replaced earlier; its delete did not finish',
      });
    else if (!wanted.has(r.node))
      actions.push({
        kind: 'delete',
        node: r.node,
        record: r,
        reason: opts.dropReason ?? 'node left the inventory',
      });
  }
  return actions;
}

export function describeMode(mode: RegistrationMode): string {
  return REGISTRATION_MODE_KEYS[mode];
}

/** One line per action that would change GitLab; verify-only actions say nothing. For `plan` and --dry-run. */
export function describeAction(a: RegistrationAction): { step: string; detail: string } | null {
  switch (a.kind) {
    case 'create':
      return {
        step: a.replaces ? 'replace runner' : 'create runner',
        detail: `${a.node}: ${a.replaces ? `replace runner #${a.replaces.id ?? '?'} with a new` : 'create a'} runner (${a.reason}; tags ${a.settings.tagList.join(', ')})`,
      };
    case 'join':
      return {
        step: 'join shared runner',
        detail: `${a.node}: register as a manager of the gitlab.runnerToken runner (${a.reason})`,
      };
    case 'update':
      return {
        step: 'update runner',
        detail: `${a.node}: update runner #${a.record.id}: ${a.changed.join(', ')}`,
      };
    case 'delete':
      return {
        step: a.record.mode === 'shared' ? 'delete manager' : 'delete runner',
        detail:
          a.record.mode === 'shared'
            ? `${a.node}: delete manager ${a.record.systemId} of runner #${a.record.id ?? '?'} (${a.reason})`
            : `${a.node}: delete runner #${a.record.id ?? '?'} (${a.reason})`,
      };
    case 'blocked':
    case 'verify':
      // blocked is an error, not a change; verify changes nothing
      return null;
  }
}

/**
 * The mark runner-fleet leaves in the maintenance note of every runner it creates: the fleet, the node and a
 * per-attempt id. A create whose answer is lost (a timeout, a gateway error, a garbled 2xx) may still have made the
 * runner; the next look for runners of that node that no record holds finds it by this mark, and adopts or deletes
 * it instead of leaving an orphan beside a second create. The fleet id keeps another fleet's runners (same GitLab,
 * a node of the same name) out of that look.
 */
export function creationMarker(fleet: string, node: string, attempt: string): string {
  return `[runner-fleet fleet=${fleet} node=${node} attempt=${attempt}]`;
}

export interface CreationMark {
  /** undefined: a mark written before marks named their fleet */
  fleet?: string;
  node: string;
  attempt: string;
}

/** The fleet, node and attempt of a creation marker in a maintenance note, or undefined when it has none. */
export function parseCreationMarker(note: unknown): CreationMark | undefined {
  if (typeof note !== 'string') return undefined;
  const m = /\[runner-fleet (?:fleet=([0-9a-z-]+) )?node=([^\s\]]+) attempt=([0-9a-z]+)\]/.exec(note);
  if (!m) return undefined;
  return { ...(m[1] ? { fleet: m[1] } : {}), node: m[2], attempt: m[3] };
}
