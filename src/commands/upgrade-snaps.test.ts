import { describe, expect, it } from 'vitest';
import { parseRefresh, refreshScript } from '../docker/snap-holds.js';
import { snapDoodWarning } from './apply.js';
import { parseInventory } from '../inventory/schema.js';
import { upgradeSnapsPreflight } from './upgrade-snaps.js';
import { InputError } from '../errors.js';

const base = `gitlab: { url: http://gitlab.lan, registry: gitlab.lan:5050, accessToken: env:T }
nodes: [{ name: pi1, host: 10.0.0.1 }]
`;

describe('upgrade-snaps', () => {
  it('needs the runner metrics when there are runners, to see their jobs', () => {
    expect(() => upgradeSnapsPreflight(parseInventory(base, '/x/f.yaml'))).toThrow(InputError);
    upgradeSnapsPreflight(parseInventory(`${base}runners: { metrics: {} }\n`, '/x/f.yaml'));
    upgradeSnapsPreflight(parseInventory(base.replace(', accessToken: env:T', ''), '/x/f.yaml'));
  });

  it('refreshes only when the runner runs no job, by name, and reads what snapd refreshed', () => {
    expect(refreshScript('echo "@@rf-metrics"; echo "jobs 0"')).toContain('if [ "$rf_jobs" != "jobs 0" ]');
    expect(refreshScript(undefined)).not.toContain('rf_jobs');
    expect(parseRefresh('@@busy jobs 2\n')).toEqual({ kind: 'busy', jobs: '2' });
    expect(parseRefresh('@@none\n')).toEqual({ kind: 'none' });
    expect(
      parseRefresh('@@refresh\ndocker 20.10.24 from Canonical** refreshed\n@@rc 0\n@@docker up\n'),
    ).toMatchObject({ kind: 'refreshed', refreshed: ['docker'], dockerUp: true });
    expect(parseRefresh('@@refresh\nAll snaps up to date.\n@@rc 0\n@@docker up\n')).toMatchObject({
      kind: 'refreshed',
      refreshed: [],
    });
    expect(parseRefresh('@@refresh\nerror: cannot refresh\n@@rc 1\n@@docker up\n')).toMatchObject({
      kind: 'failed',
    });
  });
});

describe('snapDoodWarning', () => {
  it('warns for DooD runners on snap Docker only', () => {
    const inv = parseInventory(base, '/x/f.yaml');
    expect(snapDoodWarning(inv, 'snap')).toMatch(/\/home, \/mnt or \/media/);
    expect(snapDoodWarning(inv, 'apt')).toBeUndefined();
    expect(
      snapDoodWarning({ ...inv, runners: { ...inv.runners, executor: 'dind' } }, 'snap'),
    ).toBeUndefined();
  });
});
