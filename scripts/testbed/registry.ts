// The test registry: Debian's docker-registry on 198.18.0.2:5000 in network namespace rf-registry, reached over a veth pair.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { slot } from './paths.js';
import { run, terminate, waitFor } from './procs.js';
import type { TestbedService } from './services.js';

const SUFFIX = slot() ? `-${slot()}` : '';
export const REGISTRY_NETNS = `rf-registry${SUFFIX}`;
/** This machine's end of the veth pair; 198.18.0.0/15 is the benchmarking range, never routed anywhere. */
export const REGISTRY_HOST_ADDR = `198.18.${slot()}.1`;
export const REGISTRY_ADDR = `198.18.${slot()}.2`;
export const REGISTRY_PORT = 5000;
/** Not loopback on purpose: Docker trusts loopback registries without configuration. */
export const REGISTRY = `${REGISTRY_ADDR}:${REGISTRY_PORT}`;
const HOST_LINK = `rf-reg0${SUFFIX}`;
const NS_LINK = `rf-reg1${SUFFIX}`;

async function registryAnswers(): Promise<boolean> {
  try {
    const res = await fetch(`http://${REGISTRY}/v2/`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

async function removeNetwork(): Promise<void> {
  const pids = await run('ip', ['netns', 'pids', REGISTRY_NETNS], { check: false });
  if (pids.code === 0) {
    await terminate(pids.stdout.split('\n').filter(Boolean).map(Number), 3000);
    await run('ip', ['netns', 'del', REGISTRY_NETNS], { check: false });
  }
  // Gone with the namespace's end normally; a half-made pair may be left from a failed start.
  await run('ip', ['link', 'del', HOST_LINK], { check: false });
}

export const registryService: TestbedService = {
  name: 'registry',

  async start(ctx) {
    await removeNetwork();
    const ip = (...args: string[]) => run('ip', args);
    await ip('netns', 'add', REGISTRY_NETNS);
    await ip('link', 'add', HOST_LINK, 'type', 'veth', 'peer', 'name', NS_LINK, 'netns', REGISTRY_NETNS);
    await ip('addr', 'add', `${REGISTRY_HOST_ADDR}/24`, 'dev', HOST_LINK);
    await ip('link', 'set', HOST_LINK, 'up');
    await ip('-n', REGISTRY_NETNS, 'addr', 'add', `${REGISTRY_ADDR}/24`, 'dev', NS_LINK);
    await ip('-n', REGISTRY_NETNS, 'link', 'set', NS_LINK, 'up');
    await ip('-n', REGISTRY_NETNS, 'link', 'set', 'lo', 'up');

    const data = join(ctx.dir, 'data');
    mkdirSync(data, { recursive: true });
    const config = join(ctx.dir, 'config.yml');
    writeFileSync(
      config,
      [
        '# The runner-fleet test registry: plain HTTP, no auth. Written by scripts/testbed.',
        'version: 0.1',
        'log: {level: info}',
        `storage: {filesystem: {rootdirectory: ${JSON.stringify(data)}}, delete: {enabled: true}}`,
        `http: {addr: "${REGISTRY}"}`,
        '',
      ].join('\n'),
    );
    ctx.spawnDaemon('registry', 'ip', ['netns', 'exec', REGISTRY_NETNS, 'docker-registry', 'serve', config]);
    if (!(await waitFor(registryAnswers, 15_000, 100))) {
      throw new Error(`registry did not answer on http://${REGISTRY}/v2/ (see ${join(ctx.dir, 'registry.log')})`);
    }
    ctx.log(`registry on ${REGISTRY}`);
    return { gitlab: { registry: [REGISTRY] } };
  },

  async stop() {
    await removeNetwork();
  },
};
