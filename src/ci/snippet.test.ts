// ci-snippet: valid YAML per executor, the registry where each executor needs it, tags that reach these runners.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseInventory } from '../inventory/schema.js';
import { JOB_NAME, ciSnippet } from './snippet.js';

const inv = (runners = 'runners: {tags: [pi, arm]}') =>
  parseInventory(
    `
gitlab: {url: https://gitlab.lan, registry: [gitlab.lan:5050, 10.0.0.9:5000]}
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
    expect(shell.variables).toEqual({
      REGISTRY: 'gitlab.lan:5050',
      IMAGE: '$REGISTRY/$CI_PROJECT_PATH:$CI_COMMIT_SHORT_SHA',
    });
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
});
