// Renders the cluster objects (Namespace, ServiceAccount, config Secret, DaemonSet) from manifests/*.yaml.hbs and checks them.
import { parseAllDocuments } from 'yaml';
import { InputError } from '../errors.js';
import { EXECUTOR_SPECS, identityDir } from '../executors.js';
import { dockerSocketDir } from '../docker/flavours.js';
import type { Executor, Inventory, Toleration } from '../inventory/types.js';
import { CA_FILE_NAME } from '../docker/ca.js';
import { redact } from '../secrets.js';
import { renderTemplate } from '../templates.js';
import {
  CONFIG_SECRET,
  MANAGED_BY,
  SEALED_SECRETS_MANAGED,
  MANAGED_BY_LABEL,
  PART_OF_LABEL,
  configKey,
  daemonSetName,
  type KubeObject,
} from './objects.js';

export const CLUSTER_TEMPLATES = [
  'namespace.yaml.hbs',
  'serviceaccount.yaml.hbs',
  'secret.yaml.hbs',
  'daemonset.yaml.hbs',
] as const;
export const SERVICE_ACCOUNT = 'gitlab-runner';
export const EXECUTOR_LABEL = 'runner-fleet.dev/executor';
/** Where the runner pods may run (kubernetes.io/arch): gitlab/gitlab-runner images exist for these only. */
export const CLUSTER_ARCHITECTURES: readonly string[] = ['arm64', 'amd64'];
/** Where the runner container sees the folder of the node's Docker socket. */
export const POD_DOCKER_DIR = '/run/node-docker';
/** Long enough for a typical CI job to finish during a rollout; the runner stops taking new jobs at once. */
export const DEFAULT_TERMINATION_GRACE_SECONDS = 3600;

export interface RenderInput {
  inventory: Inventory;
  executor: Executor;
  /** node name → that node's config.toml text (from src/runners/config-toml.ts); one per inventory node */
  configs: Record<string, string>;
  /**
   * node name → runner token, when the caller knows them: used only to prove that no token ends up outside
   * the Secret (anything shaped like a GitLab token is refused there as well).
   */
  tokens?: Record<string, string>;
  /** node name → the runner manager's system_id registration recorded; stored beside the config */
  systemIds?: Record<string, string>;
  terminationGracePeriodSeconds?: number;
  /** another template folder (tests, user customisation); default manifests/ */
  templateDir?: string;
}

/** The data every template sees (strict mode: a template naming anything else fails to render). */
export function clusterTemplateData(input: RenderInput) {
  const { inventory: inv, executor } = input;
  const labels = {
    'app.kubernetes.io/name': 'gitlab-runner',
    [PART_OF_LABEL]: 'runner-fleet',
    [MANAGED_BY_LABEL]: MANAGED_BY,
  };
  const selector = { 'app.kubernetes.io/name': 'gitlab-runner', [EXECUTOR_LABEL]: executor };
  const secretData: Record<string, string> = {};
  for (const node of inv.nodes) {
    secretData[configKey(node.name)] = Buffer.from(input.configs[node.name] ?? '', 'utf8').toString('base64');
    const systemId = input.systemIds?.[node.name];
    if (systemId) secretData[`${node.name}.system_id`] = Buffer.from(systemId, 'utf8').toString('base64');
  }
  // gitlab.caFile for the runner's tls-ca-file (RUNNER_CA_FILE.cluster): the pods mount this Secret at /secrets.
  if (inv.gitlab.ca) secretData[CA_FILE_NAME] = Buffer.from(inv.gitlab.ca.pem, 'utf8').toString('base64');
  return {
    namespace: inv.kubernetes.namespace,
    labels,
    name: daemonSetName(executor),
    executor,
    /** the registry's say: the docker CLI is copied into the runner container (shell jobs run there) */
    dockerCliInRunner: EXECUTOR_SPECS[executor].dockerCliInRunner,
    /** the registry's say: the node's Docker socket folder, DOCKER_HOST and the docker.sock link in the pod */
    nodeDocker: EXECUTOR_SPECS[executor].pod.nodeDocker,
    automountServiceAccountToken: EXECUTOR_SPECS[executor].pod.serviceAccountToken,
    /** a Role and RoleBinding for the runner's service account when the executor calls the API */
    roleRules: EXECUTOR_SPECS[executor].pod.roleRules,
    selector,
    podLabels: { ...labels, ...selector },
    serviceAccount: SERVICE_ACCOUNT,
    configSecret: CONFIG_SECRET,
    secretAnnotations: { [SEALED_SECRETS_MANAGED]: 'true' },
    secretData,
    nodeLabel: inv.kubernetes.nodeLabel,
    architectures: [...CLUSTER_ARCHITECTURES],
    image: inv.runners.image,
    dockerCliImage: inv.runners.dockerCliImage,
    identityHostPath: identityDir(inv.kubernetes.namespace, executor),
    dockerSocketDir: dockerSocketDir().dir,
    podDockerDir: POD_DOCKER_DIR,
    podDockerHost: `unix://${POD_DOCKER_DIR}/${dockerSocketDir().name}`,
    terminationGracePeriodSeconds: input.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS,
    // runners.nodeSelector adds to the inventory label; rules.ts keeps it from overriding that one.
    nodeSelector: { ...inv.runners.nodeSelector, [inv.kubernetes.nodeLabel]: 'true' },
    tolerations: inv.runners.tolerations.map(tolerationObject),
    resources: resourcesObject(inv.runners.resources),
    hostAliases: hostAliasesObject(inv.gitlab.hostAliases),
    metricsPort: inv.runners.metrics?.port ?? null,
    podAnnotations: inv.runners.metrics?.annotations
      ? {
          'prometheus.io/scrape': 'true',
          'prometheus.io/port': String(inv.runners.metrics.port),
          'prometheus.io/path': '/metrics',
        }
      : null,
  };
}

