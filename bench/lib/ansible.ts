// The Ansible peer: a pinned ansible-core in a private venv, an inventory made from the test fleet's, and playbook runs.
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';
import { cacheRoot, sh } from '#testbed';
import type { NodeSpec } from '../../src/inventory/types.js';
import { measure, type Measured } from './measure.js';

/** Pinned so runs stay comparable; the newest ansible-core that installs on Python 3.11. */
export const ANSIBLE_CORE_VERSION = '2.19.14';
export const VENV = join(cacheRoot(), 'bench-venv');
export const PLAYBOOK = join(dirname(fileURLToPath(import.meta.url)), '..', 'ansible', 'converge.yml');

export interface AnsibleVariant {
  name: string;
  forks: number;
  pipelining: boolean;
  /** linear (ansible-core's default) or free: each host runs through the play without waiting for the others */
  strategy?: 'linear' | 'free' | 'mitogen_free';
  /** false: ANSIBLE_GATHERING=explicit, no fact gathering (the playbook uses no facts) */
  gatherFacts?: boolean;
  /** what the report says about this variant */
  describe: string;
}

/** ssh's ControlPersist is on in both: it is ansible-core's default (`-C -o ControlMaster=auto -o ControlPersist=60s`). */
export function variants(concurrency: number, nodes = concurrency): AnsibleVariant[] {
  return [
    {
      name: 'ansible-default',
      forks: 5,
      pipelining: false,
      describe: 'forks 5, linear, pipelining off, ControlPersist 60s (ansible-core defaults)',
    },
    {
      name: 'ansible-tuned',
      forks: concurrency,
      pipelining: true,
      describe: `forks ${concurrency} (= runner-fleet --concurrency), linear, pipelining on, ControlPersist 60s`,
    },
    // Ansible at its fastest without plugins from outside ansible-core (mitogen: see RESULTS.md).
    // mitogen (PyPI, installed into the same venv): one Python per host over the ssh connection, modules sent as
    // messages instead of files; its strategy plugin wraps `free`.
    {
      name: 'ansible-mitogen',
      forks: nodes,
      pipelining: true,
      strategy: 'mitogen_free',
      gatherFacts: false,
      describe: 'ansible-fastest with mitogen (strategy mitogen_free)',
    },
    {
      name: 'ansible-fastest',
      forks: nodes,
      pipelining: true,
      strategy: 'free',
      gatherFacts: false,
      describe: 'forks = node count, strategy free, pipelining on, ControlPersist 60s, fact gathering off',
    },
  ];
}

/** mitogen's strategy plugins in the venv; installed on demand (a failed install leaves the variant failing, loudly). */
function mitogenStrategyDir(): string {
  const py = join(VENV, 'bin', 'python');
  const code =
    'import ansible_mitogen, os; print(os.path.join(os.path.dirname(ansible_mitogen.__file__), "plugins", "strategy"))';
  const find = () => $.sync({ nothrow: true, quiet: true })`${py} -c ${code}`;
  let dir = find();
  if (dir.exitCode !== 0) {
    void $.sync({
      nothrow: true,
      stdio: 'inherit',
    })`${join(VENV, 'bin', 'pip')} install --quiet --disable-pip-version-check ${`mitogen==${MITOGEN_VERSION}`}`;
    dir = find();
  }
  if (dir.exitCode !== 0) throw new Error(`mitogen ${MITOGEN_VERSION} is not importable in ${VENV}`);
  return dir.stdout.trim();
}

export const MITOGEN_VERSION = '0.3.54';

/** Creates or reuses the venv; installs the pinned ansible-core from PyPI. Never touches the system Python. */
export async function ensureAnsible(log: (msg: string) => void): Promise<string> {
  const bin = join(VENV, 'bin', 'ansible-playbook');
  const version = existsSync(bin)
    ? (
        await sh({
          nothrow: true,
        })`${join(VENV, 'bin', 'python')} -c ${'import ansible.release as r; print(r.__version__)'}`
      ).stdout.trim()
    : '';
  if (version === ANSIBLE_CORE_VERSION) return bin;
  log(`installing ansible-core ${ANSIBLE_CORE_VERSION} into ${VENV}`);
  mkdirSync(dirname(VENV), { recursive: true });
  if (!existsSync(join(VENV, 'bin', 'python'))) {
    // Prefer the python3 on PATH; Debian's needs python3-venv, which `apt-get install python3-venv` provides.
    const made = await sh({ stdio: 'inherit', nothrow: true })`python3 -m venv ${VENV}`;
    if (!made.ok)
      throw new Error(`python3 -m venv ${VENV} failed; on Debian: apt-get install -y python3-venv`);
  }
  const pip = await sh({
    stdio: 'inherit',
    nothrow: true,
  })`${join(VENV, 'bin', 'pip')} install --quiet --disable-pip-version-check ${`ansible-core==${ANSIBLE_CORE_VERSION}`}`;
  if (!pip.ok) throw new Error(`pip install ansible-core==${ANSIBLE_CORE_VERSION} failed`);
  return bin;
}

