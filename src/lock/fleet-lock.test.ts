// The fleet lock: who holds a Lease, when it expires, MicroTime as the apiserver parses it, and where it may be taken.
import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors.js';
import type { KubeClient } from '../kube/client.js';
import type { KubeObject } from '../kube/objects.js';
import { acquireFleetLock, judgeLease, LockHeldError, microTime, newHolderIdentity } from './fleet-lock.js';

const now = new Date('2026-12-01T12:00:00.000Z');

describe('judgeLease', () => {
  it('a missing lease, or one without holder (released), is free', () => {
    expect(judgeLease(undefined, 'me', now)).toEqual({ kind: 'free', why: 'absent' });
    expect(judgeLease({ leaseDurationSeconds: 60 }, 'me', now)).toEqual({ kind: 'free', why: 'released' });
  });

  it('a lease renewed within its duration is held, with its expiry', () => {
    expect(
      judgeLease(
        {
          holderIdentity: 'pi-laptop/pid-42/ab12cd34',
          leaseDurationSeconds: 60,
          renewTime: '2026-12-01T11:59:30.000000Z',
        },
        'me',
        now,
      ),
    ).toEqual({
      kind: 'held',
      holder: 'pi-laptop/pid-42/ab12cd34',
      renewedAt: '2026-12-01T11:59:30.000Z',
      expiresAt: '2026-12-01T12:00:30.000Z',
    });
  });

  it('a lease its holder stopped renewing (a killed run) is free once its duration has passed', () => {
    expect(
      judgeLease(
        { holderIdentity: 'old', leaseDurationSeconds: 60, renewTime: '2026-12-01T11:58:59.999999Z' },
        'me',
        now,
      ),
    ).toEqual({ kind: 'free', why: 'expired', previous: 'old' });
    expect(judgeLease({ holderIdentity: 'old', leaseDurationSeconds: 60 }, 'me', now)).toMatchObject({
      kind: 'free',
      why: 'expired',
    });
  });

  it('our own lease is ours', () => {
    expect(
      judgeLease({ holderIdentity: 'me', leaseDurationSeconds: 60, renewTime: microTime(now) }, 'me', now),
    ).toEqual({ kind: 'ours' });
  });
});

describe('helpers', () => {
  it('microTime has exactly six fractional digits (metav1.RFC3339Micro)', () => {
    expect(microTime(new Date('2026-12-01T12:00:00.123Z'))).toBe('2026-12-01T12:00:00.123000Z');
  });

  it('holder identities name the host and pid and differ between calls', () => {
    const a = newHolderIdentity();
    expect(a).toMatch(new RegExp(`/pid-${process.pid}/[0-9a-f]{8}$`));
    expect(newHolderIdentity()).not.toBe(a);
  });

  it('LockHeldError names the holder and when it expires, and is exit 1', () => {
    const e = new LockHeldError(
      'gitlab-runner/runner-fleet-lock',
      'host/pid-1/abcd',
      '2026-12-01T12:00:30.000Z',
    );
    expect(e.exitCode).toBe(1);
    expect(e.message).toContain('host/pid-1/abcd');
    expect(e.message).toContain('expires at 2026-12-01T12:00:30.000Z');
    expect(e.message).toContain('nothing was changed');
  });
});

describe('acquireFleetLock and the namespace', () => {
  /** A cluster whose namespace finished deleting: the Lease create is refused as the apiserver refuses it. */
  function goneNamespace() {
    const applied: string[] = [];
    let namespace = false;
    const client = {
      read: async () => undefined,
      namespaceExists: async () => namespace,
      apply: async (o: KubeObject) => {
        applied.push(`${o.kind}/${o.metadata.name}`);
        namespace = true;
        return o;
      },
      create: async (o: KubeObject) => {
        if (!namespace) throw new ApiError('kubernetes', 404, 'namespaces "gitlab-runner" not found');
        return { ...o, metadata: { ...o.metadata, resourceVersion: '1' } };
      },
      replace: async (o: KubeObject) => o,
    } as unknown as KubeClient;
    return { client, applied };
  }

  it("'existing' (destroy) never brings a deleted namespace back; the Lease create fails instead", async () => {
    const { client, applied } = goneNamespace();
    await expect(acquireFleetLock(client, 'gitlab-runner', { namespace: 'existing' })).rejects.toThrow(
      /not found/,
    );
    expect(applied).toEqual([]);
  });

  it("'create' (apply, the default) creates the namespace for its Lease", async () => {
    const { client, applied } = goneNamespace();
    const lock = await acquireFleetLock(client, 'gitlab-runner', { durationSeconds: 3600 });
    expect(applied).toEqual(['Namespace/gitlab-runner']);
    await lock.release();
  });
});
