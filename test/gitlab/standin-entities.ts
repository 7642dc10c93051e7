// The JSON GitLab answers about runners and managers: lib/api/entities/ci/runner.rb, runner_details.rb,
// runner_registration_details.rb, reset_token_result.rb and runner_manager.rb.
import type { StandinModel, StandinManager, StandinRunner } from './standin-model.js';
import { managerIsBusy } from './standin-work.js';

/** Ci::Runner::ONLINE_CONTACT_TIMEOUT: online when contacted within the last 2 hours. */
const ONLINE_CONTACT_TIMEOUT_MS = 2 * 3600 * 1000;

const online = (contactedAt: string | null) =>
  contactedAt !== null && Date.now() - Date.parse(contactedAt) < ONLINE_CONTACT_TIMEOUT_MS;

// Ci::Runner#deprecated_rest_status (REST v4 `status`): never_contacted, paused, online or offline.
const status = (r: StandinRunner) =>
  !r.contactedAt ? 'never_contacted' : r.paused ? 'paused' : online(r.contactedAt) ? 'online' : 'offline';

export const runnerSummary = (r: StandinRunner) => ({
  id: r.id,
  description: r.description,
  ip_address: null,
  active: !r.paused,
  paused: r.paused,
  is_shared: r.runnerType === 'instance_type',
  runner_type: r.runnerType,
  name: null,
  online: online(r.contactedAt),
  status: status(r),
});

export const runnerDetails = (r: StandinRunner) => ({
  ...runnerSummary(r),
  architecture: null,
  platform: null,
  contacted_at: r.contactedAt,
  maintenance_note: r.maintenanceNote,
  projects: r.projectId ? [{ id: r.projectId }] : [],
  groups: r.groupId ? [{ id: r.groupId }] : [],
  revision: null,
  tag_list: r.tagList,
  version: null,
  run_untagged: r.runUntagged,
  locked: r.locked,
  access_level: r.accessLevel,
  maximum_timeout: r.maximumTimeout,
});

export const runnerRegistration = (r: StandinRunner) => ({
  id: r.id,
  token: r.token,
  token_expires_at: r.tokenExpiresAt,
});

/** Entities::Ci::ResetTokenResult: token, and token_expires_at only when the token expires (expirable?). */
export const resetTokenResult = (r: StandinRunner) => ({
  token: r.token,
  ...(r.tokenExpiresAt ? { token_expires_at: r.tokenExpiresAt } : {}),
});

// Entities::Ci::RunnerManager; status via Ci::HasRunnerStatus; job_execution_status active while it runs a job.
export const managerEntity = (m: StandinModel, mg: StandinManager) => ({
  id: mg.id,
  system_id: mg.systemId,
  version: mg.version,
  revision: mg.revision,
  platform: mg.platform,
  architecture: mg.architecture,
  created_at: mg.createdAt,
  contacted_at: mg.contactedAt,
  ip_address: mg.ipAddress,
  status: !mg.contactedAt ? 'never_contacted' : online(mg.contactedAt) ? 'online' : 'offline',
  job_execution_status: managerIsBusy(m, mg) ? 'active' : 'idle',
});
