import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT_MARKER } from './paths.js';
import { classifyRoot, removeStateRoot } from './state-root.js';

const BASE = '/var/tmp/runner-fleet-testbed-8';

describe('classifyRoot', () => {
  it('absent, empty, or only our lock: unused', () => {
    expect(classifyRoot(BASE, undefined)).toBe('unused');
    expect(classifyRoot('/srv/x', [])).toBe('unused');
    expect(classifyRoot('/srv/x', ['owner.json'])).toBe('unused');
  });
  it('with the marker: marked, wherever it is', () => {
    expect(classifyRoot('/srv/x', [ROOT_MARKER, 'anything'])).toBe('marked');
  });
  it('a base root holding only what up makes, after the marker went: half-removed', () => {
    expect(classifyRoot(BASE, ['pi1', 'pi12', 'services', 'testbed.json', 'fleet.variant-123-4.yaml'])).toBe(
      'half-removed',
    );
    expect(classifyRoot('/var/tmp/runner-fleet-testbed', ['host', 'image', 'id_ed25519.pub'])).toBe(
      'half-removed',
    );
  });
  it('anything else is foreign: an unknown entry, or a root outside the base paths', () => {
    expect(classifyRoot(BASE, ['pi1', 'photos'])).toBe('foreign');
    expect(classifyRoot('/var/tmp/runner-fleet-testbed-10', ['pi1'])).toBe('foreign');
    expect(classifyRoot('/srv/mine', ['pi1', 'services'])).toBe('foreign');
  });
});

describe('removeStateRoot on a real directory', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('removes a marked root, leaves a foreign one', () => {
    dir = mkdtempSync(join(tmpdir(), 'rf-state-root-'));
    mkdirSync(join(dir, 'pi1', 'etc'), { recursive: true });
    expect(removeStateRoot(dir)).toBe('foreign');
    expect(existsSync(dir)).toBe(true);
    writeFileSync(join(dir, ROOT_MARKER), '');
    expect(removeStateRoot(dir)).toBe('marked');
    expect(existsSync(dir)).toBe(false);
  });

  it('removes a half-removed root at a base path (the slot this test may use: 9, only when it is not in use)', () => {
    const root = '/var/tmp/runner-fleet-testbed-9';
    if (existsSync(root)) return; // a fleet of slot 9 is there: not ours to touch from a unit test
    dir = root;
    mkdirSync(join(root, 'pi1', 'var-lib-docker'), { recursive: true });
    mkdirSync(join(root, 'services', 'cluster'), { recursive: true });
    writeFileSync(join(root, 'testbed.json'), '{}');
    const logged: string[] = [];
    expect(removeStateRoot(root, (m) => logged.push(m))).toBe('half-removed');
    expect(existsSync(root)).toBe(false);
    expect(logged.join('\n')).toContain('interrupted removal');
  });
});
