import { describe, expect, it } from 'vitest';
import {
  DaemonJsonError,
  mergeInsecureRegistries,
  parseDaemonJson,
  removeInsecureRegistries,
  serialiseDaemonJson,
} from './daemon-json.js';

describe('daemon.json', () => {
  it('keeps every other key and existing entry, adding only what is missing', () => {
    const current = parseDaemonJson('{"log-level":"error","insecure-registries":["old:1"],"mtu":1400}', 'f');
    const { merged, added } = mergeInsecureRegistries(current, ['old:1', 'new:5000']);
    expect(added).toEqual(['new:5000']);
    expect(merged).toEqual({ 'log-level': 'error', 'insecure-registries': ['old:1', 'new:5000'], mtu: 1400 });
    expect(Object.keys(merged)).toEqual(['log-level', 'insecure-registries', 'mtu']);
  });

  it('returns the same object when nothing is missing, so nothing is written', () => {
    const current = parseDaemonJson('{"insecure-registries":["a:1"]}', 'f');
    expect(mergeInsecureRegistries(current, ['a:1']).merged).toBe(current);
  });

  it('treats a missing or blank file as {}', () => {
    expect(parseDaemonJson(undefined, 'f')).toEqual({});
    expect(parseDaemonJson('\n', 'f')).toEqual({});
  });

  it('refuses invalid JSON, non-objects and a malformed insecure-registries', () => {
    expect(() => parseDaemonJson('{"a":', '/etc/docker/daemon.json')).toThrow(DaemonJsonError);
    expect(() => parseDaemonJson('{"a":', '/etc/docker/daemon.json')).toThrow(
      /\/etc\/docker\/daemon.json is not valid JSON/,
    );
    expect(() => parseDaemonJson('[]', 'f')).toThrow(/JSON object/);
    expect(() => parseDaemonJson('{"insecure-registries":"a:1"}', 'f')).toThrow(/list of strings/);
  });

  it('removes only the named registries', () => {
    const { merged, removed } = removeInsecureRegistries({ 'insecure-registries': ['a:1', 'b:2'], x: 1 }, [
      'b:2',
    ]);
    expect(removed).toEqual(['b:2']);
    expect(merged).toEqual({ 'insecure-registries': ['a:1'], x: 1 });
    // An empty list, not a missing key: dockerd's reload ignores a key that is not in the file.
    expect(removeInsecureRegistries({ 'insecure-registries': ['b:2'] }, ['b:2']).merged).toEqual({
      'insecure-registries': [],
    });
  });

  it('serialises with a trailing newline', () => {
    expect(serialiseDaemonJson({ a: 1 })).toBe('{\n  "a": 1\n}\n');
  });
});
