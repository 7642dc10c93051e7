// The small TOML reader: what config.toml needs, and clear failures for the rest.
import { describe, expect, it } from 'vitest';
import { parseToml, TomlError } from './toml.js';

describe('parseToml', () => {
  it('reads tables, arrays of tables nested under the newest element, and values', () => {
    const doc = parseToml(`
# comment
concurrent = 2
check_interval = 3 # trailing comment
[[runners]]
  name = "a \\"quoted\\" \\u00e9"
  environment = [
    "A=1", # inside
    "B=2",
  ]
  [runners.docker]
    privileged = true
    volumes = ['/cache']
  [[runners.docker.services]]
    name = "docker:dind"
  [[runners.docker.services]]
    name = "redis"
[[runners]]
  name = "b"
  limits = { cpu = 1.5, mem = 1_024 }
  a.b.c = -7
`);
    expect(doc).toEqual({
      concurrent: 2,
      check_interval: 3,
      runners: [
        {
          name: 'a "quoted" é',
          environment: ['A=1', 'B=2'],
          docker: { privileged: true, volumes: ['/cache'], services: [{ name: 'docker:dind' }, { name: 'redis' }] },
        },
        { name: 'b', limits: { cpu: 1.5, mem: 1024 }, a: { b: { c: -7 } } },
      ],
    });
  });

  it('takes JSON.stringify output as TOML strings', () => {
    const nasty = 'tab\there "q" back\\slash \u0001 ünï';
    expect(parseToml(`x = ${JSON.stringify(nasty)}\ny = ${JSON.stringify(['a', 'b'])}`)).toEqual({ x: nasty, y: ['a', 'b'] });
  });

  it.each([
    ['a = 1\na = 2', /line 2: duplicate key a/],
    ['[t]\n[t]', /line 2: table t is defined twice/],
    ['a = "open', /unterminated string/],
    ['a = 1 2', /after the value/],
    ['a = 1979-05-27', /unsupported value/],
    ['a = "\\/"', /invalid escape/],
    ['a = [1, 2', /expected , or \]/],
  ])('rejects %j', (text, message) => {
    expect(() => parseToml(text)).toThrow(TomlError);
    expect(() => parseToml(text)).toThrow(message);
  });
});
