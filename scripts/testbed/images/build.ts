// Side effects of building the test images: reading host files (ldd, sha256, dpkg), writing layer blobs, OCI
// layouts and archives into the cache. The only images module that runs local processes (through zx).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  chmod,
  copyFile,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { $ } from 'zx';
import {
  type AssembledImage,
  type Digest,
  type LayerBlob,
  OCI_LAYOUT_JSON,
  digestHex,
  ociIndexJson,
  sha256Digest,
} from './oci.js';
import { type RootfsEntry, canonicalPath, entryInputLine, parseLdd, sourceFiles } from './rootfs.js';

const sh = $({ quiet: true });

/** Where built things live: one content store of blobs shared by every image, plus per-layer records. */
export interface BuildStore {
  root: string;
  /** SOURCE_DATE_EPOCH or 0: every mtime and the images' `created` */
  epoch: number;
}

export const blobsDir = (s: BuildStore): string => join(s.root, 'blobs', 'sha256');
export const blobPath = (s: BuildStore, d: Digest): string => join(blobsDir(s), digestHex(d));

/** Writes through a temp file and a rename, so a crash or a concurrent build never leaves half a file behind. */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

/**
 * Remembers, across builds, each host file's sha256 (by path, size, mtime and inode) and each ELF file's libraries
 * (by content), so a warm build neither re-reads hundreds of MB nor runs ldd on every xtables module again.
 */
export class FileFacts {
  private hashes = new Map<string, string>();
  private libs = new Map<string, string[]>();
  private dirty = false;

  private constructor(private readonly file: string) {}

  static async load(file: string): Promise<FileFacts> {
    const f = new FileFacts(file);
    try {
      const raw = JSON.parse(await readFile(file, 'utf8')) as {
        hashes: Record<string, string>;
        libs: Record<string, string[]>;
      };
      f.hashes = new Map(Object.entries(raw.hashes));
      f.libs = new Map(Object.entries(raw.libs));
    } catch {
      // first build, or an unreadable file: start empty
    }
    return f;
  }

  async sha256(path: string): Promise<string> {
    const st = await stat(path);
    const id = `${path}|${st.size}|${st.mtimeMs}|${st.ino}`;
    const known = this.hashes.get(id);
    if (known) return known;
    const h = await sha256File(path);
    this.hashes.set(id, h);
    this.dirty = true;
    return h;
  }

  /** Shared libraries of an ELF file, as ldd resolves them on this machine; static programs and non-ELF files have none. */
  async libraries(path: string): Promise<string[]> {
    if (!(await isElf(path))) return [];
    const id = await this.sha256(path);
    const known = this.libs.get(id);
    if (known) return known;
    const r = await sh({ nothrow: true })`ldd ${path}`;
    // ldd exits 1 for static binaries ("not a dynamic executable"): nothing to copy.
    const libs = r.exitCode === 0 ? parseLdd(r.stdout) : [];
    this.libs.set(id, libs);
    this.dirty = true;
    return libs;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    await writeFileAtomic(
      this.file,
      JSON.stringify({ hashes: Object.fromEntries(this.hashes), libs: Object.fromEntries(this.libs) }),
    );
    this.dirty = false;
  }
}

/** sha256 of every host file the entries copy, keyed by host path. */
export async function hashSources(
  facts: FileFacts,
  entries: readonly RootfsEntry[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of sourceFiles(entries)) out.set(f, await facts.sha256(f));
  return out;
}

async function isElf(path: string): Promise<boolean> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return false;
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    await fh.close();
  }
}

/** The shared libraries of ELF files (each once, sorted). */
export async function sharedLibraries(facts: FileFacts, paths: readonly string[]): Promise<string[]> {
  const libs = new Set<string>();
  for (const p of paths) for (const l of await facts.libraries(p)) libs.add(l);
  return [...libs].sort();
}

/** `Package Version` of the Debian packages that are installed; absent ones are left out. */
export async function debianVersions(packages: readonly string[]): Promise<Record<string, string>> {
  const r = await sh({
    nothrow: true,
  })`dpkg-query -W -f ${'${Package} ${db:Status-Status} ${Version}\n'} ${packages}`;
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const [name, status, version] = line.split(' ');
    if (name && status === 'installed' && version) out[name] = version;
  }
  return out;
}

