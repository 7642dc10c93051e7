import { describe, expect, it } from 'vitest';
import { describeDisk, freeCell, parseDisk } from './disk.js';

describe('parseDisk', () => {
  it('reads the data root, df, docker system df and the containerd store', () => {
    const d = parseDisk(
      new Map([
        [
          'rf-disk',
          [
            'root=/var/lib/docker',
            'df=30000000 3000000',
            'docker=Images\t1.2GB\t800MB (66%)',
            'docker=Containers\t0B\t0B',
            'docker=Local Volumes\t10MB\t10MB (100%)',
            'docker=Build Cache\t0B\t0B',
            'containerd=524288 /var/snap/microk8s/common/var/lib/containerd',
          ],
        ],
      ]),
    )!;
    expect(d).toMatchObject({
      dockerRoot: '/var/lib/docker',
      totalBytes: 30000000 * 1024,
      freeBytes: 3000000 * 1024,
      docker: { images: { size: '1.2GB', reclaimable: '800MB (66%)' }, volumes: { size: '10MB' } },
      containerd: { bytes: 512 * 1024 * 1024 },
    });
    expect(freeCell(d)).toBe('2.9 GiB (10%)');
    expect(describeDisk(d)).toBe(
      '2.9 GiB free of 28.6 GiB under /var/lib/docker; Docker: images 1.2GB (reclaimable 800MB (66%)), containers 0B (reclaimable 0B), volumes 10MB (reclaimable 10MB (100%)), build cache 0B (reclaimable 0B); containerd images 512.0 MiB (/var/snap/microk8s/common/var/lib/containerd)',
    );
  });

  it('leaves out what the node could not read', () => {
    const d = parseDisk(new Map([['rf-disk', []]]))!;
    expect(freeCell(d)).toBe('?');
    expect(describeDisk(d)).toBe('free space unknown; Docker: Docker did not answer');
    expect(parseDisk(new Map())).toBeUndefined();
  });
});
