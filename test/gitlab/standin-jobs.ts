// The job half of the stand-in, pure: the records, GitLab's runner matching, the predefined CI variables and the
// job payload `POST /jobs/request` answers with.
//
// Payload fields: GitLab lib/api/entities/ci/job_request/{response,job_info,git_info,runner_info,image,service,step}.rb
// and app/presenters/ci/build_runner_presenter.rb (refspecs, git depth, runner_variables); the runner reads them into
// common.JobResponse (gitlab-runner v17.9.3 common/network.go). Variables: GitLab's Ci::Build#variables
// (predefined_variables of build, pipeline, project and runner; yaml variables; project CI/CD variables).
import type { CiJobSpec } from './standin-ci.js';

export type JobStatus = 'pending' | 'running' | 'success' | 'failed' | 'canceled';

export interface StandinProject {
  id: number;
  /** "group/project" */
  path: string;
  namespaceId: number;
  /** the head of main */
  sha: string;
  beforeSha: string;
  createdAt: string;
}

/** A CI/CD variable given to POST /_standin/jobs (GitLab's project/pipeline variables). */
export interface JobVariableInput {
  value: string;
  masked?: boolean;
  file?: boolean;
  raw?: boolean;
}

export interface StandinJob {
  id: number;
  pipelineId: number;
  projectId: number;
  name: string;
  spec: CiJobSpec;
  /** POST /_standin/jobs variables: like project CI/CD variables (not public; masked on request) */
  extraVariables: Record<string, JobVariableInput>;
  status: JobStatus;
  /** the job token (CI_JOB_TOKEN): GitLab prefixes them glcbt- since 16.x */
  token: string;
  sha: string;
  beforeSha: string;
  ref: string;
  runnerId: number | null;
  /** system_id of the runner manager that took the job */
  systemId: string | null;
  failureReason: string | null;
  exitCode: number | null;
  trace: Buffer;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** until when someone "watches" the trace (Gitlab::Ci::Trace#being_watched!, 10 s); shortens the update interval */
  watchedUntil: number;
}

export interface RunnerForMatch {
  id: number;
  runnerType: 'instance_type' | 'group_type' | 'project_type';
  groupId: number | null;
  projectId: number | null;
  tagList: string[];
  runUntagged: boolean;
  accessLevel: 'not_protected' | 'ref_protected';
  description: string;
  maximumTimeout: number | null;
}

/** GitLab's default job timeout (project build_timeout, 1 hour), capped by the runner's maximum_timeout (Ci::BuildMetadata#update_timeout_state). */
export const DEFAULT_JOB_TIMEOUT = 3600;

export const jobTimeout = (runner: RunnerForMatch) =>
  runner.maximumTimeout !== null ? Math.min(DEFAULT_JOB_TIMEOUT, runner.maximumTimeout) : DEFAULT_JOB_TIMEOUT;

/**
 * Whether `runner` may take `job` (Gitlab::Ci::Matching::RunnerMatcher#matches? + the runner scopes the queue uses,
 * app/services/ci/register_job_service.rb / Ci::Queue::BuildQueueService): the job's tags all among the runner's, an
 * untagged job only on a run_untagged runner, ref_protected runners only for protected refs (the default branch main
 * is protected in a new GitLab project), project/group runners only for their own project/group.
 */
export function runnerMatchesJob(runner: RunnerForMatch, job: StandinJob, project: StandinProject): boolean {
  if (runner.runnerType === 'project_type' && runner.projectId !== project.id) return false;
  if (runner.runnerType === 'group_type' && runner.groupId !== project.namespaceId) return false;
  if (runner.accessLevel === 'ref_protected' && job.ref !== 'main') return false;
  if (job.spec.tags.length === 0) return runner.runUntagged;
  return job.spec.tags.every((t) => runner.tagList.includes(t));
}

export interface RunnerVariable {
  key: string;
  value: string;
  public: boolean;
  masked: boolean;
  file?: boolean;
  raw?: boolean;
}

// GitLab's slugify (Gitlab::Utils.slugify): lower case, non-alphanumerics to '-', at most 63, no '-' at the ends.
const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '-')
    .slice(0, 63)
    .replace(/(^-+|-+$)/g, '');

/** Ruby's Array#to_s for a list of strings: CI_RUNNER_TAGS looks like ["a", "b"] (Ci::Runner#predefined_variables). */
const rubyArray = (list: string[]) => `[${list.map((t) => JSON.stringify(t)).join(', ')}]`;

