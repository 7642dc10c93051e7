// The GitLab auth-mode registry: what each `gitlab.*Token` of the inventory means for registration and status.
import type { GitlabAuth, SecretRef } from '../inventory/types.js';

/** access: one runner per node made with an access token; registration: one per node via a legacy
 *  registration token; shared: every node is a manager of the one runner behind gitlab.runnerToken. */
export type RegistrationMode = 'access' | 'registration' | 'shared';

export interface AuthModeSpec {
  /** how runners are registered with this token; null: no token, so no runners (hosts only) */
  registration: RegistrationMode | null;
  /** the inventory key that names the token, for messages */
  inventoryKey: string | null;
  /** status may ask GitLab for each runner's last contact (GET /runners/:id takes a personal/group/project token) */
  statusAsksGitlab: boolean;
}

export const AUTH_MODES: Record<GitlabAuth['kind'], AuthModeSpec> = {
  accessToken: { registration: 'access', inventoryKey: 'gitlab.accessToken', statusAsksGitlab: true },
  runnerToken: { registration: 'shared', inventoryKey: 'gitlab.runnerToken', statusAsksGitlab: false },
  registrationToken: {
    registration: 'registration',
    inventoryKey: 'gitlab.registrationToken',
    statusAsksGitlab: false,
  },
  none: { registration: null, inventoryKey: null, statusAsksGitlab: false },
};

/** Registration modes by the inventory key of their token, for messages. */
export const REGISTRATION_MODE_KEYS: Record<RegistrationMode, string> = {
  access: 'gitlab.accessToken',
  registration: 'gitlab.registrationToken',
  shared: 'gitlab.runnerToken',
};

/** The token reference, when the inventory gives one: a run then has a runner phase (GitLab, then cluster or hosts). */
export function authToken(auth: GitlabAuth): SecretRef | undefined {
  return auth.kind === 'none' ? undefined : auth.token;
}

/** Whether runs register runners at all (a token is given). */
export const withRunners = (auth: GitlabAuth): boolean => AUTH_MODES[auth.kind].registration !== null;
