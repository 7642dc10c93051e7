// The Kubernetes adapter: the only module that imports @kubernetes/client-node. Server-side apply, dry-run plans, prune, node labels, rollout wait.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Agent as HttpsAgent, type AgentOptions } from 'node:https';
import { Writable } from 'node:stream';
import {
  ApiException,
  ApisApi,
  AppsV1Api,
  CustomObjectsApi,
  FetchError,
  CoreV1Api,
  Exec,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  ServerConfiguration,
  createConfiguration,
  type ApiConstructor,
  type ApiType,
  type KubernetesObject,
  type RequestContext,
} from '@kubernetes/client-node';
import { ApiError, InputError } from '../errors.js';
import { commandTrace } from '../log.js';
import { redact } from '../secrets.js';
import { describeChange, diffPaths } from './diff.js';
import {
  FIELD_MANAGER,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  PRUNABLE_KINDS,
  RECORDS_SECRET,
  describeObject,
  type KubeObject,
} from './objects.js';
import {
  RolloutTimeoutError,
  describeBehind,
  onlyDraining,
  rolloutState,
  type DaemonSetView,
  type PodView,
  type RolloutState,
} from './rollout.js';

export interface KubeSource {
  /** path of a kubeconfig file; default: $KUBECONFIG or ~/.kube/config */
  kubeconfig?: string;
  /** kubeconfig text, e.g. `microk8s config` fetched from a node */
  kubeconfigText?: string;
  /** a context in it; default: its current-context */
  context?: string;
  /** names the source in error messages (`kubernetes.kubeconfig`, `microk8s config on pi1`) */
  label?: string;
  /** seconds any one request may take, body included (kubernetes.requestTimeout); default 30 */
  requestTimeoutSeconds?: number;
}

export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 30;

/**
 * A KubeConfig whose API clients abort every request after `timeoutSeconds`: client-node itself waits forever, so
 * a frozen apiserver (accepting connections, never answering) would hang the run. Every client KubeClient makes
 * (typed APIs and KubernetesObjectApi) comes from makeApiClient, so this one place covers them all.
 */
class TimedKubeConfig extends KubeConfig {
  timeoutSeconds = DEFAULT_REQUEST_TIMEOUT_SECONDS;

  override makeApiClient<T extends ApiType>(apiClientType: ApiConstructor<T>): T {
    const cluster = this.getCurrentCluster();
    if (!cluster) throw new Error('No active cluster!');
    const ms = this.timeoutSeconds * 1000;
    const config = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: this },
      promiseMiddleware: [
        {
          pre: async (ctx) => {
            ctx.setSignal(AbortSignal.timeout(ms));
            return ctx;
          },
          post: async (res) => res,
        },
      ],
    });
    return new apiClientType(config);
  }

  private readonly agents = new Map<string, HttpsAgent>();

  /**
   * client-node gives every request a new https.Agent, so every request makes a new TLS connection with a new
   * secure context (the client key parsed again, a full handshake): ~10 ms of CPU each, dozens per run. Requests
   * with the same TLS identity share one keep-alive agent instead (idle sockets do not keep the process alive).
   */
  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const made = context.getAgent();
    // Proxies and plain http keep the agent client-node made.
    if (!(made instanceof HttpsAgent) || this.getCurrentCluster()?.proxyUrl) return;
    context.setAgent(sharedAgent(this.agents, made.options));
  }
}

/** The keep-alive agent for these TLS options, made once per distinct identity (CA, client cert and key, checks). */
export function sharedAgent(agents: Map<string, HttpsAgent>, options: AgentOptions): HttpsAgent {
  const key = tlsIdentity(options);
  let agent = agents.get(key);
  if (!agent) {
    agent = new HttpsAgent({ ...options, keepAlive: true });
    agents.set(key, agent);
  }
  return agent;
}

