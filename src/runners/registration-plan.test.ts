// The pure registration planner on in-memory inventories and records.
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../inventory/schema.js';
import type { Inventory } from '../inventory/types.js';
import { describeAction, planRegistrations, type RegistrationAction } from './registration-plan.js';
import {
  desiredSettings,
  diffSettings,
  parseRecords,
  type RegistrationMode,
  type RunnerRecord,
} from './records.js';

function inventory(
  auth: string,
  opts: { nodes?: string[]; runners?: string; gitlab?: string } = {},
): Inventory {
  const nodes = (opts.nodes ?? ['pi-1', 'pi-2'])
    .map((n, i) => `  - { name: ${n}, host: 10.0.0.${i + 1} }`)
    .join('\n');
  return parseInventory(
    `gitlab:
  url: https://gitlab.lan
  registry: gitlab.lan:5050
${auth ? `  ${auth}\n` : ''}${opts.gitlab ?? ''}
nodes:
${nodes}
runners:
  tags: [arm64, pi]
  description: "pi runner {node}"
${opts.runners ?? ''}
`,
    '/tmp/inventory.yaml',
  );
}

const ACCESS = 'accessToken: env:GL_ACCESS';
const REGISTRATION = 'registrationToken: env:GL_REG';
const SHARED = 'runnerToken: env:GL_RUNNER';

let n = 0;
function record(
  inv: Inventory,
  node: string,
  mode: RegistrationMode,
  extra: Partial<RunnerRecord> = {},
): RunnerRecord {
  n++;
  const spec = inv.nodes.find((x) => x.name === node) ?? { ...inv.nodes[0], name: node };
  return {
    node,
    mode,
    id: 100 + n,
    token: mode === 'shared' ? 'glrt-shared-token-1' : `glrt-token-${n}`,
    systemId: `s_${String(n).padStart(12, '0')}`,
    settings: mode === 'shared' ? null : desiredSettings(inv, spec, mode),
    createdAt: `2025-01-01T00:00:${String(n % 60).padStart(2, '0')}.000Z`,
    ...extra,
  };
}

const kinds = (actions: RegistrationAction[]) => actions.map((a) => `${a.kind}:${a.node}`);

