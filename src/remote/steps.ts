// The remote step protocol: each step's shell between `@@begin i` and `@@done i`, so a failure names its step and
// the steps before it still count as done.

/** One step's script wrapped in its markers. `tolerate`: a failing step echoes its failure and the script goes on. */
export function stepBlock(
  i: number,
  script: string,
  opts: { tolerate?: { detail: string; flag: string } } = {},
): string {
  if (opts.tolerate)
    return `echo "@@begin ${i}"\nif ${script}; then echo "@@done ${i}"; else echo "${opts.tolerate.detail}: failed" >&2; ${opts.tolerate.flag}=1; fi`;
  return `echo "@@begin ${i}"\n${script}\necho "@@done ${i}"`;
}

/** The steps in order, each in its markers; run under `set -e`, the script stops at the first that fails. */
export function stepsScript<S>(steps: S[], script: (s: S) => string): string {
  return steps.map((s, i) => stepBlock(i, script(s))).join('\n');
}

/** The indexes of the steps the output says were done. */
export function doneSteps(stdout: string): Set<number> {
  return new Set([...stdout.matchAll(/@@done (\d+)/g)].map((m) => Number(m[1])));
}

/** The step that began and did not finish; undefined when the script failed outside any step. */
export function failedStep<S>(steps: S[], stdout: string): S | undefined {
  const done = doneSteps(stdout);
  const i = [...stdout.matchAll(/@@begin (\d+)/g)].map((m) => Number(m[1])).find((b) => !done.has(b));
  return i !== undefined ? steps[i] : undefined;
}

/** The last lines of a failed command's output, for a one-line message. */
export function tail(text: string, lines = 3): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}

export interface StepsRun<S> {
  /** the steps that completed, in order */
  done: S[];
  /** the step that failed, when the command did not exit 0 */
  failed?: S;
}

/** Reads a run's result: which steps completed, and on a failure the first that did not (in order, under set -e). */
export function readStepsRun<S>(steps: S[], r: { code: number | null; stdout: string }): StepsRun<S> {
  const done = doneSteps(r.stdout);
  return {
    done: steps.filter((_, i) => done.has(i)),
    ...(r.code !== 0 ? { failed: steps.find((_, i) => !done.has(i)) } : {}),
  };
}
