// The stand-in's .gitlab-ci.yml reader: one job out of the YAML text, only the keys the stand-in can honour. Pure.
//
// What a key means follows GitLab's CI schema (lib/gitlab/ci/config/entry/{job,image,service,variables}.rb):
// image is a string or {name, entrypoint}; services are strings or {name, alias, command, entrypoint, variables};
// variables are scalars or {value, description, expand}; before_script joins script in one step, after_script runs
// always (Ci::Build#steps via Gitlab::Ci::Build::Step.from_commands / from_after_script). Anything else is refused
// by name instead of being silently ignored, so a test never believes a keyword worked when it did not.
import { parse } from 'yaml';

export interface CiImage {
  name: string;
  entrypoint?: string[];
}

export interface CiService extends CiImage {
  alias?: string;
  command?: string[];
  variables?: Record<string, string>;
}

export interface CiJobSpec {
  name: string;
  stage: string;
  image: CiImage | null;
  services: CiService[];
  /** global variables first, then the job's own (the job's win, as in GitLab) */
  variables: Record<string, string>;
  /** before_script + script: GitLab sends them as one "script" step */
  script: string[];
  afterScript: string[];
  tags: string[];
  /** the job's `cache:` (one entry; lib/gitlab/ci/config/entry/cache.rb): key, paths, policy */
  cache: CiCache[];
}

export interface CiCache {
  key: string;
  paths: string[];
  policy: 'pull-push' | 'pull' | 'push';
  when: 'on_success' | 'on_failure' | 'always';
  untracked: boolean;
}

const CACHE_KEYS = new Set(['key', 'paths', 'policy', 'when', 'untracked']);

function cacheEntry(v: unknown, what: string): CiCache[] {
  if (!isObject(v)) throw new CiConfigError(`${what} config should be a hash (the stand-in takes one cache)`);
  const extra = Object.keys(v).filter((k) => !CACHE_KEYS.has(k));
  if (extra.length) throw new CiConfigError(`${what}: unsupported keys: ${extra.join(', ')}`);
  if (v.key !== undefined && typeof v.key !== 'string')
    throw new CiConfigError(`${what}:key should be a string (the stand-in takes no files: key)`);
  const policy = (v.policy ?? 'pull-push') as CiCache['policy'];
  if (!['pull-push', 'pull', 'push'].includes(policy))
    throw new CiConfigError(`${what}:policy should be pull-push, pull or push`);
  const when = (v.when ?? 'on_success') as CiCache['when'];
  if (!['on_success', 'on_failure', 'always'].includes(when))
    throw new CiConfigError(`${what}:when should be on_success, on_failure or always`);
  return [
    {
      key: (v.key as string | undefined) ?? 'default',
      paths: v.paths === undefined ? [] : stringList(v.paths, `${what}:paths`),
      policy,
      when,
      untracked: v.untracked === true,
    },
  ];
}

export class CiConfigError extends Error {}

const JOB_KEYS = new Set([
  'image',
  'services',
  'variables',
  'before_script',
  'script',
  'after_script',
  'tags',
  'stage',
  'cache',
]);
// Top-level keywords that are not jobs (lib/gitlab/ci/config/entry/root.rb). Those the stand-in honours: stages,
// variables, and the deprecated global image/services/before_script/after_script (same meaning as under default:).
const GLOBAL_SUPPORTED = new Set([
  'stages',
  'variables',
  'image',
  'services',
  'before_script',
  'after_script',
]);
const GLOBAL_UNSUPPORTED = new Set(['default', 'include', 'workflow', 'cache', 'spec', 'pages']);
const SERVICE_KEYS = new Set(['name', 'alias', 'command', 'entrypoint', 'variables']);
const IMAGE_KEYS = new Set(['name', 'entrypoint']);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function stringList(v: unknown, what: string): string[] {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) throw new CiConfigError(`${what} should be a string or an array of strings`);
  // GitLab flattens nested arrays in scripts (anchors such as `- *setup` produce them).
  return v.flat(10).map((s) => {
    if (typeof s !== 'string' && typeof s !== 'number' && typeof s !== 'boolean')
      throw new CiConfigError(`${what} should be an array of strings`);
    return String(s);
  });
}

