import { describe, expect, it } from 'vitest';
import { dockerVersion, logConfigProblem, mirrorProblems } from './docker-limits.js';

describe('mirrorProblems (moby registry/config.go ValidateMirror by version)', () => {
  const NEXUS = 'https://nexus.lan/repository/dockerhub';
  it('a mirror with a path is refused before 24.0.8 (20.10.24, 24.0.5, 24.0.7), allowed from 24.0.8 and 25.0.0', () => {
    for (const v of ['20.10.24+dfsg1', '23.0.6', '24.0.5', '24.0.7']) {
      expect(mirrorProblems(['https://ok.lan:5000', NEXUS], v)).toEqual([
        `docker.registryMirrors[1]: Docker ${v} on this node refuses a registry mirror with a path (${NEXUS}); Docker allows one from 24.0.8: upgrade Docker, or give the mirror its own host or port without a path (e.g. a Nexus Docker connector port)`,
      ]);
    }
    for (const v of ['24.0.8', '24.0.9', '25.0.0', '26.1.5+dfsg1', '27.5.1'])
      expect(mirrorProblems([NEXUS], v)).toEqual([]);
  });

  it('a root URL (with or without the slash) is fine everywhere; an unknown version refuses only a path', () => {
    expect(mirrorProblems(['https://m.lan:5000', 'https://m.lan:5001/'], '20.10.24')).toEqual([]);
    expect(mirrorProblems(['https://m.lan:5000'], undefined)).toEqual([]);
    expect(mirrorProblems([NEXUS], undefined)).toEqual([
      expect.stringMatching(
        /^docker\.registryMirrors\[0\]: .* this node's Docker version is unknown \(dockerd is not answering\): start Docker and run again/,
      ),
    ]);
  });

  it('reads versions as docker info prints them', () => {
    expect(dockerVersion('20.10.24+dfsg1')).toEqual([20, 10, 24]);
    expect(dockerVersion('dev')).toBeUndefined();
  });
});

describe('logConfigProblem (moby daemon/logger: checked at each container start, not at dockerd start)', () => {
  it('local with max-file 1 fails unless compress is off; its default max-file (5) is fine', () => {
    expect(logConfigProblem({ 'log-driver': 'local', 'log-opts': { 'max-file': '1' } })).toMatch(
      /compression cannot be enabled when max file count is 1/,
    );
    expect(
      logConfigProblem({ 'log-driver': 'local', 'log-opts': { 'max-file': '1', compress: 'false' } }),
    ).toBeUndefined();
    expect(logConfigProblem({ 'log-driver': 'local' })).toBeUndefined();
    expect(logConfigProblem({ 'log-driver': 'local', 'log-opts': { 'max-file': '2' } })).toBeUndefined();
  });

  it('json-file (the default driver) fails only with compress true and max-file 1 or no max-size', () => {
    expect(logConfigProblem({ 'log-opts': { 'max-file': '1', 'max-size': '10m' } })).toBeUndefined();
    expect(logConfigProblem({ 'log-opts': { compress: 'true', 'max-file': '3' } })).toMatch(
      /compress cannot be true/,
    );
    expect(
      logConfigProblem({
        'log-driver': 'json-file',
        'log-opts': { compress: 'true', 'max-file': '3', 'max-size': '1m' },
      }),
    ).toBeUndefined();
  });
});
