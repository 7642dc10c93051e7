// What GitLab does to projects and jobs: a project's repository and its pushes, a job queued in a new pipeline (and
// the runners whose queue that ticks), the job a runner takes, how a job ends, and the job as tests see it.
import type { CiJobSpec } from './standin-ci.js';
import { commitFiles, writePipelineRef } from './standin-git.js';
import {
  type JobStatus,
  type JobVariableInput,
  runnerMatchesJob,
  type StandinJob,
  type StandinProject,
} from './standin-jobs.js';
import {
  now,
  randomToken,
  type StandinJobView,
  type StandinManager,
  type StandinModel,
  type StandinRunner,
} from './standin-model.js';
import { tickQueue } from './standin-runners.js';

/** Gitlab::Ci::Trace: UPDATE_FREQUENCY_DEFAULT 60 s, UPDATE_FREQUENCY_WHEN_BEING_WATCHED 3 s, WATCH_FLAG_TTL 10 s. */
export const TRACE_UPDATE_DEFAULT_S = 60;
export const TRACE_UPDATE_WATCHED_S = 3;
export const TRACE_WATCH_TTL_MS = 10_000;
/** HasStatus::COMPLETED_STATUSES (the ones the stand-in has): a job in one of them is over. */
export const FINISHED: JobStatus[] = ['success', 'failed', 'canceled'];

export const projectById = (m: StandinModel, id: number) => m.state.projects.find((pr) => pr.id === id)!;

export const projectByPath = (m: StandinModel, path: string) =>
  m.state.projects.find((pr) => pr.path === path);

export const jobById = (m: StandinModel, id: number) => m.jobs.find((j) => j.id === id);

/**
 * Commits `files` to the project's main branch: the first call for a path makes the project (in a namespace per
 * group), a later one is a push on top (same project, new head).
 */
export async function saveProject(
  m: StandinModel,
  path: string,
  files: Record<string, string>,
): Promise<{ project: StandinProject; sha: string }> {
  const { sha, beforeSha } = await commitFiles(m.settings.stateDir, path, files);
  let project = projectByPath(m, path);
  if (project) Object.assign(project, { sha, beforeSha });
  else {
    const group = path.slice(0, path.lastIndexOf('/'));
    if (!m.namespaces.has(group)) m.namespaces.set(group, 100 + m.namespaces.size);
    project = {
      id: m.next.project++,
      path,
      namespaceId: m.namespaces.get(group)!,
      sha,
      beforeSha,
      createdAt: now(),
    };
    m.state.projects.push(project);
  }
  return { project, sha };
}

/** A new pipeline on the project's head with one pending job; every runner that could take it is told. */
export async function queueJob(
  m: StandinModel,
  project: StandinProject,
  name: string,
  spec: CiJobSpec,
  extraVariables: Record<string, JobVariableInput>,
): Promise<StandinJob> {
  const job: StandinJob = {
    id: m.next.job++,
    pipelineId: m.next.pipeline++,
    projectId: project.id,
    name,
    spec,
    extraVariables,
    status: 'pending',
    token: randomToken('glcbt-', 24),
    sha: project.sha,
    beforeSha: project.beforeSha,
    ref: 'main',
    runnerId: null,
    systemId: null,
    failureReason: null,
    exitCode: null,
    trace: Buffer.alloc(0),
    queuedAt: now(),
    startedAt: null,
    finishedAt: null,
    watchedUntil: 0,
  };
  await writePipelineRef(m.settings.stateDir, project.path, job.pipelineId, job.sha);
  m.jobs.push(job);
  // Ci::UpdateBuildQueueService#tick_for: the queue of every runner that could take it.
  for (const r of m.state.runners) if (runnerMatchesJob(r, job, project)) tickQueue(r);
  return job;
}

/** RegisterJobService: the oldest pending job this runner matches, now running on it; undefined when none. */
export function takeJob(
  m: StandinModel,
  runner: StandinRunner,
  manager: StandinManager,
): StandinJob | undefined {
  const job = m.jobs.find(
    (j) => j.status === 'pending' && runnerMatchesJob(runner, j, projectById(m, j.projectId)),
  );
  if (!job) return undefined;
  job.status = 'running';
  job.runnerId = runner.id;
  job.systemId = manager.systemId;
  job.startedAt = now();
  return job;
}

/** Whether a manager runs a job now (Entities::Ci::RunnerManager job_execution_status). */
export const managerIsBusy = (m: StandinModel, mg: StandinManager) =>
  m.jobs.some((j) => j.status === 'running' && j.runnerId === mg.runnerId && j.systemId === mg.systemId);

export function finishJob(job: StandinJob, status: JobStatus): void {
  job.status = status;
  job.finishedAt = now();
}

export const jobView = (m: StandinModel, j: StandinJob): StandinJobView => ({
  id: j.id,
  name: j.name,
  project: projectById(m, j.projectId).path,
  pipelineId: j.pipelineId,
  status: j.status,
  runnerId: j.runnerId,
  systemId: j.systemId,
  failureReason: j.failureReason,
  exitCode: j.exitCode,
  trace: j.trace.toString('utf8'),
  queuedAt: j.queuedAt,
  startedAt: j.startedAt,
  finishedAt: j.finishedAt,
});