function variables(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new CiConfigError(`${what} should be a hash of key value pairs`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (isObject(val)) {
      const extra = Object.keys(val).filter(
        (x) => !['value', 'description', 'expand', 'options'].includes(x),
      );
      if (extra.length)
        throw new CiConfigError(`${what}: variable ${k} has unsupported keys: ${extra.join(', ')}`);
      out[k] = val.value === undefined || val.value === null ? '' : String(val.value);
    } else if (typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean')
      out[k] = String(val);
    else throw new CiConfigError(`${what}: variable ${k} should be a string`);
  }
  return out;
}

function image(v: unknown, what: string): CiImage {
  if (typeof v === 'string') return { name: v };
  if (!isObject(v)) throw new CiConfigError(`${what} should be a string or a hash`);
  const extra = Object.keys(v).filter((k) => !IMAGE_KEYS.has(k));
  if (extra.length) throw new CiConfigError(`${what}: unsupported keys: ${extra.join(', ')}`);
  if (typeof v.name !== 'string' || !v.name) throw new CiConfigError(`${what}: name should be a string`);
  return {
    name: v.name,
    ...(v.entrypoint !== undefined ? { entrypoint: stringList(v.entrypoint, `${what} entrypoint`) } : {}),
  };
}

function services(v: unknown, what: string): CiService[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new CiConfigError(`${what} should be an array`);
  return v.map((s, i) => {
    if (typeof s === 'string') return { name: s };
    if (!isObject(s)) throw new CiConfigError(`${what}[${i}] should be a string or a hash`);
    const extra = Object.keys(s).filter((k) => !SERVICE_KEYS.has(k));
    if (extra.length) throw new CiConfigError(`${what}[${i}]: unsupported keys: ${extra.join(', ')}`);
    if (typeof s.name !== 'string' || !s.name)
      throw new CiConfigError(`${what}[${i}]: name should be a string`);
    const out: CiService = { name: s.name };
    if (s.alias !== undefined) out.alias = String(s.alias);
    if (s.command !== undefined) out.command = stringList(s.command, `${what}[${i}] command`);
    if (s.entrypoint !== undefined) out.entrypoint = stringList(s.entrypoint, `${what}[${i}] entrypoint`);
    if (s.variables !== undefined) out.variables = variables(s.variables, `${what}[${i}] variables`);
    return out;
  });
}

/** The job `jobName` of the .gitlab-ci.yml text, or CiConfigError saying what is wrong or unsupported. */
export function parseCiJob(yamlText: string, jobName: string): CiJobSpec {
  let doc: unknown;
  try {
    doc = parse(yamlText);
  } catch (err) {
    throw new CiConfigError(`invalid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(doc)) throw new CiConfigError('the CI configuration should be a hash');
  const unsupportedGlobals = Object.keys(doc).filter((k) => GLOBAL_UNSUPPORTED.has(k));
  if (unsupportedGlobals.length)
    throw new CiConfigError(`unsupported keys: ${unsupportedGlobals.join(', ')}`);
  if (jobName.startsWith('.') || GLOBAL_SUPPORTED.has(jobName))
    throw new CiConfigError(`${jobName} is not a job name`);
  const job = doc[jobName];
  if (job === undefined) throw new CiConfigError(`job ${jobName} not found`);
  if (!isObject(job)) throw new CiConfigError(`jobs:${jobName} config should be a hash`);
  const unsupported = Object.keys(job).filter((k) => !JOB_KEYS.has(k));
  if (unsupported.length)
    throw new CiConfigError(`jobs:${jobName}: unsupported keys: ${unsupported.join(', ')}`);
  if (job.script === undefined)
    throw new CiConfigError(`jobs:${jobName} config should implement the script: keyword`);

  const stages =
    doc.stages === undefined
      ? ['.pre', 'build', 'test', 'deploy', '.post']
      : stringList(doc.stages, 'stages');
  const stage = job.stage === undefined ? 'test' : String(job.stage);
  if (!stages.includes(stage) && !['.pre', '.post'].includes(stage))
    throw new CiConfigError(`jobs:${jobName} chosen stage ${stage} does not exist`);

  const pick = <T>(key: string, read: (v: unknown, what: string) => T, fallback: T): T =>
    job[key] !== undefined
      ? read(job[key], `jobs:${jobName}:${key}`)
      : doc[key] !== undefined
        ? read(doc[key], key)
        : fallback;
  const tags = job.tags === undefined ? [] : stringList(job.tags, `jobs:${jobName}:tags`);
  return {
    name: jobName,
    stage,
    image: pick('image', image, null as CiImage | null),
    services: pick('services', services, []),
    variables: {
      ...variables(doc.variables, 'variables'),
      ...variables(job.variables, `jobs:${jobName}:variables`),
    },
    script: [...pick('before_script', stringList, []), ...stringList(job.script, `jobs:${jobName}:script`)],
    afterScript: pick('after_script', stringList, []),
    tags: [...new Set(tags)],
    cache: job.cache === undefined ? [] : cacheEntry(job.cache, `jobs:${jobName}:cache`),
  };
}