function tlsIdentity(o: AgentOptions): string {
  const h = createHash('sha256');
  for (const part of [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.servername, o.rejectUnauthorized])
    h.update(
      `${part === undefined ? '-' : Buffer.isBuffer(part) ? part.toString('base64') : JSON.stringify(part)}\0`,
    );
  return h.digest('hex');
}

/** Thrown (as its message) when a request got no answer in time; toApiError turns it into one naming the cluster. */
const isTimeout = (err: unknown): boolean => {
  const e = err as { name?: string; type?: string; cause?: { name?: string } } | undefined;
  return (
    e?.name === 'AbortError' ||
    e?.name === 'TimeoutError' ||
    e?.type === 'aborted' ||
    e?.cause?.name === 'TimeoutError'
  );
};

export type PlanAction = 'create' | 'update' | 'unchanged';

export interface PlannedObject {
  object: KubeObject;
  action: PlanAction;
  /** changed paths (update only) */
  paths: string[];
  /** one line for the report; never a Secret value */
  detail: string;
}

export interface NodeInfo {
  name: string;
  labels: Record<string, string>;
  ready: boolean;
  /** label key → the field managers whose Apply owns it (which fleet set a label) */
  owners: Record<string, string[]>;
}

export interface ApplyOptions {
  dryRun?: boolean;
  fieldManager?: string;
}

/** What a command run in a container said; `exitCode` null when the apiserver gave no status. */
export interface PodExecResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
}

export interface WaitOptions {
  timeoutSeconds: number;
  pollMs?: number;
}

export class KubeClient {
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;