export async function busyboxListFull(busybox: string): Promise<string> {
  return (await sh`${busybox} --list-full`).stdout;
}

/** A host file copied into the image at its canonical path, keeping the host's permission bits. */
export async function fileEntry(
  from: string,
  path = canonicalPath(from),
  mode?: number,
): Promise<RootfsEntry> {
  return { kind: 'file', path, from, mode: mode ?? (await stat(from)).mode & 0o7777 };
}

/** A host directory tree, links kept as links (git-core's builtins are links to `git`). */
export async function treeEntries(dir: string): Promise<RootfsEntry[]> {
  const out: RootfsEntry[] = [
    { kind: 'dir', path: canonicalPath(dir), mode: (await stat(dir)).mode & 0o7777 },
  ];
  for (const name of (await readdir(dir)).sort()) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isSymbolicLink()) out.push({ kind: 'symlink', path: canonicalPath(p), target: await readlink(p) });
    else if (st.isDirectory()) out.push(...(await treeEntries(p)));
    else if (st.isFile()) out.push(await fileEntry(p));
  }
  return out;
}

/** ELF programs with their libraries (each library at its canonical path, symlinks on the host followed). */
export async function programEntries(
  facts: FileFacts,
  programs: readonly { from: string; path?: string }[],
): Promise<RootfsEntry[]> {
  const out: RootfsEntry[] = [];
  for (const p of programs) out.push(await fileEntry(p.from, p.path));
  for (const lib of await sharedLibraries(
    facts,
    programs.map((p) => p.from),
  ))
    out.push(await fileEntry(lib, canonicalPath(lib), 0o755));
  return out;
}

/** The input lines the cache key hashes for a layer. */
export function layerInputs(entries: readonly RootfsEntry[], hashes: ReadonlyMap<string, string>): string[] {
  return entries.map((e) => entryInputLine(e, hashes));
}

async function materialise(stage: string, entries: readonly RootfsEntry[]): Promise<void> {
  const dirs = new Map<string, number>();
  const ensureParent = async (p: string): Promise<void> => {
    const parent = dirname(p);
    if (parent === '/' || dirs.has(parent)) return;
    await ensureParent(parent);
    await mkdir(join(stage, parent), { recursive: true });
    dirs.set(parent, 0o755);
  };
  for (const e of entries) {
    await ensureParent(e.path);
    const target = join(stage, e.path);
    switch (e.kind) {
      case 'dir':
        await mkdir(target, { recursive: true });
        dirs.set(e.path, e.mode);
        break;
      case 'file':
        await copyFile(e.from, target);
        await chmod(target, e.mode);
        break;
      case 'text':
        await writeFile(target, e.text);
        await chmod(target, e.mode);
        break;
      case 'symlink':
        await symlink(e.target, target);
        break;
    }
  }
  // Directory modes last (a 0700 /root must not stop anything being written below it) and never from the umask.
  for (const [d, mode] of dirs) await chmod(join(stage, d), mode);
}

/**
 * Builds one layer blob (or finds it in the store by its key): the entries as a tar with sorted names, one mtime,
 * uid/gid 0 and no user names, gzip-compressed without a timestamp, so the same inputs give the same digest.
 */
