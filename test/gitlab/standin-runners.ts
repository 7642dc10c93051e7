// What GitLab does to runner and runner manager records: heartbeats (contacted_at in the cache, the column only now
// and then), manager rows per system_id, the job queue value, token lookup and reset, removal.
import { randomBytes } from 'node:crypto';
import { notFound } from './standin-http.js';
import {
  now,
  runnerAuthToken,
  type StandinManager,
  type StandinModel,
  type StandinRunner,
  tokenExpiry,
} from './standin-model.js';

/** Ci::Runner::RUNNER_QUEUE_EXPIRY_TIME: the queue value (X-GitLab-Last-Update) lives 1 hour. */
const RUNNER_QUEUE_EXPIRY_MS = 3600 * 1000;

/** What a runner tells about itself in a request (get_runner_details_from_request), and where it called from. */
export interface RunnerDetails {
  version?: string;
  revision?: string;
  platform?: string;
  architecture?: string;
  executor?: string;
  config?: Record<string, unknown>;
  ipAddress: string;
}

/** persist_cached_data?: the column is written when empty or older than a random age in the configured range. */
function shouldPersist(m: StandinModel, persisted: string | null): boolean {
  if (!persisted) return true;
  const [min, max] = m.settings.persistEvery;
  const maxAge = min + Math.random() * (max - min);
  return Date.now() - Date.parse(persisted) >= maxAge;
}

/** Ci::Runner#heartbeat: contacted_at into the cache always, into the column when due. */
export function heartbeatRunner(m: StandinModel, runner: StandinRunner): void {
  const at = now();
  runner.contactedAt = at;
  if (shouldPersist(m, runner.contactedAtPersisted)) runner.contactedAtPersisted = at;
}

/** Ci::Runner#ensure_manager: find or create the manager row of (runner, system_xid). */
export function ensureManager(m: StandinModel, runner: StandinRunner, systemId: string): StandinManager {
  let manager = m.state.managers.find((mg) => mg.runnerId === runner.id && mg.systemId === systemId);
  if (!manager) {
    manager = {
      id: m.next.manager++,
      runnerId: runner.id,
      systemId,
      createdAt: now(),
      contactedAt: null,
      contactedAtPersisted: null,
      version: null,
      revision: null,
      platform: null,
      architecture: null,
      executor: null,
      ipAddress: null,
      config: null,
    };
    m.state.managers.push(manager);
  }
  return manager;
}

/** Ci::RunnerManager#heartbeat: the details always, contacted_at only when update_contacted_at. */
export function heartbeatManager(
  m: StandinModel,
  manager: StandinManager,
  details: RunnerDetails,
  updateContactedAt: boolean,
): void {
  manager.ipAddress = details.ipAddress;
  for (const key of ['version', 'revision', 'platform', 'architecture', 'executor'] as const)
    if (details[key] !== undefined) manager[key] = details[key]!;
  if (details.config !== undefined) manager.config = details.config;
  if (updateContactedAt) {
    const at = now();
    manager.contactedAt = at;
    if (shouldPersist(m, manager.contactedAtPersisted)) manager.contactedAtPersisted = at;
  }
}

/** TokenAuthenticatable#find_by_token: an unknown or expired token finds no runner. */
export function findRunner(m: StandinModel, token: string | undefined): StandinRunner | undefined {
  if (!token) return undefined;
  const runner = m.state.runners.find((r) => r.token !== null && r.token === token);
  if (!runner) return undefined;
  if (runner.tokenExpiresAt && Date.parse(runner.tokenExpiresAt) <= Date.now()) return undefined;
  return runner;
}

/** The runner of a path's :id, or 404 Runner Not Found. */
export function runnerById(m: StandinModel, idText: string): StandinRunner {
  const runner = m.state.runners.find((r) => r.id === Number(idText));
  if (!runner) throw notFound('Runner');
  return runner;
}

/** ensure_runner_queue_value: the current value, a new one when none is set or it expired. */
export function ensureQueueValue(runner: StandinRunner): string {
  if (!runner.queueValue || runner.queueValueExpiresAt <= Date.now()) {
    runner.queueValue = randomBytes(16).toString('hex');
    runner.queueValueExpiresAt = Date.now() + RUNNER_QUEUE_EXPIRY_MS;
  }
  return runner.queueValue;
}

/** tick_runner_queue: a new value, so a runner presenting the old last_update asks the queue again. */
export function tickQueue(runner: StandinRunner): void {
  runner.queueValue = randomBytes(16).toString('hex');
  runner.queueValueExpiresAt = Date.now() + RUNNER_QUEUE_EXPIRY_MS;
}

/** Ci::Runners::ResetAuthenticationTokenService → reset_token!: a new token, a new expiry, the old one dead. */
export function resetToken(m: StandinModel, r: StandinRunner): void {
  r.token = runnerAuthToken(r.runnerType, r.createdVia === 'registration');
  r.tokenExpiresAt = tokenExpiry(m);
  r.queueValue = null;
}

/** The runner goes, and its manager rows with it. */
export function removeRunner(m: StandinModel, runner: StandinRunner): void {
  const { runners, managers } = m.state;
  runners.splice(runners.indexOf(runner), 1);
  for (let i = managers.length - 1; i >= 0; i--)
    if (managers[i].runnerId === runner.id) managers.splice(i, 1);
}
