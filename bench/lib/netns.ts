// Runs the benchmark inside a network namespace of its own, so its fleet never collides with a test fleet on this machine.
import { existsSync } from 'node:fs';
import { $ } from 'zx';
import { resultOf, sh, slot } from '#testbed';

const INSIDE = 'RUNNER_FLEET_BENCH_NETNS';
// Per slot: node network namespaces (rf<slot>-pi<i>) are machine-wide names, so two benchmarks (or a benchmark and a
// test fleet) can run side by side only on different slots.
export const BENCH_NETNS = `rf-bench${slot() ? `-${slot()}` : ''}`;

/**
 * Test fleet nodes always listen on 127.0.0.(10+i):(2200+i), and the end-to-end tests bring a fleet up and down
 * at any time. In a fresh network namespace 127.0.0.0/8 is private to us: our nodes, the tool under test and
 * Ansible all talk inside it, and the tests' fleet outside is never touched (nor can it take our ports).
 * Returns the exit code of the re-executed benchmark, or undefined when already inside.
 */
export async function reexecInOwnNetns(
  log: (msg: string) => void,
  opts: { keep: boolean },
): Promise<number | undefined> {
  if (process.env[INSIDE]) return undefined;
  // Reused if a kept fleet (--keep) still lives there.
  if (!existsSync(`/run/netns/${BENCH_NETNS}`)) await sh`ip netns add ${BENCH_NETNS}`;
  const name = BENCH_NETNS;
  try {
    await sh`ip -n ${name} link set lo up`;
    log(`running in network namespace ${name}`);
    const argv = [...process.execArgv, ...process.argv.slice(1)];
    // nsenter, not `ip netns exec`: that one remounts /sys, which hides the cgroup mounts dockerd needs.
    const child = $({
      stdio: 'inherit',
      nothrow: true,
      env: { ...process.env, [INSIDE]: name },
    })`nsenter ${`--net=/run/netns/${name}`} -- ${process.execPath} ${argv}`;
    // Ctrl-C reaches the child through the terminal; wait for it to tear its fleet down.
    const ignore = () => {};
    process.on('SIGINT', ignore);
    process.on('SIGTERM', () => void child.kill('SIGTERM').catch(() => {}));
    return resultOf(await child).code;
  } finally {
    if (opts.keep)
      log(`fleet kept; reach it with: nsenter --net=/run/netns/${name} -- ssh …; remove with --down`);
    else await sh({ nothrow: true })`ip netns del ${name}`;
  }
}
