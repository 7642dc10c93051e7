// The test images' format code: stable digests, sorted and canonical rootfs plans, and a real layer built twice.
import { chmodSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { blobPath, buildLayer } from './build.js';
import {
  MEDIA_TYPES,
  assembleImage,
  cacheKey,
  ociIndexJson,
  parseRef,
  sha256Digest,
  type LayerBlob,
} from './oci.js';
import {
  busyboxEntries,
  canonicalPath,
  entryInputLine,
  mergeEntries,
  parseLdd,
  skeletonEntries,
  type RootfsEntry,
} from './rootfs.js';

const layer = (n: number): LayerBlob => ({
  digest: sha256Digest(`gz${n}`),
  size: 100 + n,
  diffId: sha256Digest(`tar${n}`),
});

describe('image manifests', () => {
  it('gives the same digests for the same inputs and a Docker schema2 manifest', () => {
    const a = assembleImage(
      'docker',
      { cmd: ['sh'], exposedPorts: ['2376/tcp', '2375/tcp'] },
      [layer(1), layer(2)],
      0,
    );
    const b = assembleImage(
      'docker',
      { exposedPorts: ['2375/tcp', '2376/tcp'], cmd: ['sh'] },
      [layer(1), layer(2)],
      0,
    );
    expect(a.manifest.descriptor.digest).toBe(b.manifest.descriptor.digest);
    const m = JSON.parse(a.manifest.json);
    expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(m.config).toEqual({
      mediaType: MEDIA_TYPES.docker.config,
      digest: a.config.descriptor.digest,
      size: a.config.json.length,
    });
    expect(m.layers.map((l: { digest: string }) => l.digest)).toEqual([layer(1).digest, layer(2).digest]);
    const c = JSON.parse(a.config.json);
    expect(c.created).toBe('1970-01-01T00:00:00Z');
    expect(c.rootfs.diff_ids).toEqual([layer(1).diffId, layer(2).diffId]);
    expect(Object.keys(c.config.ExposedPorts)).toEqual(['2375/tcp', '2376/tcp']);
    expect(a.config.descriptor.digest).toBe(sha256Digest(a.config.json));
  });

  it('changes the digest with SOURCE_DATE_EPOCH, the layers or the flavour', () => {
    const base = assembleImage('docker', {}, [layer(1)], 0).manifest.descriptor.digest;
    expect(assembleImage('docker', {}, [layer(1)], 1700000000).manifest.descriptor.digest).not.toBe(base);
    expect(assembleImage('docker', {}, [layer(2)], 0).manifest.descriptor.digest).not.toBe(base);
    const oci = assembleImage('oci', {}, [layer(1)], 0);
    expect(JSON.parse(oci.manifest.json).layers[0].mediaType).toBe(
      'application/vnd.oci.image.layer.v1.tar+gzip',
    );
  });

  it('names the image for ctr import in the OCI index', () => {
    const img = assembleImage('oci', { entrypoint: ['/pause'] }, [layer(1)], 0);
    const index = JSON.parse(ociIndexJson(img.manifest.descriptor, 'runner-fleet.local/pause:3.10'));
    expect(index.manifests[0].annotations).toEqual({
      'io.containerd.image.name': 'runner-fleet.local/pause:3.10',
      'org.opencontainers.image.ref.name': '3.10',
    });
  });

  it('keys the cache on inputs, not on their order', () => {
    const k = (inputs: string[], packages: Record<string, string>) =>
      cacheKey({ buildVersion: '1', inputs, packages, config: {} });
    expect(k(['a', 'b'], { git: '1', bb: '2' })).toBe(k(['b', 'a'], { bb: '2', git: '1' }));
    expect(k(['a', 'b'], { git: '1' })).not.toBe(k(['a', 'b'], { git: '2' }));
    expect(cacheKey({ buildVersion: '2', inputs: ['a'], packages: {}, config: {} })).not.toBe(k(['a'], {}));
  });

  it('splits references', () => {
    expect(parseRef('198.18.3.2:5000/runner-fleet/docker:27-dind')).toEqual({
      registry: '198.18.3.2:5000',
      repository: 'runner-fleet/docker',
      tag: '27-dind',
    });
    expect(() => parseRef('docker:27')).toThrow();
  });
});

describe('rootfs plans', () => {
  it('puts every file under /usr (merged /usr) and keeps the top-level links', () => {
    expect(canonicalPath('/lib/x86_64-linux-gnu/libc.so.6')).toBe('/usr/lib/x86_64-linux-gnu/libc.so.6');
    expect(canonicalPath('bin/sh')).toBe('/usr/bin/sh');
    expect(canonicalPath('/lib64/ld-linux-x86-64.so.2')).toBe('/usr/lib64/ld-linux-x86-64.so.2');
    expect(canonicalPath('/etc/passwd')).toBe('/etc/passwd');
    const merged = mergeEntries(skeletonEntries());
    expect(merged.find((e) => e.path === '/bin')).toEqual({
      kind: 'symlink',
      path: '/bin',
      target: 'usr/bin',
    });
    expect(merged.find((e) => e.path === '/root')).toEqual({ kind: 'dir', path: '/root', mode: 0o700 });
  });

  it('links busybox applets once each and skips linuxrc', () => {
    const e = busyboxEntries('/bin/busybox', 'linuxrc\nbin/sh\nusr/bin/sh\nusr/bin/wget\n');
    expect(e.map((x) => x.path)).toEqual(['/usr/bin/busybox', '/usr/bin/sh', '/usr/bin/wget']);
  });

  it('reads ldd output', () => {
    const out = [
      '\tlinux-vdso.so.1 (0x00007ffd)',
      '\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)',
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007f)',
    ].join('\n');
    expect(parseLdd(out)).toEqual([
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/lib/x86_64-linux-gnu/libz.so.1',
      '/lib64/ld-linux-x86-64.so.2',
    ]);
  });

  it('sorts entries, later lists win, and a dir never replaces a file', () => {
    const a: RootfsEntry[] = [
      { kind: 'text', path: '/etc/passwd', text: 'a', mode: 0o644 },
      { kind: 'dir', path: '/x', mode: 0o755 },
    ];
    const b: RootfsEntry[] = [
      { kind: 'text', path: '/etc/passwd', text: 'b', mode: 0o644 },
      { kind: 'dir', path: '/etc/passwd', mode: 0o755 },
    ];
    const m = mergeEntries(a, b);
    expect(m.map((e) => e.path)).toEqual(['/etc/passwd', '/x']);
    expect(m[0]).toMatchObject({ kind: 'text', text: 'b' });
  });

  it('names copied files by content in the cache key', () => {
    const e: RootfsEntry = { kind: 'file', path: '/usr/bin/x', from: '/somewhere/x', mode: 0o755 };
    expect(entryInputLine(e, new Map([['/somewhere/x', 'abc']]))).toBe('file /usr/bin/x 755 abc');
    expect(() => entryInputLine(e, new Map())).toThrow(/no sha256/);
  });
});

