// What render deletes in GitLab, and when: a removed node's runner once no runner pod of ours is left on that node,
// a replaced runner once the cluster's config Secret gives its node the new token. render never waits for Flux.
import type { KubeClient } from '../kube/client.js';
import { CONFIG_SECRET, configKey } from '../kube/objects.js';
import type { HeldDelete } from '../runners/reconcile.js';

/** What the cluster shows when render decides: the inventory, the nodes that still have a pod, the live Secret. */
export interface RetireScene {
  inventory: ReadonlySet<string>;
  /** nodes where a runner pod of ours is still there (running, or finishing its jobs) */
  podsLeft: ReadonlySet<string>;
  /** the config Secret as the cluster holds it now (decoded); undefined when it is missing */
  liveConfig: Record<string, string> | undefined;
}

export type RetireVerdict = { now: true } | { now: false; why: string };

/**
 * Whether a held delete may run now. Deleting a runner under its pod fails the pod's running job, and a pod that
 * still polls with a deleted token gets 403s: so a removed node's runner goes once its pod is gone, and a replaced
 * runner once the cluster's Secret (what Flux applied) no longer gives its node the old token or manager.
 */
export function retireVerdict(h: HeldDelete, scene: RetireScene): RetireVerdict {
  if (!scene.inventory.has(h.node)) {
    return scene.podsLeft.has(h.node)
      ? {
          now: false,
          why: `the runner pod on ${h.node} has not gone yet (it finishes its running jobs first)`,
        }
      : { now: true };
  }
  const stale =
    h.rec.mode === 'shared'
      ? scene.liveConfig?.[`${h.node}.system_id`] === h.rec.systemId
      : scene.liveConfig?.[configKey(h.node)]?.includes(h.rec.token) !== false;
  return stale
    ? {
        now: false,
        why: `Secret ${CONFIG_SECRET} in the cluster still gives ${h.node} the old runner (the controller has not applied the new one yet)`,
      }
    : { now: true };
}

/** Nodes among `nodes` where a runner pod of this fleet is still there, running or terminating. */
export async function nodesWithPods(
  client: KubeClient,
  namespace: string,
  nodes: readonly string[],
): Promise<Set<string>> {
  const pods = await client.listRunnerPods(namespace);
  return new Set(pods.map((p) => p.spec?.nodeName).filter((n): n is string => !!n && nodes.includes(n)));
}

/**
 * Waits until no runner pod of ours is left on `nodes` (their label is gone: each pod stops taking jobs and finishes
 * the running ones), at most `timeoutSeconds`. Returns the nodes that still have one.
 */
export async function waitForPodsGone(
  client: KubeClient,
  namespace: string,
  nodes: readonly string[],
  opts: { timeoutSeconds: number; pollMs?: number },
): Promise<Set<string>> {
  const deadline = Date.now() + opts.timeoutSeconds * 1000;
  for (;;) {
    const left = nodes.length > 0 ? await nodesWithPods(client, namespace, nodes) : new Set<string>();
    if (left.size === 0 || Date.now() >= deadline) return left;
    await new Promise((r) =>
      setTimeout(r, Math.min(opts.pollMs ?? 1000, Math.max(0, deadline - Date.now()))),
    );
  }
}