  private constructor(private readonly kc: TimedKubeConfig) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
  }

  /** Loads a kubeconfig from a file, from text, or from the default places. Bad input is an InputError. */
  static load(src: KubeSource = {}): KubeClient {
    const kc = new TimedKubeConfig();
    kc.timeoutSeconds = src.requestTimeoutSeconds ?? DEFAULT_REQUEST_TIMEOUT_SECONDS;
    const label =
      src.label ??
      (src.kubeconfigText !== undefined ? 'kubeconfig text' : (src.kubeconfig ?? 'default kubeconfig'));
    try {
      if (src.kubeconfigText !== undefined) kc.loadFromString(src.kubeconfigText);
      else if (src.kubeconfig !== undefined) {
        if (!existsSync(src.kubeconfig)) throw new InputError([`${label}: ${src.kubeconfig} does not exist`]);
        kc.loadFromFile(src.kubeconfig);
      } else kc.loadFromDefault();
    } catch (err) {
      if (err instanceof InputError) throw err;
      throw new InputError([
        `${label}: cannot load kubeconfig (${redact((err as Error).message.split('\n')[0])})`,
      ]);
    }
    if (src.context !== undefined) {
      const names = kc.getContexts().map((c) => c.name);
      if (!names.includes(src.context))
        throw new InputError([
          `kubernetes.context: no context "${src.context}" in ${label} (has: ${names.join(', ') || 'none'})`,
        ]);
      kc.setCurrentContext(src.context);
    }
    if (!kc.getCurrentCluster()?.server)
      throw new InputError([`${label}: the current context names no cluster server`]);
    return new KubeClient(kc);
  }

  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '';
  }

  /** The live object, or undefined when it does not exist. */
  async read(ref: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<KubeObject | undefined> {
    try {
      return plain(
        await this.objects.read({
          apiVersion: ref.apiVersion,
          kind: ref.kind,
          metadata: { name: ref.metadata.name, namespace: ref.metadata.namespace },
        }),
      );
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.toApiError(err, `read ${describeObject(ref)}`);
    }
  }

  /** Server-side apply with force (we own our fields even if someone edited them by hand). */
  async apply(obj: KubeObject, opts: ApplyOptions = {}): Promise<KubeObject> {
    commandTrace.emit?.('cluster', `${opts.dryRun ? 'dry-run apply' : 'apply'} ${describeObject(obj)}`);
    try {
      const res = await this.objects.patch(
        obj as KubernetesObject,
        undefined,
        opts.dryRun ? 'All' : undefined,
        opts.fieldManager ?? FIELD_MANAGER,
        true,
        PatchStrategy.ServerSideApply,
      );
      return plain(res);
    } catch (err) {
      throw this.toApiError(err, `${opts.dryRun ? 'dry-run apply' : 'apply'} ${describeObject(obj)}`);
    }
  }

  /** Creates an object (POST). An object that exists already is an ApiError with status 409 (AlreadyExists). */
  async create(obj: KubeObject, opts: { fieldManager?: string } = {}): Promise<KubeObject> {
    return this.write('create', obj, opts.fieldManager);
  }

  /**
   * Replaces an object (PUT) whose `metadata.resourceVersion` says which version it replaces: the apiserver
   * answers 409 Conflict when anyone wrote it since, so two writers never silently overwrite each other.
   */
  async replace(obj: KubeObject, opts: { fieldManager?: string } = {}): Promise<KubeObject> {
    if (!obj.metadata.resourceVersion)
      throw new Error(`replace ${describeObject(obj)}: no resourceVersion to replace`);
    return this.write('replace', obj, opts.fieldManager);
  }

  /** POST or PUT of a whole object under runner-fleet's field manager (or the one given), traced, errors reduced. */
  private async write(
    verb: 'create' | 'replace',
    obj: KubeObject,
    fieldManager = FIELD_MANAGER,
  ): Promise<KubeObject> {
    const what = `${verb} ${describeObject(obj)}`;
    commandTrace.emit?.('cluster', what);
    try {
      return plain(await this.objects[verb](obj as KubernetesObject, undefined, undefined, fieldManager));
    } catch (err) {
      throw this.toApiError(err, what);
    }
  }

  /** Deletes an object only while it is still at `resourceVersion` (409 Conflict otherwise); gone already is fine. */
  async deleteAt(
    obj: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>,
    resourceVersion: string,
  ): Promise<void> {
    commandTrace.emit?.('cluster', `delete ${describeObject(obj)}`);
    try {
      await this.objects.delete(
        {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace },
        },
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        { preconditions: { resourceVersion } },
      );
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw this.toApiError(err, `delete ${describeObject(obj)}`);
    }
  }

  /**
   * What applying `objects` would do, asked of the apiserver (dry-run apply, so defaulting, admission and
   * validation all take part) and compared with the live objects. Nothing is written.
   * `assumeAbsent` skips the server for objects whose namespace does not exist yet (they can only be created).
   */
  async plan(
    objects: KubeObject[],
    opts: { assumeAbsent?: (o: KubeObject) => boolean } = {},
  ): Promise<PlannedObject[]> {
    const out: PlannedObject[] = [];
    for (const object of objects) {
      if (opts.assumeAbsent?.(object)) {
        out.push({ object, action: 'create', paths: [], detail: 'create (namespace does not exist yet)' });
        continue;
      }
      const live = await this.read(object);
      const after = await this.apply(object, { dryRun: true });
      if (!live) {
        out.push({ object, action: 'create', paths: [], detail: 'create' });
        continue;
      }
      const paths = diffPaths(live, after);
      out.push(
        paths.length === 0
          ? { object, action: 'unchanged', paths, detail: 'unchanged' }
          : { object, action: 'update', paths, detail: `update ${describeChange(live, after, paths)}` },
      );
    }
    return out;
  }

  /**
   * Runs `command` in a container of a running pod (the exec subresource, over a WebSocket), with no stdin and no
   * TTY; rejects when it cannot start or takes longer than `timeoutSeconds`.
   */
  async execInPod(
    namespace: string,
    pod: string,
    container: string,
    command: string[],
    timeoutSeconds: number,
  ): Promise<PodExecResult> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const sink = (into: Buffer[]) =>
      new Writable({
        write(chunk: Buffer, _enc, done) {
          into.push(Buffer.from(chunk));
          done();
        },
      });
    const doing = `exec in pod ${namespace}/${pod}`;
    let exitCode: number | null = null;
    let socket: { close(): void; on(event: 'close', cb: () => void): void } | undefined;
    const finished = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket?.close();
        reject(new ApiError('kubernetes', 0, `${doing}: no end within ${timeoutSeconds} s`));
      }, timeoutSeconds * 1000);
      new Exec(this.kc)
        .exec(namespace, pod, container, command, sink(out), sink(err), null, false, (status) => {
          // Success, or Failure with reason NonZeroExitCode and the code among the details' causes.
          const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
          exitCode = status.status === 'Success' ? 0 : cause?.message ? Number(cause.message) : null;
        })
        .then((ws) => {
          socket = ws;
          ws.on('close', () => {
            clearTimeout(timer);
            resolve();
          });
        })
        .catch((e: unknown) => {
          clearTimeout(timer);
          reject(this.toApiError(e, doing));
        });
    });
    await finished;
    return {
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
      exitCode,
    };
  }

  async namespaceExists(name: string): Promise<boolean> {
    return (await this.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })) !== undefined;
  }

  /** Objects of one kind (in a namespace, or everywhere), each with apiVersion and kind filled in. */
  async listObjects(
    apiVersion: string,
    kind: string,
    namespace?: string,
    labelSelector?: string,
  ): Promise<KubeObject[]> {
    try {
      const list = await this.objects.list(
        apiVersion,
        kind,
        namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        labelSelector,
      );
      // List items come without apiVersion/kind.
      return list.items.map((item) => ({ ...plain(item), apiVersion, kind }));
    } catch (err) {
      throw this.toApiError(err, `list ${kind}${namespace ? ` in ${namespace}` : ''}`);
    }
  }

  /** Every runner-fleet runner pod in the namespace (any executor), running or terminating. */
  async listRunnerPods(namespace: string): Promise<PodView[]> {
    return (await this.listObjects(
      'v1',
      'Pod',
      namespace,
      'app.kubernetes.io/name=gitlab-runner',
    )) as unknown as PodView[];
  }

  /** Our objects in the namespace (label app.kubernetes.io/managed-by=runner-fleet), of the kinds we create. */
  async listManaged(namespace: string): Promise<KubeObject[]> {
    const out: KubeObject[] = [];
    for (const { apiVersion, kind } of PRUNABLE_KINDS) {
      out.push(...(await this.listObjects(apiVersion, kind, namespace, `${MANAGED_BY_LABEL}=${MANAGED_BY}`)));
    }
    // The records Secret is registration's store, never converge's to remove, even if someone labels it.
    return out.filter((o) => !(o.kind === 'Secret' && o.metadata.name === RECORDS_SECRET));
  }

  /** Deletes an object; dependants (a DaemonSet's pods) are collected in the background. Gone already is fine. */
  async delete(obj: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<void> {
    commandTrace.emit?.('cluster', `delete ${describeObject(obj)}`);
    try {
      await this.objects.delete(
        {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace },
        },
        undefined,
        undefined,
        undefined,
        undefined,
        'Background',
      );
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw this.toApiError(err, `delete ${describeObject(obj)}`);
    }
  }

  async listNodes(): Promise<NodeInfo[]> {
    try {
      const list = await this.core.listNode({});
      return list.items.map((n) => {
        const json = plain(n) as KubeObject & {
          status?: { conditions?: { type: string; status: string }[] };
        };
        return {
          name: json.metadata.name,
          labels: json.metadata.labels ?? {},
          ready: json.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
          owners: labelOwners(json),
        };
      });
    } catch (err) {
      throw this.toApiError(err, 'list nodes');
    }
  }

  /**
   * Applies a Node naming exactly `labels` as `manager`: SSA drops a label its last manager stops applying, and leaves
   * it alone when someone else also set it. A JSON merge patch would delete the label whoever set it. Only call for
   * nodes that exist: an apply can create a Node.
   */
  async applyNodeLabels(
    a: { node: string; manager: string; labels: Record<string, string> },
    opts: { dryRun?: boolean } = {},
  ): Promise<void> {
    const obj: KubeObject = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: Object.keys(a.labels).length > 0 ? { name: a.node, labels: a.labels } : { name: a.node },
    };
    await this.apply(obj, { fieldManager: a.manager, dryRun: opts.dryRun });
  }

  /** The DaemonSet's rollout right now (see rolloutState), or undefined when it does not exist. */
  async daemonSetRollout(
    namespace: string,
    name: string,
    nodes: string[],
  ): Promise<RolloutState | undefined> {
    let ds: DaemonSetView & { spec?: { selector?: { matchLabels?: Record<string, string> } } };
    try {
      ds = plain(await this.apps.readNamespacedDaemonSet({ name, namespace })) as typeof ds;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.toApiError(err, `read DaemonSet ${namespace}/${name}`);
    }
    const selector = Object.entries(ds.spec?.selector?.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    let pods: PodView[];
    try {
      pods = (await this.core.listNamespacedPod({ namespace, labelSelector: selector })).items.map(
        (p) => plain(p) as PodView,
      );
    } catch (err) {
      throw this.toApiError(err, `list pods in ${namespace}`);
    }
    const nodeReady = Object.fromEntries((await this.listNodes()).map((n) => [n.name, n.ready]));
    return rolloutState(ds, pods, nodes, nodeReady);
  }

  /**
   * Waits like `kubectl rollout status`, and also until each of `nodes` is Ready with a current Ready pod.
   * On timeout throws RolloutTimeoutError naming the nodes still behind and why.
   */
  /**
   * Waits like `kubectl rollout status`. Returns the last state: done, or (at the deadline) only waiting for old
   * pods to finish their jobs (`onlyDraining`); anything else at the deadline throws RolloutTimeoutError.
   */
  async waitForDaemonSet(
    namespace: string,
    name: string,
    nodes: string[],
    opts: WaitOptions,
  ): Promise<RolloutState> {
    const deadline = Date.now() + opts.timeoutSeconds * 1000;
    const pollMs = opts.pollMs ?? 1000;
    for (;;) {
      const state = await this.daemonSetRollout(namespace, name, nodes);
      if (state?.done) return state;
      if (Date.now() >= deadline) {
        if (state && onlyDraining(state)) return state;
        const id = `${namespace}/${name}`;
        if (!state)
          throw new RolloutTimeoutError(id, opts.timeoutSeconds, nodes, 'the DaemonSet does not exist');
        throw new RolloutTimeoutError(
          id,
          opts.timeoutSeconds,
          state.behind.map((b) => b.node),
          describeBehind(state),
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(0, deadline - Date.now()))));
    }
  }

  /**
   * Every namespaced kind the apiserver can list, from discovery (CRDs included), for `destroy` to check that a
   * namespace holds nothing but ours. `unlisted` names the API groups whose discovery failed (aggregated APIs down).
   */
  async listNamespacedKinds(): Promise<{
    kinds: { apiVersion: string; kind: string }[];
    unlisted: string[];
  }> {
    const kinds: { apiVersion: string; kind: string }[] = [];
    const unlisted: string[] = [];
    const take = (
      apiVersion: string,
      resources: { name: string; kind: string; namespaced: boolean; verbs: string[] }[],
    ) => {
      for (const r of resources)
        if (r.namespaced && !r.name.includes('/') && r.verbs.includes('list'))
          kinds.push({ apiVersion, kind: r.kind });
    };
    try {
      take('v1', (await this.core.getAPIResources()).resources);
      const groups = (await this.kc.makeApiClient(ApisApi).getAPIVersions()).groups;
      const custom = this.kc.makeApiClient(CustomObjectsApi);
      for (const g of groups) {
        const gv = g.preferredVersion?.groupVersion ?? g.versions[0]?.groupVersion;
        if (!gv) continue;
        const [group, version] = gv.split('/');
        try {
          take(gv, (await custom.getAPIResources({ group, version })).resources);
        } catch {
          unlisted.push(gv);
        }
      }
    } catch (err) {
      throw this.toApiError(err, 'discover API resources');
    }
    return { kinds, unlisted };
  }

  /** Reads a Secret's data decoded; undefined when it does not exist. For stores (records), not for reports. */
  async readSecretData(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    const s = await this.read({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace } });
    if (!s) return undefined;
    const data = (s.data ?? {}) as Record<string, string>;
    return Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );
  }

  /** An ApiError reduced to `<reason>: <message>` from the Status body; never headers, never the raw dump. */
  toApiError(err: unknown, doing: string): ApiError {
    if (isTimeout(err)) {
      return new ApiError(
        'kubernetes',
        0,
        redact(
          `${doing}: no answer from ${this.server} within ${this.kc.timeoutSeconds}s (kubernetes.requestTimeout)`,
        ),
      );
    }
    return toApiError(err, doing, this.server);
  }
}