describe('layer blobs', () => {
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'rf-images-test-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('are byte-identical from two builds whose source files differ only in mtime', async () => {
    const digests: string[] = [];
    for (const mtime of [1_000_000, 2_000_000]) {
      const src = tmp();
      const file = join(src, 'hello');
      writeFileSync(file, '#!/bin/sh\necho hello\n');
      chmodSync(file, 0o755);
      utimesSync(file, mtime, mtime);
      const entries = mergeEntries([
        { kind: 'file', path: '/usr/bin/hello', from: file, mode: 0o755 },
        { kind: 'symlink', path: '/bin', target: 'usr/bin' },
        { kind: 'text', path: '/etc/motd', text: 'hi\n', mode: 0o644 },
        { kind: 'dir', path: '/tmp', mode: 0o1777 },
      ]);
      const store = { root: tmp(), epoch: 0 };
      const blob = await buildLayer(store, 'test', entries);
      digests.push(blob.digest);
      const tar = gunzipSync(readFileSync(blobPath(store, blob.digest)));
      expect(sha256Digest(tar)).toBe(blob.diffId);
      // ustar/gnu header fields: name at 0, mode at 100, uid at 108, gid at 116, mtime at 136, uname at 265
      const names: string[] = [];
      for (let off = 0; off + 512 <= tar.length;) {
        const name = tar
          .subarray(off, off + 100)
          .toString('utf8')
          .replace(/\0.*$/s, '');
        if (!name) break;
        names.push(name);
        expect(parseInt(tar.subarray(off + 108, off + 116).toString(), 8)).toBe(0);
        expect(parseInt(tar.subarray(off + 136, off + 148).toString(), 8)).toBe(0);
        expect(
          tar
            .subarray(off + 265, off + 297)
            .toString()
            .replace(/\0/g, ''),
        ).toBe('');
        const size = parseInt(tar.subarray(off + 124, off + 136).toString(), 8) || 0;
        off += 512 + Math.ceil(size / 512) * 512;
      }
      expect(names).toEqual(['bin', 'etc/', 'etc/motd', 'tmp/', 'usr/', 'usr/bin/', 'usr/bin/hello']);
    }
    expect(digests[0]).toBe(digests[1]);
  });
});
