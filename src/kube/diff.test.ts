// Unit tests for the plan diff: ignored bookkeeping, path naming, and Secret values never shown.
import { describe, expect, it } from 'vitest';
import { comparable, describeChange, diffPaths } from './diff.js';
import type { KubeObject } from './objects.js';

const ds = (image: string, extra: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: 'x', namespace: 'ns', labels: { a: '1' }, ...extra },
  spec: { template: { spec: { containers: [{ name: 'c', image }] } } },
  status: { numberReady: 1 },
});

describe('diffPaths', () => {
  it('ignores server bookkeeping and status', () => {
    const live = ds('img:1', {
      resourceVersion: '5',
      generation: 2,
      managedFields: [{ manager: 'x' }],
      creationTimestamp: 'then',
      uid: 'u',
    });
    const after = {
      ...ds('img:1', {
        resourceVersion: '6',
        generation: 3,
        annotations: { 'deprecated.daemonset.template.generation': '3' },
      }),
      status: { numberReady: 0 },
    };
    expect(diffPaths(live, after)).toEqual([]);
    expect(comparable(after).metadata).toEqual({ name: 'x', namespace: 'ns', labels: { a: '1' } });
  });

  it('names lists as one unit and odd keys in brackets', () => {
    expect(diffPaths(ds('img:1'), ds('img:2'))).toEqual(['spec.template.spec.containers']);
    const a = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      data: { 'pi1.config.toml': 'YQ==' },
    };
    const b = { ...a, data: { 'pi1.config.toml': 'Yg==', 'pi2.config.toml': 'Yw==' } };
    expect(diffPaths(a, b)).toEqual(['data["pi1.config.toml"]', 'data["pi2.config.toml"]']);
  });
});

describe('describeChange', () => {
  it('tells Secret keys added, removed and changed, never values', () => {
    const secret = (data: Record<string, string>): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      data,
    });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const before = secret({
      'pi1.config.toml': b64('token = "glrt-aaaaaaaaaa"'),
      'pi3.config.toml': b64('x'),
    });
    const after = secret({
      'pi1.config.toml': b64('token = "glrt-bbbbbbbbbb"'),
      'pi2.config.toml': b64('y'),
    });
    const text = describeChange(before, after, diffPaths(before, after));
    expect(text).toBe('data: added pi2.config.toml; removed pi3.config.toml; changed pi1.config.toml');
    expect(text).not.toMatch(/glrt|Z2xydC|eA==|eQ==/);
  });

  it('lists paths for other kinds, a few at most', () => {
    const paths = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    expect(describeChange(undefined, ds('i'), paths)).toBe('a, b, c, d, e, f (+2 more)');
  });
});

describe('describeChange: a gitlab-runner upgrade', () => {
  const ds = (image: string): KubeObject =>
    ({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'gitlab-runner-dood' },
      spec: { template: { spec: { containers: [{ name: 'gitlab-runner', image }] } } },
    }) as KubeObject;
  it('says which version goes to which and how it rolls out', () => {
    const before = ds('gitlab/gitlab-runner:alpine-v17.9.3');
    const after = ds('gitlab/gitlab-runner:alpine-v17.11.0');
    expect(describeChange(before, after, diffPaths(before, after))).toBe(
      'gitlab-runner gitlab/gitlab-runner:alpine-v17.9.3 → gitlab/gitlab-runner:alpine-v17.11.0, one node at a time (each old pod finishes its running jobs first); spec.template.spec.containers',
    );
    expect(describeChange(before, before, [])).toBe('');
  });
});
