// ci-snippet: valid YAML per executor, the registry where each executor needs it, tags that reach these runners.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseInventory } from '../inventory/schema.js';
import { JOB_NAME, ciSnippet } from './snippet.js';

const inv = (runners = 'runners: {tags: [pi, arm]}', registries = '[gitlab.lan:5050, 10.0.0.9:5000]') =>
  parseInventory(
    `
gitlab: {url: https://gitlab.lan, registry: ${registries}}
nodes: [{name: pi1, host: 10.0.0.11}, {name: pi2, host: 10.0.0.12}]
${runners}
`,
    '/tmp/inventory.yaml',
  );

const job = (text: string) => (parse(text) as Record<string, any>)[JOB_NAME];

describe('ciSnippet', () => {
  it("dind: the first registry goes to the service as --insecure-registry, with GitLab's TLS variables", () => {
    const j = job(ciSnippet(inv(), 'dind'));
    expect(j.services).toEqual([
      { name: 'docker:27-dind', alias: 'docker', command: ['--insecure-registry=gitlab.lan:5050'] },
    ]);
    expect(j.variables).toMatchObject({
      DOCKER_HOST: 'tcp://docker:2376',
      DOCKER_TLS_CERTDIR: '/certs',
      DOCKER_CERT_PATH: '/certs/client',
      REGISTRY: 'gitlab.lan:5050',
    });
    expect(j.image).toBe('docker:27-cli');
    expect(j.tags).toEqual(['pi', 'arm']);
    expect(j.script).toContain('docker push "$IMAGE"');
  });

  it('dood: the host socket, no service; shell: no image at all', () => {
    const dood = job(ciSnippet(inv(), 'dood'));
    expect(dood.services).toBeUndefined();
    expect(dood.variables.DOCKER_HOST).toBe('unix:///var/run/docker.sock');
    const shell = job(ciSnippet(inv(), 'shell'));
    expect(shell.image).toBeUndefined();
    expect(shell.services).toBeUndefined();
    expect(shell.variables).toEqual({ REGISTRY: 'gitlab.lan:5050' });
    expect(shell.script.at(-2)).toBe('docker build -t "$IMAGE" .');
  });

  it('without runners.tags: untagged when allowed, else pinned to one node with a comment saying why', () => {
    expect(job(ciSnippet(inv('runners: {runUntagged: true}'), 'dood')).tags).toEqual([]);
    const text = ciSnippet(inv('runners: {}'), 'dood');
    expect(job(text).tags).toEqual(['pi1']);
    expect(text).toMatch(/# no runners\.tags in the inventory: pinned to node pi1/);
  });

  it('names the other registries it does not push to', () => {
    expect(ciSnippet(inv(), 'shell')).toMatch(/more registries \(10\.0\.0\.9:5000\)/);
  });

  /**
   * Runs the job's script as the runner would (one sh, the variables exported, the lines in order) with a `docker`
   * that only records its arguments, and what `docker login` read on stdin.
   */
  const run = (executor: 'shell' | 'dood', runnerVars: Record<string, string>, registries?: string) => {
    const j = job(ciSnippet(inv('runners: {tags: [pi]}', registries), executor));
    const vars = { ...runnerVars, ...(j.variables as Record<string, string>) };
    const script = [
      'docker() { echo "docker $*"; if [ "$1" = login ]; then echo "stdin: $(cat)"; fi; }',
      ...Object.entries(vars).map(([k, v]) => `export ${k}='${v}'`),
      ...(j.script as string[]),
    ].join('\n');
    return execFileSync('sh', ['-ec', script], { encoding: 'utf8', env: { PATH: process.env.PATH } })
      .split('\n')
      .filter((l) => l.startsWith('docker ') || l.startsWith('stdin: '));
  };
  // What GitLab gives every job (Ci::Build#persisted_variables, Project#predefined_variables), registry enabled.
  const gitlabVars = (path: string, registry = 'gitlab.lan:5050') => ({
    CI_PROJECT_PATH: path,
    CI_COMMIT_SHORT_SHA: 'abc12345',
    CI_REGISTRY: registry,
    CI_REGISTRY_IMAGE: `${registry}/${path.toLowerCase()}`,
    CI_REGISTRY_USER: 'gitlab-ci-token',
    CI_REGISTRY_PASSWORD: 'glcbt-64_job-token',
  });

  it("GitLab's own registry: logs in with the job's credentials and pushes to CI_REGISTRY_IMAGE (lowercase)", () => {
    expect(run('dood', gitlabVars('MyTeam/App'))).toEqual([
      'docker version',
      'docker login -u gitlab-ci-token --password-stdin gitlab.lan:5050',
      'stdin: glcbt-64_job-token',
      'docker build -t gitlab.lan:5050/myteam/app:abc12345 .',
      'docker push gitlab.lan:5050/myteam/app:abc12345',
    ]);
  });

  it('another registry: no login, the project path lowercased, since Docker refuses capitals', () => {
    const lines = run('shell', gitlabVars('MyTeam/Sub.Group/App'), '[10.0.0.9:5000, gitlab.lan:5050]');
    expect(lines).toEqual([
      'docker version',
      'docker build -t 10.0.0.9:5000/myteam/sub.group/app:abc12345 .',
      'docker push 10.0.0.9:5000/myteam/sub.group/app:abc12345',
    ]);
  });

  it("GitLab's registry without CI_REGISTRY_IMAGE (the project's registry is off): the lowercased path, still logged in", () => {
    const { CI_REGISTRY_IMAGE: _, ...vars } = gitlabVars('MyTeam/App');
    expect(run('dood', vars)).toContain('docker build -t gitlab.lan:5050/myteam/app:abc12345 .');
  });

  it('no CI_REGISTRY at all (GitLab without a registry): no login, the lowercased path', () => {
    const lines = run('dood', { CI_PROJECT_PATH: 'MyTeam/App', CI_COMMIT_SHORT_SHA: 'abc12345' });
    expect(lines).toEqual([
      'docker version',
      'docker build -t gitlab.lan:5050/myteam/app:abc12345 .',
      'docker push gitlab.lan:5050/myteam/app:abc12345',
    ]);
  });
});