export interface PayloadContext {
  /** the stand-in's URL, e.g. http://198.18.4.1:8080 */
  serverUrl: string;
  /** GitLab's container registry, Gitlab.config.registry.host_port; null when the registry is off */
  registry: string | null;
  runner: RunnerForMatch;
  project: StandinProject;
  /** seconds the job waited in the queue */
  timeInQueue: number;
  /** how many jobs of this project run on instance runners now */
  runningOnInstanceRunners: number;
}

/** The runner-visible variables of a job, in GitLab's order (predefined first, then YAML, then CI/CD variables). */
export function jobVariables(job: StandinJob, ctx: PayloadContext): RunnerVariable[] {
  const url = new URL(ctx.serverUrl);
  const { project } = ctx;
  const [namespace, name] = [
    project.path.slice(0, project.path.lastIndexOf('/')),
    project.path.slice(project.path.lastIndexOf('/') + 1),
  ];
  const projectUrl = `${ctx.serverUrl}/${project.path}`;
  const repoUrl = `${url.protocol}//gitlab-ci-token:${job.token}@${url.host}/${project.path}.git`;
  const pub = (key: string, value: string): RunnerVariable => ({ key, value, public: true, masked: false });
  const list: RunnerVariable[] = [
    // Ci::Build#predefined_variables / Ci::BuildRunnerPresenter: job and its token
    pub('CI_PIPELINE_ID', String(job.pipelineId)),
    pub('CI_PIPELINE_URL', `${projectUrl}/-/pipelines/${job.pipelineId}`),
    pub('CI_JOB_ID', String(job.id)),
    pub('CI_JOB_URL', `${projectUrl}/-/jobs/${job.id}`),
    // GitLab: CI_JOB_TOKEN is not public and masked; CI_REPOSITORY_URL carries it and is not public either.
    { key: 'CI_JOB_TOKEN', value: job.token, public: false, masked: true },
    pub('CI_JOB_STARTED_AT', job.startedAt ?? ''),
    pub('CI_REGISTRY_USER', 'gitlab-ci-token'),
    { key: 'CI_REGISTRY_PASSWORD', value: job.token, public: false, masked: true },
    { key: 'CI_REPOSITORY_URL', value: repoUrl, public: false, masked: false },
    { key: 'CI_DEPENDENCY_PROXY_PASSWORD', value: job.token, public: false, masked: true },
    pub('CI_JOB_NAME', job.name),
    pub('CI_JOB_NAME_SLUG', slug(job.name)),
    pub('CI_JOB_STAGE', job.spec.stage),
    pub('CI_NODE_TOTAL', '1'),
    pub('CI', 'true'),
    pub('GITLAB_CI', 'true'),
    pub('CI_SERVER_URL', ctx.serverUrl),
    pub('CI_SERVER_HOST', url.hostname),
    pub('CI_SERVER_PORT', url.port || (url.protocol === 'https:' ? '443' : '80')),
    pub('CI_SERVER_PROTOCOL', url.protocol.replace(':', '')),
    pub('CI_SERVER_SHELL_SSH_HOST', url.hostname),
    pub('CI_SERVER_SHELL_SSH_PORT', '22'),
    pub('CI_SERVER_NAME', 'GitLab'),
    pub('CI_SERVER_VERSION', '17.9.3'),
    pub('CI_SERVER_VERSION_MAJOR', '17'),
    pub('CI_SERVER_VERSION_MINOR', '9'),
    pub('CI_SERVER_VERSION_PATCH', '3'),
    pub('CI_SERVER_REVISION', 'standin'),
    pub('GITLAB_FEATURES', ''),
    // Project#predefined_variables
    pub('CI_PROJECT_ID', String(project.id)),
    pub('CI_PROJECT_NAME', name),
    pub('CI_PROJECT_TITLE', name),
    pub('CI_PROJECT_DESCRIPTION', ''),
    pub('CI_PROJECT_PATH', project.path),
    pub('CI_PROJECT_PATH_SLUG', slug(project.path)),
    pub('CI_PROJECT_NAMESPACE', namespace),
    pub('CI_PROJECT_NAMESPACE_ID', String(project.namespaceId)),
    pub('CI_PROJECT_ROOT_NAMESPACE', namespace.split('/')[0]),
    pub('CI_PROJECT_URL', projectUrl),
    pub('CI_PROJECT_VISIBILITY', 'private'),
    pub('CI_PROJECT_REPOSITORY_LANGUAGES', ''),
    pub('CI_PROJECT_CLASSIFICATION_LABEL', ''),
    pub('CI_DEFAULT_BRANCH', 'main'),
    pub('CI_CONFIG_PATH', '.gitlab-ci.yml'),
    pub('CI_PAGES_DOMAIN', 'example.com'),
    // Project container_registry_variables: CI_REGISTRY_IMAGE is Project#container_registry_url, the full path
    // lowercased (Docker refuses capitals), while CI_PROJECT_PATH keeps its case.
    ...(ctx.registry
      ? [
          pub('CI_REGISTRY', ctx.registry),
          pub('CI_REGISTRY_IMAGE', `${ctx.registry}/${project.path.toLowerCase()}`),
        ]
      : []),
    pub('CI_API_V4_URL', `${ctx.serverUrl}/api/v4`),
    pub('CI_API_GRAPHQL_URL', `${ctx.serverUrl}/api/graphql`),
    // Ci::Pipeline#predefined_variables (a push pipeline on main)
    pub('CI_PIPELINE_IID', String(job.pipelineId)),
    pub('CI_PIPELINE_SOURCE', 'push'),
    pub('CI_PIPELINE_CREATED_AT', job.queuedAt),
    pub('CI_PIPELINE_NAME', ''),
    pub('CI_COMMIT_SHA', job.sha),
    pub('CI_COMMIT_SHORT_SHA', job.sha.slice(0, 8)),
    pub('CI_COMMIT_BEFORE_SHA', job.beforeSha),
    pub('CI_COMMIT_REF_NAME', job.ref),
    pub('CI_COMMIT_REF_SLUG', slug(job.ref)),
    pub('CI_COMMIT_BRANCH', job.ref),
    pub('CI_COMMIT_REF_PROTECTED', 'true'),
    pub('CI_COMMIT_MESSAGE', 'Initial commit'),
    pub('CI_COMMIT_TITLE', 'Initial commit'),
    pub('CI_COMMIT_DESCRIPTION', ''),
    pub('CI_COMMIT_AUTHOR', 'GitLab stand-in <standin@example.invalid>'),
    pub('CI_COMMIT_TIMESTAMP', job.queuedAt),
    pub('CI_BUILD_BEFORE_SHA', job.beforeSha),
    // Ci::Runner#predefined_variables
    pub('CI_RUNNER_ID', String(ctx.runner.id)),
    pub('CI_RUNNER_DESCRIPTION', ctx.runner.description),
    pub('CI_RUNNER_TAGS', rubyArray(ctx.runner.tagList)),
    pub('GITLAB_USER_ID', '1'),
    pub('GITLAB_USER_LOGIN', 'root'),
    pub('GITLAB_USER_NAME', 'Administrator'),
    pub('GITLAB_USER_EMAIL', 'admin@example.invalid'),
  ];
  // .gitlab-ci.yml variables (global, then job) are public; CI/CD variables are not (Ci::HasVariable#to_runner_variable).
  for (const [key, value] of Object.entries(job.spec.variables)) list.push(pub(key, value));
  for (const [key, v] of Object.entries(job.extraVariables)) {
    list.push({
      key,
      value: v.value,
      public: false,
      masked: Boolean(v.masked),
      ...(v.file ? { file: true } : {}),
      ...(v.raw ? { raw: true } : {}),
    });
  }
  // A later definition of a key replaces an earlier one (Gitlab::Ci::Variables::Collection keeps the last).
  const last = new Map<string, number>();
  list.forEach((v, i) => last.set(v.key, i));
  return list.filter((v, i) => last.get(v.key) === i);
}

