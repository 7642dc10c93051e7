// Names, labels and field managers runner-fleet uses in a cluster, and the plain object shape passed around.
import type { Executor } from '../inventory/types.js';
import { ANY_EXECUTOR_HAS_ROLE } from '../executors.js';

/** A Kubernetes object as plain JSON: what the templates render and what the API returns. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'runner-fleet';
export const PART_OF_LABEL = 'app.kubernetes.io/part-of';

/** Field manager of everything converge applies. */
export const FIELD_MANAGER = 'runner-fleet';
/**
 * Field manager of node labels, so that removing them never touches what others set on a Node. Versions before
 * per-fleet managers used this name for every fleet; each fleet now has its own (nodeLabelManager).
 */
export const NODE_LABEL_MANAGER = 'runner-fleet-node-label';
export const LEGACY_NODE_LABEL_MANAGER = NODE_LABEL_MANAGER;
/** One fleet's node-label manager: which fleet set a label is then read from the Node itself. */
export const nodeLabelManager = (namespace: string) => `${NODE_LABEL_MANAGER}/${namespace}`;
/** Field manager of the records Secret, written by registration rather than by converge. */
export const RECORDS_MANAGER = 'runner-fleet-records';

export const CONFIG_SECRET = 'runner-fleet-config';
/**
 * On the config Secret: lets the Sealed Secrets controller take over a Secret it did not create (apply writes the
 * Secret before any SealedSecret exists; without this the controller refuses it, "already exists and is not
 * managed by SealedSecret", pkg/controller/controller.go). kubeseal copies it into the SealedSecret's template, so
 * the Secret the controller writes keeps it.
 */
export const SEALED_SECRETS_MANAGED = 'sealedsecrets.bitnami.com/managed';
export const RECORDS_SECRET = 'runner-fleet-records';
/** the fleet lock's Lease (src/lock/fleet-lock.ts) */
export const LOCK_LEASE = 'runner-fleet-lock';

export function daemonSetName(executor: Executor): string {
  return `gitlab-runner-${executor}`;
}

/** The Secret key holding one node's config.toml. */
export function configKey(node: string): string {
  return `${node}.config.toml`;
}

/** Namespaced kinds converge creates, hence may prune. ConfigMap is listed because no version ever may hold one. */
export const PRUNABLE_KINDS: readonly { apiVersion: string; kind: string }[] = [
  { apiVersion: 'apps/v1', kind: 'DaemonSet' },
  { apiVersion: 'v1', kind: 'Secret' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'ServiceAccount' },
  // From the executor registry: once any executor's runner has a Role, a switch to another executor prunes it.
  ...(ANY_EXECUTOR_HAS_ROLE
    ? [
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role' },
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' },
      ]
    : []),
];

/** `DaemonSet gitlab-runner/gitlab-runner-dood`, `Namespace gitlab-runner` */
export function describeObject(o: Pick<KubeObject, 'kind' | 'metadata'>): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

/** Identity of an object for set operations (prune): group/version does not matter, kind does. */
export function objectKey(o: Pick<KubeObject, 'kind' | 'metadata'>): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}
