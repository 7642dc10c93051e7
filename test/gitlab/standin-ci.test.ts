// The stand-in's .gitlab-ci.yml reader: GitLab's shapes for image, services, variables and scripts; unsupported keys by name.
import { describe, expect, it } from 'vitest';
import { CiConfigError, parseCiJob } from './standin-ci.js';

describe('parseCiJob', () => {
  it('reads image and services in both forms, merges global and job variables, joins before_script and script', () => {
    const yaml = `
image: reg/default:1
before_script: [echo global-before]
variables:
  A: 1
  B: { value: two, description: "the B" }
j:
  services: [reg/svc:1, { name: reg/dind:1, alias: docker, entrypoint: [dockerd-entrypoint.sh], command: [--tls=false] }]
  variables: { B: job-b, C: true }
  script: echo one
  tags: [x, x, y]
k:
  image: reg/own:2
  before_script: []
  script: [[nested, list]]
`;
    expect(parseCiJob(yaml, 'j')).toEqual({
      name: 'j',
      stage: 'test',
      image: { name: 'reg/default:1' },
      services: [
        { name: 'reg/svc:1' },
        {
          name: 'reg/dind:1',
          alias: 'docker',
          entrypoint: ['dockerd-entrypoint.sh'],
          command: ['--tls=false'],
        },
      ],
      variables: { A: '1', B: 'job-b', C: 'true' },
      script: ['echo global-before', 'echo one'],
      afterScript: [],
      tags: ['x', 'y'],
      cache: [],
    });
    expect(parseCiJob(yaml, 'k')).toMatchObject({ image: { name: 'reg/own:2' }, script: ['nested', 'list'] });
  });

  it('reads a job cache as GitLab sends it (key, paths, policy, when)', () => {
    expect(
      parseCiJob('j:\n  script: [x]\n  cache: {key: k, paths: [a/], policy: pull}\n', 'j').cache,
    ).toEqual([{ key: 'k', paths: ['a/'], policy: 'pull', when: 'on_success', untracked: false }]);
    expect(() => parseCiJob('j:\n  script: [x]\n  cache: {key: {files: [a]}}\n', 'j')).toThrow(
      /key should be a string/,
    );
  });

  it('names what it cannot honour', () => {
    const bad =
      (yaml: string, job = 'j') =>
      () =>
        parseCiJob(yaml, job);
    expect(bad('j:\n  script: [x]\n  artifacts: {paths: [a]}\n')).toThrow(
      new CiConfigError('jobs:j: unsupported keys: artifacts'),
    );
    expect(bad('workflow: {}\nj:\n  script: [x]\n')).toThrow('unsupported keys: workflow');
    expect(bad('j:\n  image: {name: a, pull_policy: always}\n  script: [x]\n')).toThrow(
      'jobs:j:image: unsupported keys: pull_policy',
    );
    expect(bad('j:\n  services: [{name: a, ports: [1]}]\n  script: [x]\n')).toThrow(
      'unsupported keys: ports',
    );
    expect(bad('j:\n  stage: nope\n  script: [x]\n')).toThrow('chosen stage nope does not exist');
    expect(bad('j:\n  tags: [a]\n')).toThrow('should implement the script: keyword');
    expect(bad('j: [', 'j')).toThrow('invalid YAML');
    expect(bad('.hidden:\n  script: [x]\n', '.hidden')).toThrow('is not a job name');
  });
});