/** GIT_DEPTH from the job's variables, else the project default: 0 here because dumb HTTP cannot serve shallow fetches. */
export function gitDepth(job: StandinJob): number {
  const v = job.spec.variables.GIT_DEPTH ?? job.extraVariables.GIT_DEPTH?.value;
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : 0;
}

/** Ci::BuildRunnerPresenter#refspecs: the pipeline's persistent ref, then the branch (depth > 0) or all heads and tags. */
export function refspecs(job: StandinJob): string[] {
  const specs = [`+refs/pipelines/${job.pipelineId}:refs/pipelines/${job.pipelineId}`];
  if (gitDepth(job) > 0) specs.push(`+refs/heads/${job.ref}:refs/remotes/origin/${job.ref}`);
  else specs.push('+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*');
  return specs;
}

// Enums::Ci::CommitStatus.failure_reasons keys that GitLab 17.9 lists in features.failure_reasons; the runner maps
// a reason GitLab does not know to an older one or unknown_failure (common/network.go failureReasonsCompatibilityMap).
export const FAILURE_REASONS = [
  'unknown_failure',
  'script_failure',
  'api_failure',
  'stuck_or_timeout_failure',
  'runner_system_failure',
  'missing_dependency_failure',
  'runner_unsupported',
  'stale_schedule',
  'job_execution_timeout',
  'archived_failure',
  'unmet_prerequisites',
  'scheduler_failure',
  'data_integrity_failure',
  'forward_deployment_failure',
  'user_blocked',
  'project_deleted',
  'ci_quota_exceeded',
  'pipeline_loop_detected',
  'no_matching_runner',
  'trace_size_exceeded',
  'builds_disabled',
  'environment_creation_failure',
  'deployment_rejected',
  'failed_outdated_deployment_job',
  'protected_environment_failure',
  'insufficient_bridge_permissions',
  'downstream_bridge_project_not_found',
  'invalid_bridge_trigger',
  'upstream_bridge_project_not_found',
  'insufficient_upstream_permissions',
  'bridge_pipeline_is_child_pipeline',
  'downstream_pipeline_creation_failed',
  'secrets_provider_not_found',
  'reached_max_descendant_pipelines_depth',
  'ip_restriction_failure',
  'reached_max_pipeline_hierarchy_size',
  'reached_downstream_pipeline_trigger_rate_limit',
];

