// Why placement left a node without the runner it wants: typed here, worded once by describeBlock/describeUnfit.
import { CLUSTER_ARCHITECTURES } from '../kube/render.js';

/** A node that gets no runner pod: nothing the cluster can run is published for its architecture. */
export type UnfitNode = { kind: 'architecture'; arch: string };

/** A node that must not get a new runner this run, because its old one could not be deleted first. */
export type NodeBlock =
  | { kind: 'cluster-runner-not-deleted'; message: string }
  | { kind: 'cluster-not-cleaned'; error: string }
  | { kind: 'host-runner-not-removed'; error: string };

/** Why GitLab deletes a runner of a node placement moved (the planner's own reason is "node left the inventory"). */
export type DeleteCause =
  { kind: 'left-inventory' } | { kind: 'destroy' } | { kind: 'placement'; placement: 'host' | 'cluster' };

export function describeUnfit(u: UnfitNode): string {
  switch (u.kind) {
    case 'architecture':
      return `node architecture ${JSON.stringify(u.arch)}: runner pods run on ${CLUSTER_ARCHITECTURES.join(' and ')} only (gitlab/gitlab-runner publishes no image for it)`;
  }
}

export function describeBlock(b: NodeBlock): string {
  switch (b.kind) {
    case 'cluster-runner-not-deleted':
      return `not attempted: its cluster runner could not be deleted (${b.message})`;
    case 'cluster-not-cleaned':
      return `not attempted: the cluster, which may still run a runner for this node, could not be cleaned up (${b.error})`;
    case 'host-runner-not-removed':
      return b.error;
  }
}

export function describeCause(c: DeleteCause): string {
  switch (c.kind) {
    case 'left-inventory':
      return 'node left the inventory';
    case 'destroy':
      return 'destroy';
    case 'placement':
      return `runners.placement is ${c.placement}`;
  }
}
