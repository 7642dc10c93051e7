// What runner-fleet may take over in a cluster: objects someone else made are refused, never force-applied (and so
// never deleted later), and a namespace whose Pod Security level an admin chose is not lowered behind their back.
import type { KubeClient } from './client.js';
import { MANAGED_BY, MANAGED_BY_LABEL, describeObject, type KubeObject } from './objects.js';

export const POD_SECURITY_ENFORCE = 'pod-security.kubernetes.io/enforce';
/** The level the runner pods need: they mount hostPath volumes (the Docker socket's folder, the runner identity). */
export const RUNNER_POD_SECURITY = 'privileged';
/** Helm marks every object of a release with these; runner-fleet's apply never removes them. */
const HELM_ANNOTATION = 'meta.helm.sh/release-name';

const managers = (o: KubeObject): string[] => [
  ...new Set(((o.metadata.managedFields ?? []) as { manager?: string }[]).map((e) => e.manager ?? '')),
];

/** Who else says it manages `o`, in words; undefined when nothing says so. */
export function otherManager(o: KubeObject): string | undefined {
  const label = o.metadata.labels?.[MANAGED_BY_LABEL];
  const helm = o.metadata.annotations?.[HELM_ANNOTATION];
  if (helm !== undefined) return `Helm release ${helm}`;
  if (label !== undefined && label !== MANAGED_BY) return `${MANAGED_BY_LABEL}: ${label}`;
  if (label === undefined) {
    const who = managers(o).filter((m) => m !== '');
    return who.length > 0 ? `field managers ${who.join(', ')}` : 'someone else (no managed-by label)';
  }
  return undefined;
}

const RESOURCE: Record<string, string> = {
  ServiceAccount: 'serviceaccount',
  Secret: 'secret',
  DaemonSet: 'daemonset',
  ConfigMap: 'configmap',
};

/**
 * Live objects with the names runner-fleet would apply that it did not make. Applying would take them over (force)
 * and destroy would then delete them: refused, each with who manages it and how to go on.
 */
export function foreignObjects(desired: KubeObject[], live: (KubeObject | undefined)[]): string[] {
  const out: string[] = [];
  desired.forEach((want, i) => {
    const o = live[i];
    if (!o || want.kind === 'Namespace') return;
    const who = otherManager(o);
    if (!who) return;
    const ns = o.metadata.namespace ?? '';
    const resource = RESOURCE[o.kind] ?? o.kind.toLowerCase();
    out.push(
      `${describeObject(o)} exists and is not runner-fleet's (${who}): runner-fleet will not take it over. ` +
        `Use another kubernetes.namespace, or remove or rename that object, or adopt it explicitly with ` +
        `\`kubectl -n ${ns} label ${resource} ${o.metadata.name} ${MANAGED_BY_LABEL}=${MANAGED_BY} --overwrite\` ` +
        `(then runner-fleet manages it, and destroy deletes it)`,
    );
  });
  return out;
}

/** A Pod Security level on the namespace that the runner pods do not meet: set by someone, so not overwritten. */
export function podSecurityConflict(ns: KubeObject | undefined): string | undefined {
  const level = ns?.metadata.labels?.[POD_SECURITY_ENFORCE];
  if (level === undefined || level === RUNNER_POD_SECURITY) return undefined;
  const name = ns!.metadata.name;
  return (
    `Namespace ${name} has ${POD_SECURITY_ENFORCE}=${level}: the runner pods mount hostPath volumes (the Docker ` +
    `socket's folder, the runner identity), which only the ${RUNNER_POD_SECURITY} level admits, and runner-fleet ` +
    `does not lower a level someone chose. If runner pods belong there, label it yourself: \`kubectl label ` +
    `namespace ${name} ${POD_SECURITY_ENFORCE}=${RUNNER_POD_SECURITY} --overwrite\`; otherwise use another kubernetes.namespace`
  );
}

/** Reads what would be applied and says what runner-fleet must not touch; empty when all is its own or absent. */
export async function ownershipProblems(client: KubeClient, desired: KubeObject[]): Promise<string[]> {
  const live = await Promise.all(desired.map((o) => client.read(o)));
  const ns = desired.findIndex((o) => o.kind === 'Namespace');
  const security = ns >= 0 ? podSecurityConflict(live[ns]) : undefined;
  return [...(security ? [security] : []), ...foreignObjects(desired, live)];
}
