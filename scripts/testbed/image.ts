// The tiny test image: Debian's static busybox plus its applet links, as a tarball for `docker import`.
import { chmodSync, copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sh } from './procs.js';

const BUSYBOX = '/bin/busybox';

/** Builds `tarPath` (once) from a rootfs next to it. */
export async function buildImageTar(tarPath: string): Promise<void> {
  if (existsSync(tarPath)) return;
  const rootfs = join(dirname(tarPath), 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  for (const d of ['etc', 'tmp', 'proc', 'sys', 'dev']) mkdirSync(join(rootfs, d), { recursive: true });
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = (await sh`${BUSYBOX} --list`).stdout
    .split('\n')
    .filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
  for (const a of applets)
    if (!existsSync(join(rootfs, 'bin', a))) symlinkSync('busybox', join(rootfs, 'bin', a));
  await sh`tar -C ${rootfs} --owner=0 --group=0 --numeric-owner -cf ${`${tarPath}.tmp`} .`;
  await sh`mv ${`${tarPath}.tmp`} ${tarPath}`;
}
