// Ctrl-C or SIGTERM during apply or destroy: the fleet lock is given back at once (not left to expire), the stage
// the run stopped in is said, and the process exits 130/143. A second signal exits at once.
import type { Logger } from '../log.js';

const SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;
type Signal = keyof typeof SIGNALS;

export interface InterruptGuard {
  /** what the run is doing now, for the message an interrupt prints */
  stage(text: string): void;
  /** stops listening (the run finished and released the lock itself) */
  dispose(): void;
}

export interface InterruptOptions {
  log: Logger;
  /** what to say about work that was under way, after the stage (apply: how the next run finishes it) */
  after: string;
  /** injectable for tests: the process and its exit */
  proc?: Pick<NodeJS.Process, 'on' | 'off'>;
  exit?: (code: number) => void;
  /** the longest the release may take before the process exits anyway */
  releaseTimeoutMs?: number;
}

export function guardInterrupts(release: () => Promise<void>, opts: InterruptOptions): InterruptGuard {
  const proc = opts.proc ?? process;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let stage = 'starting';
  let interrupted = false;
  const handlers = new Map<Signal, () => void>();
  const onSignal = (sig: Signal) => {
    const code = 128 + SIGNALS[sig];
    if (interrupted) return exit(code);
    interrupted = true;
    opts.log.error(
      'run',
      `interrupted (${sig}) while ${stage}: giving the fleet lock back. What was done so far stays done; ${opts.after}`,
    );
    const timeout = new Promise<void>((r) => setTimeout(r, opts.releaseTimeoutMs ?? 5000).unref());
    void Promise.race([release().catch(() => undefined), timeout]).then(() => exit(code));
  };
  for (const sig of Object.keys(SIGNALS) as Signal[]) {
    const h = () => onSignal(sig);
    handlers.set(sig, h);
    proc.on(sig, h);
  }
  return {
    stage: (text) => {
      stage = text;
    },
    dispose: () => {
      for (const [sig, h] of handlers) proc.off(sig, h);
      handlers.clear();
    },
  };
}