export async function buildLayer(
  store: BuildStore,
  key: string,
  entries: readonly RootfsEntry[],
): Promise<LayerBlob> {
  const record = join(store.root, 'layers', `${key}.json`);
  if (await exists(record)) {
    const layer = JSON.parse(await readFile(record, 'utf8')) as LayerBlob;
    if (await exists(blobPath(store, layer.digest))) return layer;
  }
  const work = join(store.root, 'tmp', `${key}.${process.pid}`);
  await rm(work, { recursive: true, force: true });
  const stage = join(work, 'rootfs');
  await mkdir(stage, { recursive: true });
  try {
    await materialise(stage, entries);
    const top = (await readdir(stage)).sort();
    const tarPath = join(work, 'layer.tar');
    await sh`tar --sort=name --format=gnu --mtime=${`@${store.epoch}`} --owner=0 --group=0 --numeric-owner -C ${stage} -cf ${tarPath} -- ${top}`;
    const layer = await compressLayer(store, tarPath, join(work, 'layer.tar.gz'));
    await writeFileAtomic(record, JSON.stringify(layer));
    return layer;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** gzip a layer tar into the store; the tar's digest is the diff_id, the gzip's the blob digest. */
async function compressLayer(store: BuildStore, tarPath: string, tmpGz: string): Promise<LayerBlob> {
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let size = 0;
  const tapTar = new Transform({
    transform(chunk: Buffer, _enc, done) {
      diff.update(chunk);
      done(null, chunk);
    },
  });
  const tapGz = new Transform({
    transform(chunk: Buffer, _enc, done) {
      blob.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  // Node's gzip header carries mtime 0 and no file name: the bytes depend only on the input and zlib.
  await pipeline(
    createReadStream(tarPath),
    tapTar,
    createGzip({ level: 6 }),
    tapGz,
    createWriteStream(tmpGz),
  );
  const digest: Digest = `sha256:${blob.digest('hex')}`;
  const dest = blobPath(store, digest);
  await mkdir(dirname(dest), { recursive: true });
  await rename(tmpGz, dest);
  return { digest, size, diffId: `sha256:${diff.digest('hex')}` };
}

/** Puts an image's config and manifest blobs into the store (its layers are there already). */
export async function storeImageBlobs(store: BuildStore, img: AssembledImage): Promise<void> {
  for (const b of [img.config, img.manifest]) {
    if (sha256Digest(b.json) !== b.descriptor.digest)
      throw new Error(`digest mismatch for ${b.descriptor.digest}`);
    const p = blobPath(store, b.descriptor.digest);
    if (!(await exists(p))) await writeFileAtomic(p, b.json);
  }
}

export function imageBlobDigests(img: AssembledImage): Digest[] {
  return [img.config.descriptor.digest, ...img.layers.map((l) => l.digest), img.manifest.descriptor.digest];
}

/**
 * An OCI image layout directory for one image (oci-layout, index.json, blobs/ hard-linked from the store), usable by
 * `skopeo copy oci:DIR` or `ctr images import` once tarred. Replaced whole, through a rename.
 */
export async function writeLayout(
  store: BuildStore,
  dir: string,
  img: AssembledImage,
  ref: string,
): Promise<void> {
  const tmp = `${dir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'blobs', 'sha256'), { recursive: true });
  for (const d of imageBlobDigests(img)) {
    const dest = join(tmp, 'blobs', 'sha256', digestHex(d));
    await link(blobPath(store, d), dest).catch(async () => copyFile(blobPath(store, d), dest));
  }
  await writeFile(join(tmp, 'oci-layout'), OCI_LAYOUT_JSON);
  await writeFile(join(tmp, 'index.json'), ociIndexJson(img.manifest.descriptor, ref));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}

/** The layout as one tar (what `ctr -n k8s.io images import` reads), with the same fixed mtimes and owners. */
export async function writeOciArchive(
  store: BuildStore,
  archive: string,
  img: AssembledImage,
  ref: string,
): Promise<void> {
  const layout = `${archive}.layout`;
  await writeLayout(store, layout, img, ref);
  try {
    const tmp = `${archive}.${process.pid}.tmp`;
    await sh`tar --sort=name --format=gnu --mtime=${`@${store.epoch}`} --owner=0 --group=0 --numeric-owner --hard-dereference -C ${layout} -cf ${tmp} -- blobs index.json oci-layout`;
    await rename(tmp, archive);
  } finally {
    await rm(layout, { recursive: true, force: true });
  }
}

/** Runs a Go build (CGO off, this toolchain only, the cache's module and build caches) of a main package. */
export async function goBuild(opts: { cacheRoot: string; dir: string; out: string }): Promise<void> {
  await mkdir(dirname(opts.out), { recursive: true });
  const tmp = `${opts.out}.${process.pid}.tmp`;
  const env = {
    ...process.env,
    CGO_ENABLED: '0',
    GOTOOLCHAIN: 'local',
    GOFLAGS: '-mod=mod',
    GOOS: 'linux',
    GOARCH: 'amd64',
    GOMODCACHE: process.env.GOMODCACHE ?? join(opts.cacheRoot, 'gomod'),
    GOCACHE: process.env.GOCACHE ?? join(opts.cacheRoot, 'gobuild'),
  };
  // -buildid= and -trimpath: the same source and toolchain give the same bytes, so the image digest is stable.
  await $({ quiet: true, cwd: opts.dir, env })`go build -trimpath -ldflags=${'-s -w -buildid='} -o ${tmp} .`;
  await rename(tmp, opts.out);
}
