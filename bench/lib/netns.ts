// Runs the benchmark inside a network namespace of its own, so its fleet never collides with a test fleet on this machine.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const INSIDE = 'RUNNER_FLEET_BENCH_NETNS';
export const BENCH_NETNS = 'rf-bench';

/**
 * Test fleet nodes always listen on 127.0.0.(10+i):(2200+i), and the end-to-end tests bring a fleet up and down
 * at any time. In a fresh network namespace 127.0.0.0/8 is private to us: our nodes, the tool under test and
 * Ansible all talk inside it, and the tests' fleet outside is never touched (nor can it take our ports).
 * Returns the exit code of the re-executed benchmark, or undefined when already inside.
 */
export async function reexecInOwnNetns(log: (msg: string) => void, opts: { keep: boolean }): Promise<number | undefined> {
  if (process.env[INSIDE]) return undefined;
  const ip = (...args: string[]) => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  };
  // Reused if a kept fleet (--keep) still lives there.
  if (!existsSync(`/run/netns/${BENCH_NETNS}`)) ip('netns', 'add', BENCH_NETNS);
  const name = BENCH_NETNS;
  try {
    ip('-n', name, 'link', 'set', 'lo', 'up');
    log(`running in network namespace ${name}`);
    const argv = [...process.execArgv, ...process.argv.slice(1)];
    // nsenter, not `ip netns exec`: that one remounts /sys, which hides the cgroup mounts dockerd needs.
    const child = spawn('nsenter', [`--net=/run/netns/${name}`, '--', process.execPath, ...argv], { stdio: 'inherit', env: { ...process.env, [INSIDE]: name } });
    // Ctrl-C reaches the child through the terminal; wait for it to tear its fleet down.
    const ignore = () => {};
    process.on('SIGINT', ignore);
    process.on('SIGTERM', () => child.kill('SIGTERM'));
    return await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  } finally {
    if (opts.keep) log(`fleet kept; reach it with: nsenter --net=/run/netns/${name} -- ssh …; remove with --down`);
    else spawnSync('ip', ['netns', 'del', name]);
  }
}
