// The executor and auth-mode registries: complete, and consistent with the inventory's lists.
import { describe, expect, it } from 'vitest';
import { EXECUTOR_NAMES, EXECUTOR_SPECS, identityDir, legacyIdentityDir } from './executors.js';
import { AUTH_MODES, REGISTRATION_MODE_KEYS } from './gitlab/auth-modes.js';
import { EXECUTORS } from './inventory/types.js';

describe('registries', () => {
  it('name every executor the inventory accepts, and each executor runs either a shell or containers', () => {
    expect([...EXECUTOR_NAMES].sort()).toEqual([...EXECUTORS].sort());
    for (const name of EXECUTOR_NAMES) {
      const spec = EXECUTOR_SPECS[name];
      expect(spec.docker === null, name).toBe(spec.runner.executor === 'shell');
      expect(spec.runner.shell !== null, name).toBe(spec.runner.executor === 'shell');
      expect(identityDir('ci', name)).toBe(`/var/lib/runner-fleet/namespaces/ci/${name}`);
      // No namespace's folder is an old shared one, whatever the namespace is called.
      expect(identityDir(name, name)).not.toBe(legacyIdentityDir(name));
    }
  });

  it('map each auth mode to its registration mode and inventory key', () => {
    for (const [kind, spec] of Object.entries(AUTH_MODES)) {
      expect(spec.inventoryKey, kind).toBe(spec.registration ? `gitlab.${kind}` : null);
      if (spec.registration) expect(REGISTRATION_MODE_KEYS[spec.registration]).toBe(spec.inventoryKey);
    }
    expect(
      Object.values(AUTH_MODES)
        .filter((m) => m.statusAsksGitlab)
        .map((m) => m.registration),
    ).toEqual(['access']);
  });
});