/** Writes an Ansible inventory for the same nodes, keys and known_hosts runner-fleet uses. */
export function writeAnsibleInventory(dir: string, nodes: NodeSpec[]): string {
  mkdirSync(dir, { recursive: true });
  const first = nodes[0];
  const hosts = nodes
    .map((n) => `        ${n.name}: { ansible_host: "${n.host}", ansible_port: ${n.port} }`)
    .join('\n');
  // Host keys are checked against the same known_hosts, strictly, as runner-fleet checks them.
  const text = `# Written by bench/converge.ts from the test fleet's inventory.
all:
  children:
    pis:
      hosts:
${hosts}
      vars:
        ansible_user: "${first.user}"
        ansible_ssh_private_key_file: "${first.identityFile}"
        ansible_ssh_common_args: "-o UserKnownHostsFile=${first.knownHosts} -o StrictHostKeyChecking=yes"
`;
  const path = join(dir, 'hosts.yaml');
  writeFileSync(path, text);
  return path;
}

export interface PlaybookRun {
  measured: Measured;
  /** from PLAY RECAP */
  ok: boolean;
  changed: number;
  recap: string;
}

/**
 * Runs the playbook once. Each run gets its own ControlPath folder and closes its masters afterwards, so every
 * run starts cold (no ssh master left over from the previous run), like runner-fleet, which keeps nothing.
 */
export async function runPlaybook(
  bin: string,
  inventory: string,
  registries: string[],
  variant: AnsibleVariant,
  workDir: string,
): Promise<PlaybookRun> {
  const cp = join(workDir, `cp-${Date.now()}`);
  mkdirSync(cp, { recursive: true });
  // An empty config of our own: no ansible.cfg from the current folder or the user's home may change the settings under test.
  const cfg = join(workDir, 'ansible.cfg');
  writeFileSync(cfg, '[defaults]\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ANSIBLE_HOME: join(workDir, 'ansible-home'),
    ANSIBLE_LOCAL_TEMP: join(workDir, 'ansible-tmp'),
    ANSIBLE_FORKS: String(variant.forks),
    ANSIBLE_PIPELINING: variant.pipelining ? 'True' : 'False',
    ANSIBLE_SSH_CONTROL_PATH_DIR: cp,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_CONFIG: cfg,
    ANSIBLE_STRATEGY: variant.strategy ?? 'linear',
    ...(variant.strategy === 'mitogen_free' ? { ANSIBLE_STRATEGY_PLUGINS: mitogenStrategyDir() } : {}),
    ...(variant.gatherFacts === false ? { ANSIBLE_GATHERING: 'explicit' } : {}),
  };
  const measured = await measure(
    [bin, '-i', inventory, PLAYBOOK, '-e', JSON.stringify({ insecure_registries: registries })],
    { env, timeoutMs: 20 * 60_000 },
  );
  await closeMasters(cp);
  const recapStart = measured.stdout.lastIndexOf('PLAY RECAP');
  const recap = recapStart >= 0 ? measured.stdout.slice(recapStart) : '';
  let changed = 0;
  let ok = measured.code === 0 && recap !== '';
  for (const m of recap.matchAll(/changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/g)) {
    changed += Number(m[1]);
    if (Number(m[2]) > 0 || Number(m[3]) > 0) ok = false;
  }
  return { measured, ok, changed, recap };
}

/** `ssh -O exit` on every control socket of a run: ends exactly the masters this run started. */
async function closeMasters(cpDir: string): Promise<void> {
  for (const sock of readdirSync(cpDir)) {
    await sh({
      nothrow: true,
      timeout: '10s',
    })`ssh -o ${`ControlPath=${join(cpDir, sock)}`} -O exit placeholder`;
  }
  rmSync(cpDir, { recursive: true, force: true });
}