/**
 * gitlab.hostAliases as a Pod's hostAliases: one entry per address, names sorted, addresses in order, so a rerun
 * renders the same list the server keeps (it compares lists whole).
 */
export function hostAliasesObject(aliases: Record<string, string>): { ip: string; hostnames: string[] }[] {
  const byIp = new Map<string, string[]>();
  for (const name of Object.keys(aliases).sort())
    byIp.set(aliases[name], [...(byIp.get(aliases[name]) ?? []), name]);
  return [...byIp.keys()].sort().map((ip) => ({ ip, hostnames: byIp.get(ip)! }));
}

/** A toleration as the API spells it, without the keys left out (so a rerun compares equal to what the server keeps). */
function tolerationObject(t: Toleration): Record<string, unknown> {
  return Object.fromEntries(Object.entries(t).filter(([, value]) => value !== undefined));
}

function resourcesObject(r: Inventory['runners']['resources']): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const kind of ['requests', 'limits'] as const) {
    const list = Object.fromEntries(
      Object.entries(r[kind] ?? {}).filter(([, value]) => value !== undefined),
    ) as Record<string, string>;
    if (Object.keys(list).length > 0) out[kind] = list;
  }
  return out;
}

/**
 * Renders and checks every cluster object. Throws InputError (nothing applied yet) naming the template and
 * document when a template renders something unusable, or when a config is missing.
 */
export function renderClusterObjects(input: RenderInput): KubeObject[] {
  const { inventory: inv } = input;
  const issues: string[] = [];
  for (const node of inv.nodes) {
    if (typeof input.configs[node.name] !== 'string' || input.configs[node.name].trim() === '')
      issues.push(`configs: no config.toml for node ${node.name}`);
  }
  for (const name of Object.keys(input.configs)) {
    if (!inv.nodes.some((n) => n.name === name)) issues.push(`configs: ${name} is not an inventory node`);
  }
  if (issues.length > 0) throw new InputError(issues, 'cannot render cluster objects');

  const data = clusterTemplateData(input);
  const objects: KubeObject[] = [];
  for (const template of CLUSTER_TEMPLATES) {
    let text: string;
    try {
      text = renderTemplate(template, data, input.templateDir);
    } catch (err) {
      issues.push(`${template}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    parseAllDocuments(text, { prettyErrors: false }).forEach((doc, i) => {
      const where = `${template} document ${i + 1}`;
      // A YAML error message quotes the offending line, which may be part of a config.toml: redact it.
      if ('errors' in doc && doc.errors.length > 0) {
        issues.push(`${where}: ${redact(doc.errors[0].message.split('\n')[0])}`);
        return;
      }
      const value = doc.toJS() as unknown;
      if (value === null || value === undefined) return; // an empty document (comments only)
      const problems = checkObject(value, inv.kubernetes.namespace);
      if (problems.length > 0) issues.push(...problems.map((p) => `${where}: ${p}`));
      else objects.push(value as KubeObject);
    });
  }
  issues.push(...checkTokensStayInSecret(objects, input));
  if (issues.length > 0) throw new InputError(issues, 'rendered cluster objects are invalid');
  return objects;
}

function checkObject(value: unknown, namespace: string): string[] {
  if (typeof value !== 'object' || Array.isArray(value)) return ['expected a mapping (a Kubernetes object)'];
  const o = value as Record<string, unknown>;
  const meta = o.metadata as Record<string, unknown> | undefined;
  const out: string[] = [];
  if (typeof o.apiVersion !== 'string' || !o.apiVersion) out.push('apiVersion is missing');
  if (typeof o.kind !== 'string' || !o.kind) out.push('kind is missing');
  if (!meta || typeof meta !== 'object') return [...out, 'metadata is missing'];
  if (typeof meta.name !== 'string' || !meta.name) out.push('metadata.name is missing');
  if (o.kind === 'Namespace') {
    if (meta.name !== namespace)
      out.push(
        `metadata.name is ${JSON.stringify(meta.name)}, expected the inventory's namespace ${JSON.stringify(namespace)}`,
      );
  } else if (meta.namespace !== namespace) {
    out.push(
      `metadata.namespace is ${JSON.stringify(meta.namespace)}, expected ${JSON.stringify(namespace)}`,
    );
  }
  const labels = (meta.labels ?? {}) as Record<string, unknown>;
  if (labels[MANAGED_BY_LABEL] !== MANAGED_BY)
    out.push(
      `metadata.labels["${MANAGED_BY_LABEL}"] must be "${MANAGED_BY}" (prune finds our objects by it)`,
    );
  return out;
}

/** Tokens belong in the config Secret's data and nowhere else (no env, annotation or ConfigMap). */
function checkTokensStayInSecret(objects: KubeObject[], input: RenderInput): string[] {
  const known = Object.values(input.tokens ?? {}).filter((t) => t.length >= 4);
  const out: string[] = [];
  for (const o of objects) {
    if (o.kind === 'Secret') continue;
    const text = JSON.stringify(o);
    if (
      known.some((t) => text.includes(t)) ||
      /\b(glrt|glpat|glrtr)-[A-Za-z0-9_-]{6,}|GR1348941[A-Za-z0-9_-]{6,}/.test(text)
    ) {
      out.push(
        `${o.kind} ${o.metadata.name}: contains a runner token; tokens may only be in the ${CONFIG_SECRET} Secret`,
      );
    }
  }
  return out;
}
