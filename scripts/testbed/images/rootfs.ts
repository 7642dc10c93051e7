// Pure description of an image layer's file tree: what goes where, from which host file, with which mode.
// The builder (build.ts) materialises these entries; their input lines are what the cache key hashes.
import { posix } from 'node:path';

export type RootfsEntry =
  | { kind: 'dir'; path: string; mode: number }
  /** a copy of a host file (symlinks on the host are followed) */
  | { kind: 'file'; path: string; from: string; mode: number }
  | { kind: 'text'; path: string; text: string; mode: number }
  | { kind: 'symlink'; path: string; target: string };

export type EntryKind = RootfsEntry['kind'];

/**
 * The images are merged-/usr like Debian 12: /bin, /sbin, /lib, /lib64 are symlinks into /usr, and every file lands
 * under /usr. A later layer must never write below one of those symlinks (layer appliers do not follow them), so
 * every path is canonicalised before it becomes an entry.
 */
export const MERGED_USR_DIRS = ['bin', 'sbin', 'lib', 'lib64'] as const;

export function canonicalPath(p: string): string {
  const n = posix.normalize(posix.isAbsolute(p) ? p : `/${p}`);
  for (const d of MERGED_USR_DIRS) if (n === `/${d}` || n.startsWith(`/${d}/`)) return `/usr${n}`;
  return n;
}

/** The skeleton every image with a shell shares: merged-/usr links, /tmp, /etc basics, root and nobody. */
export function skeletonEntries(): RootfsEntry[] {
  const entries: RootfsEntry[] = MERGED_USR_DIRS.map((d) => ({
    kind: 'symlink',
    path: `/${d}`,
    target: `usr/${d}`,
  }));
  for (const d of [
    '/usr/bin',
    '/usr/sbin',
    '/usr/lib',
    '/usr/lib64',
    '/usr/local/bin',
    '/etc',
    '/home',
    '/var',
    '/run',
    '/proc',
    '/sys',
    '/dev',
  ])
    entries.push({ kind: 'dir', path: d, mode: 0o755 });
  entries.push({ kind: 'dir', path: '/root', mode: 0o700 }, { kind: 'dir', path: '/tmp', mode: 0o1777 });
  entries.push({ kind: 'symlink', path: '/var/run', target: '../run' });
  entries.push({
    kind: 'text',
    path: '/etc/passwd',
    mode: 0o644,
    text: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  });
  entries.push({ kind: 'text', path: '/etc/group', mode: 0o644, text: 'root:x:0:\nnogroup:x:65534:\n' });
  // glibc programs (git, curl) resolve names through NSS; without this file the order is not the usual one.
  entries.push({
    kind: 'text',
    path: '/etc/nsswitch.conf',
    mode: 0o644,
    text: 'passwd: files\ngroup: files\nhosts: files dns\n',
  });
  // dockerd and others log a warning per start without one.
  entries.push({
    kind: 'text',
    path: '/usr/lib/os-release',
    mode: 0o644,
    text: 'NAME="runner-fleet test image"\nID=runner-fleet\nPRETTY_NAME="runner-fleet test image (busybox + Debian 12 binaries)"\n',
  });
  entries.push({ kind: 'symlink', path: '/etc/os-release', target: '../usr/lib/os-release' });
  return entries;
}

/**
 * Busybox and a link per applet, from `busybox --list-full` output (`usr/bin/wget`, `bin/sh`, ...). Links point at
 * /usr/bin/busybox by absolute path, so they work from any directory.
 */
export function busyboxEntries(busyboxPath: string, listFull: string): RootfsEntry[] {
  const entries: RootfsEntry[] = [{ kind: 'file', path: '/usr/bin/busybox', from: busyboxPath, mode: 0o755 }];
  const seen = new Set(['/usr/bin/busybox']);
  for (const line of listFull.split('\n')) {
    const rel = line.trim();
    if (!rel.includes('/')) continue; // `linuxrc` belongs at / only on an initramfs
    const path = canonicalPath(rel);
    if (seen.has(path)) continue;
    seen.add(path);
    entries.push({ kind: 'symlink', path, target: '/usr/bin/busybox' });
  }
  return entries;
}

/** Shared-library paths from `ldd` output (`libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)`, the loader line). */
export function parseLdd(output: string): string[] {
  const libs = new Set<string>();
  for (const line of output.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.add(m[1]);
  }
  return [...libs].sort();
}

/**
 * Later entries win on the same path (an image's own /etc/passwd over the skeleton's); a dir entry never replaces a
 * file or link. Sorted by path so the plan, and so the cache key, do not depend on the order specs were written in.
 */
export function mergeEntries(...lists: RootfsEntry[][]): RootfsEntry[] {
  const byPath = new Map<string, RootfsEntry>();
  for (const list of lists)
    for (const e of list) {
      const path = canonicalPathKeepingTopLinks(e);
      const prev = byPath.get(path);
      if (e.kind === 'dir' && prev && prev.kind !== 'dir') continue;
      byPath.set(path, { ...e, path });
    }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The merged-/usr links themselves (/bin → usr/bin) keep their path; everything else is canonicalised. */
function canonicalPathKeepingTopLinks(e: RootfsEntry): string {
  if (e.kind === 'symlink' && (MERGED_USR_DIRS as readonly string[]).includes(e.path.replace(/^\//, '')))
    return e.path;
  return canonicalPath(e.path);
}

/**
 * One line per entry for the cache key. A copied file is named by its content hash (`hashes`, from the builder),
 * not by its host path, so a moved-but-identical binary keeps the cache.
 */
export function entryInputLine(e: RootfsEntry, hashes: ReadonlyMap<string, string>): string {
  switch (e.kind) {
    case 'dir':
      return `dir ${e.path} ${e.mode.toString(8)}`;
    case 'file': {
      const h = hashes.get(e.from);
      if (!h) throw new Error(`no sha256 for ${e.from}`);
      return `file ${e.path} ${e.mode.toString(8)} ${h}`;
    }
    case 'text':
      return `text ${e.path} ${e.mode.toString(8)} ${JSON.stringify(e.text)}`;
    case 'symlink':
      return `symlink ${e.path} ${e.target}`;
  }
}

/** Host files an entry list copies (each must be hashed before the key can be computed). */
export function sourceFiles(entries: readonly RootfsEntry[]): string[] {
  return [...new Set(entries.flatMap((e) => (e.kind === 'file' ? [e.from] : [])))].sort();
}
