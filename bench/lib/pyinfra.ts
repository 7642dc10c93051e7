// The pyinfra peer: a pinned pyinfra in a private venv, an inventory made from the test fleet's, deploy runs.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';
import { cacheRoot } from '#testbed';
import type { NodeSpec } from '../../src/inventory/types.js';
import { measure, type Measured } from './measure.js';

/** Pinned so runs stay comparable (the version the recorded results measured). */
export const PYINFRA_VERSION = '3.10.0';
export const PYINFRA_VENV = join(cacheRoot(), 'pyinfra-venv');
export const DEPLOY = join(dirname(fileURLToPath(import.meta.url)), '..', 'pyinfra', 'deploy.py');

/** Creates or reuses the venv; installs the pinned pyinfra from PyPI. Never touches the system Python. */
export function ensurePyinfra(log: (msg: string) => void): string {
  const bin = join(PYINFRA_VENV, 'bin', 'pyinfra');
  const version = existsSync(bin)
    ? $.sync({ nothrow: true, quiet: true })`${bin} --version`.stdout.trim()
    : '';
  if (version === `pyinfra: v${PYINFRA_VERSION}`) return bin;
  log(`installing pyinfra ${PYINFRA_VERSION} into ${PYINFRA_VENV}`);
  mkdirSync(dirname(PYINFRA_VENV), { recursive: true });
  if (!existsSync(join(PYINFRA_VENV, 'bin', 'python'))) {
    const made = $.sync({ nothrow: true, stdio: 'inherit' })`python3 -m venv ${PYINFRA_VENV}`;
    if (made.exitCode !== 0)
      throw new Error(`python3 -m venv ${PYINFRA_VENV} failed; on Debian: apt-get install -y python3-venv`);
  }
  const pip = $.sync({
    nothrow: true,
    stdio: 'inherit',
  })`${join(PYINFRA_VENV, 'bin', 'pip')} install --quiet --disable-pip-version-check ${`pyinfra==${PYINFRA_VERSION}`}`;
  if (pip.exitCode !== 0) throw new Error(`pip install pyinfra==${PYINFRA_VERSION} failed`);
  return bin;
}

/** A pyinfra inventory (Python) for the same nodes, key and known_hosts runner-fleet uses, host keys checked strictly. */
export function writePyinfraInventory(dir: string, nodes: NodeSpec[], registries: string[]): string {
  mkdirSync(dir, { recursive: true });
  const hosts = nodes.map((n) => {
    const data = {
      ssh_hostname: n.host,
      ssh_port: n.port,
      ssh_user: n.user,
      ssh_key: n.identityFile,
      ssh_known_hosts_file: n.knownHosts,
      ssh_strict_host_key_checking: 'yes',
      insecure_registries: registries,
    };
    return `    (${JSON.stringify(n.name)}, ${JSON.stringify(data)}),`;
  });
  const path = join(dir, 'inventory.py');
  writeFileSync(
    path,
    `# Written by bench/converge.ts from the test fleet's inventory.\npis = [\n${hosts.join('\n')}\n]\n`,
  );
  return path;
}

export interface DeployRun {
  measured: Measured;
  ok: boolean;
  /** operations that changed something, summed over hosts ("Success" in pyinfra's results table) */
  changed: number;
}

/** `pyinfra -y --sudo --parallel N inventory deploy.py`: every host at once, like runner-fleet's one wave. */
export async function runDeploy(
  bin: string,
  inventory: string,
  parallel: number,
  workDir: string,
): Promise<DeployRun> {
  const measured = await measure([bin, '-y', '--sudo', '--parallel', String(parallel), inventory, DEPLOY], {
    cwd: workDir,
    env: { ...process.env, PYINFRA_PROGRESS: 'off' },
    timeoutMs: 20 * 60_000,
  });
  const out = `${measured.stdout}\n${measured.stderr}`;
  // "    Grand total    15    11    -    4" (Hosts, Success, Error, No Change); absent when there was nothing to do.
  const total = /Grand total\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)/.exec(out);
  const num = (x: string | undefined) => (x === undefined || x === '-' ? 0 : Number(x));
  const errors = num(total?.[3]);
  return { measured, ok: measured.code === 0 && errors === 0 && total !== null, changed: num(total?.[2]) };
}