const imageEntity = (img: CiJobSpec['image']) =>
  // Entities::Ci::JobRequest::Image: name, entrypoint, ports, executor_opts, pull_policy (no image: null).
  img
    ? { name: img.name, entrypoint: img.entrypoint ?? null, ports: [], executor_opts: {}, pull_policy: null }
    : null;

/** The 201 body of POST /jobs/request (Entities::Ci::JobRequest::Response). */
export function jobPayload(job: StandinJob, ctx: PayloadContext): Record<string, unknown> {
  const { project } = ctx;
  const url = new URL(ctx.serverUrl);
  const timeout = jobTimeout(ctx.runner);
  const steps: Record<string, unknown>[] = [
    { name: 'script', script: job.spec.script, timeout, when: 'on_success', allow_failure: false },
  ];
  if (job.spec.afterScript.length)
    steps.push({
      name: 'after_script',
      script: job.spec.afterScript,
      timeout,
      when: 'always',
      allow_failure: true,
    });
  return {
    id: job.id,
    token: job.token,
    allow_git_fetch: true,
    job_info: {
      id: job.id,
      name: job.name,
      stage: job.spec.stage,
      pipeline_id: job.pipelineId,
      project_id: project.id,
      project_name: project.path.slice(project.path.lastIndexOf('/') + 1),
      project_full_path: project.path,
      namespace_id: project.namespaceId,
      root_namespace_id: project.namespaceId,
      organization_id: 1,
      instance_id: null,
      instance_uuid: null,
      user_id: 1,
      scoped_user_id: null,
      time_in_queue_seconds: ctx.timeInQueue,
      // BuildRunnerPresenter: '+Inf' unless an instance runner takes it
      project_jobs_running_on_instance_runners_count:
        ctx.runner.runnerType === 'instance_type' ? String(ctx.runningOnInstanceRunners) : '+Inf',
      queue_size: 0,
      queue_depth: 0,
    },
    git_info: {
      // Ci::Build#repo_url: the project's HTTP URL with gitlab-ci-token:<job token>@
      repo_url: `${url.protocol}//gitlab-ci-token:${job.token}@${url.host}/${project.path}.git`,
      ref: job.ref,
      sha: job.sha,
      before_sha: job.beforeSha,
      ref_type: 'branch',
      refspecs: refspecs(job),
      depth: gitDepth(job),
      repo_object_format: 'sha1',
      protected: true,
    },
    runner_info: { uuid: null, timeout, runner_session_url: null },
    variables: jobVariables(job, ctx),
    steps,
    image: imageEntity(job.spec.image),
    services: job.spec.services.map((s) => ({
      // Entities::Ci::JobRequest::Service
      name: s.name,
      entrypoint: s.entrypoint ?? null,
      ports: [],
      alias: s.alias ?? null,
      command: s.command ?? null,
      executor_opts: {},
      pull_policy: null,
      variables: Object.entries(s.variables ?? {}).map(([key, value]) => ({
        key,
        value,
        public: true,
        masked: false,
      })),
    })),
    artifacts: null,
    // Entities::Ci::JobRequest::Cache; GitLab suffixes the key by the ref's protection (Ci::Build#cache), so
    // protected and unprotected pipelines never share a cache.
    cache: (job.spec.cache ?? []).map((c) => ({
      key: `${c.key}-protected`,
      untracked: c.untracked,
      paths: c.paths,
      policy: c.policy,
      when: c.when,
      fallback_keys: [],
    })),
    // Ci::Build#credentials (Gitlab::Ci::Build::Credentials::Factory): the GitLab registry's, when it is on; the
    // runner logs in with them to pull job images from there (common/network.go Credentials).
    credentials: ctx.registry
      ? [{ type: 'registry', url: ctx.registry, username: 'gitlab-ci-token', password: job.token }]
      : [],
    dependencies: [],
    features: { trace_sections: true, failure_reasons: FAILURE_REASONS },
  };
}
