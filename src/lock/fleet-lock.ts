// The fleet-wide lock of `apply`: a coordination.k8s.io/v1 Lease in the runner namespace, held for the whole run.
// Two runs at once would both create runners and only one set would reach the records.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ApiError, RunFailedError } from '../errors.js';
import type { KubeClient } from '../kube/client.js';
import { LOCK_LEASE, MANAGED_BY, PART_OF_LABEL, RECORDS_MANAGER, type KubeObject } from '../kube/objects.js';
import type { Logger } from '../log.js';

export const LEASE_NAME = LOCK_LEASE;
/** How long a holder that stops renewing (killed, frozen, network gone) keeps the lock. */
export const DEFAULT_LEASE_SECONDS = 60;

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export type LeaseJudgement =
  | { kind: 'free'; why: 'absent' | 'released' | 'expired'; previous?: string }
  | { kind: 'ours' }
  | { kind: 'held'; holder: string; renewedAt: string; expiresAt: string };

/**
 * Pure: may `identity` take the lease now? A lease without holder is free (a release), and so is one whose holder
 * has not renewed within its own leaseDurationSeconds (a killed run). Times are the renewer's clock, as client-go's
 * leader election reads them; a clock skew between machines shortens or lengthens the wait by that much.
 */
export function judgeLease(spec: LeaseSpec | undefined, identity: string, now: Date): LeaseJudgement {
  if (!spec) return { kind: 'free', why: 'absent' };
  if (!spec.holderIdentity) return { kind: 'free', why: 'released' };
  if (spec.holderIdentity === identity) return { kind: 'ours' };
  const renewed = Date.parse(spec.renewTime ?? spec.acquireTime ?? '');
  const duration = (spec.leaseDurationSeconds ?? DEFAULT_LEASE_SECONDS) * 1000;
  if (!Number.isFinite(renewed) || renewed + duration <= now.getTime())
    return { kind: 'free', why: 'expired', previous: spec.holderIdentity };
  return {
    kind: 'held',
    holder: spec.holderIdentity,
    renewedAt: new Date(renewed).toISOString(),
    expiresAt: new Date(renewed + duration).toISOString(),
  };
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits (the apiserver refuses JavaScript's three). */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** host + pid + random: two runs on one machine, or a pid reused after a crash, never share an identity. */
export function newHolderIdentity(): string {
  return `${hostname()}/pid-${process.pid}/${randomBytes(4).toString('hex')}`;
}

/** Another run holds the lock: exit 1, before anything was changed. */
export class LockHeldError extends RunFailedError {
  constructor(
    readonly where: string,
    readonly holder: string,
    readonly expiresAt: string,
  ) {
    super(
      `another runner-fleet run holds the fleet lock (Lease ${where}): ${holder}, which expires at ${expiresAt} unless that run renews it; ` +
        "nothing was changed. Wait for it to finish (a killed run's lock expires by itself), then run again",
    );
    this.name = 'LockHeldError';
  }
}

export interface FleetLock {
  readonly identity: string;
  /** why the lock was lost during the run (someone took it over, or renewing failed past its expiry), if it was */
  lost(): string | undefined;
  /** stops renewing and deletes the Lease if it is still ours; never throws */
  release(): Promise<void>;
}

/**
 * apply creates the namespace for its Lease (as the records Secret would); destroy must not: a namespace gone (or
 * terminating) between its check and the Lease is one destroy has nothing left to lock in, not one to bring back.
 */
export type LockNamespace = 'create' | 'existing';

export interface LockOptions {
  /** default 'create' */
  namespace?: LockNamespace;
  durationSeconds?: number;
  identity?: string;
  now?: () => Date;
  log?: Logger;
}

const isStatus = (err: unknown, status: number) => err instanceof ApiError && err.status === status;

/**
 * Takes the Lease `namespace/runner-fleet-lock` (creating the namespace if needed, as the records Secret would),
 * renews it every third of its duration, and hands back a release. Fails fast with LockHeldError naming the
 * holder and its expiry; any other failure (cluster unreachable, frozen, forbidden) is thrown as it is.
 */
export async function acquireFleetLock(
  client: KubeClient,
  namespace: string,
  opts: LockOptions = {},
): Promise<FleetLock> {
  const identity = opts.identity ?? newHolderIdentity();
  const durationSeconds = opts.durationSeconds ?? DEFAULT_LEASE_SECONDS;
  const now = opts.now ?? (() => new Date());
  const where = `${namespace}/${LEASE_NAME}`;
  const ref = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: LEASE_NAME, namespace },
  };
  const labels = { [PART_OF_LABEL]: MANAGED_BY, 'app.kubernetes.io/component': 'lock' };

  const take = async (): Promise<KubeObject> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const live = await client.read(ref);
      const spec = live?.spec as LeaseSpec | undefined;
      const j = judgeLease(spec, identity, now());
      if (j.kind === 'held') throw new LockHeldError(where, j.holder, j.expiresAt);
      const t = microTime(now());
      const wanted: LeaseSpec = {
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        acquireTime: t,
        renewTime: t,
        leaseTransitions: (spec?.leaseTransitions ?? 0) + (spec?.holderIdentity ? 1 : 0),
      };
      if (j.kind === 'free' && j.why === 'expired')
        opts.log?.warn(
          'cluster',
          `taking over the fleet lock ${where}: its holder ${j.previous} stopped renewing it (expired)`,
        );
      try {
        if (!live) {
          if ((opts.namespace ?? 'create') === 'create' && !(await client.namespaceExists(namespace))) {
            await client.apply(
              {
                apiVersion: 'v1',
                kind: 'Namespace',
                metadata: { name: namespace, labels: { [PART_OF_LABEL]: MANAGED_BY } },
              },
              { fieldManager: RECORDS_MANAGER },
            );
          }
          return await client.create(
            { ...ref, metadata: { ...ref.metadata, labels }, spec: wanted },
            { fieldManager: RECORDS_MANAGER },
          );
        }
        // The resourceVersion makes this a compare-and-swap: of two runs that both saw it free, one gets 409.
        return await client.replace(
          {
            ...ref,
            metadata: { ...ref.metadata, labels, resourceVersion: live.metadata.resourceVersion },
            spec: wanted,
          },
          { fieldManager: RECORDS_MANAGER },
        );
      } catch (err) {
        // Someone else wrote it between our read and write: read again and judge who holds it now.
        if (!isStatus(err, 409)) throw err;
      }
    }
    throw new RunFailedError(
      `could not take the fleet lock (Lease ${where}): it kept changing under us; another run is starting`,
    );
  };

  let current = await take();
  let lostWhy: string | undefined;
  let lastRenew = now().getTime();
  let renewing: Promise<void> = Promise.resolve();
  let released = false;

  const renew = async () => {
    if (lostWhy || released) return;
    const spec = { ...(current.spec as LeaseSpec), renewTime: microTime(now()) };
    try {
      current = await client.replace({ ...current, spec }, { fieldManager: RECORDS_MANAGER });
      lastRenew = now().getTime();
    } catch (err) {
      if (isStatus(err, 409) || isStatus(err, 404)) {
        const live = await client.read(ref).catch(() => undefined);
        const holder = (live?.spec as LeaseSpec | undefined)?.holderIdentity;
        lostWhy = `the fleet lock ${where} was taken over by ${holder ?? 'nobody (deleted)'} while this run held it`;
      } else if (now().getTime() - lastRenew >= durationSeconds * 1000) {
        lostWhy = `the fleet lock ${where} expired: it could not be renewed for ${durationSeconds}s (${err instanceof Error ? err.message : String(err)})`;
      }
      if (lostWhy) opts.log?.error('cluster', lostWhy);
    }
  };
  const timer = setInterval(
    () => {
      renewing = renewing.then(renew);
    },
    Math.max(1000, (durationSeconds * 1000) / 3),
  );
  // Renewing must not keep a finished process alive if a caller forgot to release.
  timer.unref();

  return {
    identity,
    lost: () => lostWhy,
    async release() {
      clearInterval(timer);
      await renewing;
      if (lostWhy || released) return;
      released = true;
      try {
        // Only our version: a lock someone took over since is theirs to keep.
        await client.deleteAt(ref, String(current.metadata.resourceVersion));
      } catch (err) {
        opts.log?.warn(
          'cluster',
          `could not release the fleet lock ${where} (${err instanceof Error ? err.message : String(err)}); it expires by itself within ${durationSeconds}s`,
        );
      }
    },
  };
}
