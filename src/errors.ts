// Typed errors and the exit codes they map to: 0 converged, 1 something failed, 2 bad input.

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

/** Bad input (inventory, flags): nothing was touched. Each issue names the path it is about. */
export class InputError extends Error {
  readonly exitCode = EXIT_BAD_INPUT;
  constructor(
    readonly issues: string[],
    headline = 'invalid input',
  ) {
    super(`${headline}:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'InputError';
  }
}

/** Something failed during a run; details are in the report. */
export class RunFailedError extends Error {
  readonly exitCode = EXIT_FAILED;
  constructor(message: string) {
    super(message);
    this.name = 'RunFailedError';
  }
}

/** A remote command exited non-zero. `stderr` is already redacted. */
export class RemoteCommandError extends Error {
  constructor(
    readonly host: string,
    readonly step: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(
      `${step} failed on ${host} (exit ${code ?? 'signal'}): ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no output'}`,
    );
    this.name = 'RemoteCommandError';
  }
}

/** An error from GitLab or Kubernetes API, already reduced to status + reason, never raw headers. */
export class ApiError extends Error {
  constructor(
    readonly system: 'gitlab' | 'kubernetes',
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function exitCodeFor(err: unknown): number {
  if (
    err &&
    typeof err === 'object' &&
    'exitCode' in err &&
    typeof (err as { exitCode: unknown }).exitCode === 'number'
  ) {
    return (err as { exitCode: number }).exitCode;
  }
  return EXIT_FAILED;
}