export function toApiError(err: unknown, doing: string, server = ''): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ApiException) {
    let body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        /* plain text */
      }
    }
    const status =
      body && typeof body === 'object' ? (body as { reason?: string; message?: string; code?: number }) : {};
    const reason = status.reason || httpReason(err.code);
    const message = status.message ?? (typeof body === 'string' ? body.trim().slice(0, 200) : '');
    return new ApiError(
      'kubernetes',
      err.code,
      redact(`${doing}: ${reason}${message ? `: ${message}` : ''}`),
    );
  }
  const e = err as { message?: string; code?: string; cause?: { code?: string } };
  const first = (e.message ?? String(err)).split('\n')[0];
  if (err instanceof FetchError || /^E[A-Z]+$/.test(e.code ?? '')) {
    // node-fetch's message repeats the URL; the code (ECONNREFUSED, CERT_HAS_EXPIRED, …) says it all.
    return new ApiError(
      'kubernetes',
      0,
      redact(`${doing}: cannot reach ${server || 'the cluster'} (${e.code ?? e.cause?.code ?? first})`),
    );
  }
  return new ApiError('kubernetes', 0, redact(`${doing}: ${first}`));
}

function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : err instanceof ApiError ? err.status : undefined;
}

function httpReason(code: number): string {
  const reasons: Record<number, string> = {
    400: 'BadRequest',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'NotFound',
    409: 'Conflict',
    410: 'Gone',
    422: 'Invalid',
    429: 'TooManyRequests',
    500: 'InternalError',
    503: 'ServiceUnavailable',
    504: 'Timeout',
  };
  return reasons[code] ?? `HTTP ${code}`;
}

/** Typed client objects (Dates, class instances) → the JSON the server sent, for diffing and storing. */
function plain<T>(obj: T): KubeObject {
  return JSON.parse(JSON.stringify(obj)) as KubeObject;
}

/** Label key under metadata.labels → the managers owning it through an Apply entry of managedFields. */
function labelOwners(obj: KubeObject): Record<string, string[]> {
  const entries = (obj.metadata.managedFields ?? []) as {
    manager?: string;
    operation?: string;
    fieldsV1?: Record<string, unknown>;
  }[];
  const out: Record<string, string[]> = {};
  for (const e of entries) {
    if (!e.manager || e.operation !== 'Apply') continue;
    const labels = ((e.fieldsV1?.['f:metadata'] as Record<string, unknown> | undefined)?.['f:labels'] ??
      {}) as Record<string, unknown>;
    for (const k of Object.keys(labels)) if (k.startsWith('f:')) (out[k.slice(2)] ??= []).push(e.manager);
  }
  return out;
}