describe('planRegistrations', () => {
  it('access token, no records: one create per node with inventory settings, tags + node name', () => {
    const inv = inventory(ACCESS, {
      gitlab: '  runnerType: group_type\n  groupId: 42\n',
      runners: '  runUntagged: true\n  maximumTimeout: 3600\n  accessLevel: ref_protected\n',
    });
    const actions = planRegistrations(inv, []);
    expect(kinds(actions)).toEqual(['create:pi-1', 'create:pi-2']);
    expect(actions[0]).toMatchObject({
      kind: 'create',
      mode: 'access',
      settings: {
        description: 'pi runner pi-1',
        tagList: ['arm64', 'pi', 'pi-1'],
        runUntagged: true,
        locked: false,
        accessLevel: 'ref_protected',
        maximumTimeout: 3600,
        paused: false,
        runnerType: 'group_type',
        groupId: 42,
      },
    });
  });

  it('records that match: verify only, which describes no change', () => {
    const inv = inventory(ACCESS);
    const records = [record(inv, 'pi-1', 'access'), record(inv, 'pi-2', 'access')];
    const actions = planRegistrations(inv, records);
    expect(kinds(actions)).toEqual(['verify:pi-1', 'verify:pi-2']);
    expect(actions.map(describeAction)).toEqual([null, null]);
  });

  it('tag order alone is no change', () => {
    const inv = inventory(ACCESS);
    const r = record(inv, 'pi-1', 'access');
    r.settings!.tagList = [...r.settings!.tagList].reverse();
    expect(kinds(planRegistrations(inventory(ACCESS, { nodes: ['pi-1'] }), [r]))).toEqual(['verify:pi-1']);
  });

  it('changed tags with an access token: update in place, saying what changed', () => {
    const old = inventory(ACCESS);
    const records = [record(old, 'pi-1', 'access'), record(old, 'pi-2', 'access')];
    const inv = inventory(ACCESS, { runners: '  paused: true\n' });
    inv.runners.tags = ['arm64', 'gpu'];
    const actions = planRegistrations(inv, records);
    expect(kinds(actions)).toEqual(['update:pi-1', 'update:pi-2']);
    expect(actions[0]).toMatchObject({
      record: records[0],
      changed: ['tags +gpu -pi', 'paused: false → true'],
    });
    expect(describeAction(actions[0])).toEqual({
      step: 'update runner',
      detail: `pi-1: update runner #${records[0].id}: tags +gpu -pi, paused: false → true`,
    });
  });

  it('a new group or project cannot be reached by PUT: create a replacement', () => {
    const old = inventory(ACCESS);
    const r = record(old, 'pi-1', 'access');
    const inv = inventory(ACCESS, {
      nodes: ['pi-1'],
      gitlab: '  runnerType: project_type\n  projectId: 7\n',
    });
    const [a] = planRegistrations(inv, [r]);
    expect(a).toMatchObject({
      kind: 'create',
      replaces: r,
      systemId: r.systemId,
      settings: { runnerType: 'project_type', projectId: 7 },
    });
  });

  it('registration token: changed settings mean a new runner replacing the old', () => {
    const old = inventory(REGISTRATION, { nodes: ['pi-1'] });
    const r = record(old, 'pi-1', 'registration');
    const inv = inventory(REGISTRATION, { nodes: ['pi-1'], runners: '  locked: true\n' });
    const [a] = planRegistrations(inv, [r]);
    expect(a).toMatchObject({
      kind: 'create',
      mode: 'registration',
      replaces: r,
      reason: 'locked: false → true',
    });
    expect(a.kind === 'create' && a.settings.runnerType).toBeUndefined();
  });

  it('a node that left the inventory: delete its runner, or only its manager in shared mode', () => {
    const inv = inventory(ACCESS, { nodes: ['pi-1'] });
    const gone = record(inv, 'pi-9', 'access');
    const goneShared = record(inv, 'pi-8', 'shared');
    const actions = planRegistrations(inv, [record(inv, 'pi-1', 'access'), gone, goneShared]);
    expect(kinds(actions)).toEqual(['verify:pi-1', 'delete:pi-9', 'delete:pi-8']);
    expect(describeAction(actions[1])).toMatchObject({
      step: 'delete runner',
      detail: `pi-9: delete runner #${gone.id} (node left the inventory)`,
    });
    expect(describeAction(actions[2])).toMatchObject({ step: 'delete manager' });
    expect(describeAction(actions[2])!.detail).toContain(goneShared.systemId);
  });

  it('runner token: join new nodes, verify known ones, re-join under the same system_id when the token changes', () => {
    const inv = inventory(SHARED);
    const known = record(inv, 'pi-1', 'shared');
    expect(kinds(planRegistrations(inv, [known], { sharedToken: known.token }))).toEqual([
      'verify:pi-1',
      'join:pi-2',
    ]);
    const [a] = planRegistrations(inv, [known], { sharedToken: 'glrt-a-new-token' });
    expect(a).toMatchObject({
      kind: 'join',
      node: 'pi-1',
      systemId: known.systemId,
      replaces: known,
      reason: 'gitlab.runnerToken changed',
    });
  });

  it('switching token kind replaces every runner and keeps each node system_id', () => {
    const inv = inventory(ACCESS, { nodes: ['pi-1'] });
    const legacy = record(inv, 'pi-1', 'registration');
    expect(planRegistrations(inv, [legacy])[0]).toMatchObject({
      kind: 'create',
      mode: 'access',
      systemId: legacy.systemId,
      replaces: legacy,
      reason: 'registration changed from gitlab.registrationToken to gitlab.accessToken',
    });
    const shared = inventory(SHARED, { nodes: ['pi-1'] });
    expect(planRegistrations(shared, [legacy], { sharedToken: 'glrt-shared-token-1' })[0]).toMatchObject({
      kind: 'join',
      systemId: legacy.systemId,
      replaces: legacy,
      reason: 'registration changed from gitlab.registrationToken to gitlab.runnerToken',
    });
  });

  it('finishes what an interrupted run left: retired records and duplicates are deleted', () => {
    const inv = inventory(ACCESS, { nodes: ['pi-1'] });
    const older = record(inv, 'pi-1', 'access', { createdAt: '2025-01-01T00:00:00.000Z' });
    const newer = record(inv, 'pi-1', 'access', { createdAt: '2025-02-01T00:00:00.000Z' });
    const retired = record(inv, 'pi-1', 'access', { retiredAt: '2025-02-01T00:00:00.000Z' });
    const actions = planRegistrations(inv, [older, newer, retired]);
    expect(actions.map((a) => [a.kind, 'record' in a ? a.record : undefined])).toEqual([
      ['delete', older],
      ['verify', newer],
      ['delete', retired],
    ]);
  });

  it('no token in the inventory: new nodes are blocked, known ones only verified', () => {
    const inv = inventory('');
    const actions = planRegistrations(inv, [record(inv, 'pi-1', 'access')]);
    expect(kinds(actions)).toEqual(['verify:pi-1', 'blocked:pi-2']);
  });

  it('--only leaves every other record alone, even of nodes that left', () => {
    const inv = inventory(ACCESS);
    const records = [record(inv, 'pi-1', 'access'), record(inv, 'pi-9', 'access')];
    inv.runners.tags = ['x'];
    expect(kinds(planRegistrations(inv, records, { only: ['pi-2'] }))).toEqual(['create:pi-2']);
  });
});

describe('records', () => {
  it('diffSettings names fields, never values of other kinds', () => {
    const inv = inventory(ACCESS);
    const a = desiredSettings(inv, inv.nodes[0], 'access');
    expect(diffSettings(a, { ...a, description: 'x', maximumTimeout: 600 }).map((d) => d.text)).toEqual([
      'description: "pi runner pi-1" → "x"',
      'maximum_timeout: none → 600',
    ]);
  });

  it('parseRecords names the bad field without echoing values', () => {
    const inv = inventory(ACCESS);
    const good = record(inv, 'pi-1', 'access');
    expect(parseRecords([good], 'secret/runner-fleet')).toEqual([good]);
    let msg = '';
    try {
      parseRecords([{ ...good, systemId: 'glrt-leaky-token-value' }], 'secret/runner-fleet');
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toContain('secret/runner-fleet[0].systemId: expected r_ or s_ and 12 letters or digits');
    expect(msg).not.toContain('leaky');
  });
});
