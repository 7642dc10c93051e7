// The real-runner test fleet's images (gitlab-runner, its helper, docker CLI and dind, a base, the pod sandbox's
// pause), built from this machine's files into ~/.cache/runner-fleet/images, reproducibly, and pushed to a test
// registry over the Docker Registry HTTP API. `tsx scripts/testbed/images.ts build | push HOST:PORT`.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type BuildStore,
  buildLayer,
  busyboxListFull,
  debianVersions,
  FileFacts,
  exists,
  fileEntry,
  goBuild,
  hashSources,
  layerInputs,
  programEntries,
  sha256File,
  storeImageBlobs,
  treeEntries,
  writeFileAtomic,
  writeLayout,
  writeOciArchive,
} from './images/build.js';
import { GitlabRunnerMissingError, runnerBinary } from './gitlab-runner.js';
import { cacheRoot, REPO } from './paths.js';
import {
  type AssembledImage,
  type Descriptor,
  type Digest,
  type ImageRuntimeConfig,
  type LayerBlob,
  type ManifestFlavor,
  DEFAULT_PATH,
  assembleImage,
  cacheKey,
  imageSize,
} from './images/oci.js';
import { type PushBlob, pushImage } from './images/push.js';
import { type RootfsEntry, busyboxEntries, mergeEntries, skeletonEntries } from './images/rootfs.js';

/** Bump when this file or build.ts changes what lands in an image: every cache key changes with it. */
export const BUILD_VERSION = '3';

export type ImageName = 'gitlab-runner' | 'gitlab-runner-helper' | 'docker-cli' | 'docker-dind' | 'base';
export const IMAGE_NAMES: readonly ImageName[] = [
  'gitlab-runner',
  'gitlab-runner-helper',
  'docker-cli',
  'docker-dind',
  'base',
];

/** repository:tag of each image in any registry; a ref is `REGISTRY/repository:tag`. */
export const IMAGE_PATHS: Record<ImageName, { repository: string; tag: string }> = {
  'gitlab-runner': { repository: 'runner-fleet/gitlab-runner', tag: '17.9.3' },
  // The tag the docker executor derives for x86_64 (helperimage linux_info.go: ARCH-vVERSION).
  'gitlab-runner-helper': { repository: 'runner-fleet/gitlab-runner-helper', tag: 'x86_64-v17.9.3' },
  'docker-cli': { repository: 'runner-fleet/docker', tag: '27-cli' },
  'docker-dind': { repository: 'runner-fleet/docker', tag: '27-dind' },
  base: { repository: 'runner-fleet/base', tag: '1' },
};

/** The sandbox image containerd's CRI is configured with; imported with ctr, never pulled (no such registry). */
export const PAUSE_REF = 'runner-fleet.local/pause:3.10';

export interface TestImage {
  name: ImageName;
  repository: string;
  tag: string;
  /** an OCI image layout directory (oci-layout, index.json, blobs/sha256/) */
  layout: string;
  /** Docker schema2 manifest */
  manifest: Descriptor;
  config: Descriptor;
  layers: readonly LayerBlob[];
  /** compressed bytes (layers + config): what a first push or pull moves */
  size: number;
  /** hash of every input (files, Debian package versions, build version, config) */
  key: string;
}

export interface TestImages {
  images: Record<ImageName, TestImage>;
  pause: {
    /** OCI image archive for `ctr -n k8s.io images import` */
    ociArchive: string;
    ref: string;
    manifest: Descriptor;
    /** the static pause binary itself */
    binary: string;
  };
  /** the content store every blob above lives in */
  store: string;
}

/** A required input is absent: names what is missing and how to provide it. */
export class MissingImageInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingImageInputError';
  }
}

const SCRIPTS = join(REPO, 'scripts', 'images');

/** The pause binary, rebuilt when its source changes (the key is the source's hash). */
async function pauseBinary(root: string): Promise<string> {
  const dir = join(SCRIPTS, 'pause');
  const src = await Promise.all(['go.mod', 'main.go'].map((f) => sha256File(join(dir, f))));
  const out = join(
    root,
    'bin',
    `pause-${cacheKey({ buildVersion: BUILD_VERSION, inputs: src, packages: {}, config: 'pause' })}`,
  );
  if (!(await exists(out))) await goBuild({ cacheRoot: root, dir, out });
  return out;
}

/** Debian's docker CLI (docker.io, 20.10) when installed; the static one in /usr/local/bin otherwise. */
function dockerCli(): string {
  for (const p of ['/usr/bin/docker', '/usr/local/bin/docker']) if (existsSync(p)) return p;
  throw new MissingImageInputError('no docker CLI: install docker.io (scripts/setup.sh does)');
}

function required(path: string, pkg: string): string {
  if (!existsSync(path))
    throw new MissingImageInputError(`${path} is missing: install Debian's ${pkg} (scripts/setup.sh does)`);
  return path;
}

interface Inputs {
  busybox: string;
  gitlabRunner: string;
  gitlabRunnerHelper: string;
  pause: string;
  dockerCli: string;
  /** Debian's dumb-init when installed: the official runner images use it as PID 1 */
  dumbInit?: string;
}

// ---------------------------------------------------------------------------------------------- specs (pure)

export type LayerName =
  'busybox' | 'git' | 'gitlab-runner' | 'gitlab-runner-helper' | 'docker-cli' | 'dind' | 'pause';

/** What a layer holds. Programs bring the libraries ldd lists; trees are copied whole. */
interface LayerSpec {
  programs?: { from: string; path?: string }[];
  files?: { from: string; path?: string; mode?: number }[];
  trees?: string[];
  entries?: RootfsEntry[];
  busybox?: string;
  /** Debian packages whose versions join the layer's cache key */
  packages: string[];
}

const XTABLES = '/usr/lib/x86_64-linux-gnu/xtables';
const IPTABLES_LINKS = [
  'iptables',
  'iptables-save',
  'iptables-restore',
  'ip6tables',
  'ip6tables-save',
  'ip6tables-restore',
];

function layerSpecs(i: Inputs): Record<LayerName, LayerSpec> {
  const dumbInit = i.dumbInit ? [{ from: i.dumbInit, path: '/usr/bin/dumb-init' }] : [];
  return {
    busybox: { busybox: i.busybox, packages: ['busybox-static'] },
    git: {
      // git's helpers (git-remote-http for https clones, ...) live in git-core; /usr/bin/git is one of its links.
      trees: ['/usr/lib/git-core', '/usr/share/git-core/templates'],
      // bash as in GitLab's images: the shell executor (shell = "bash") and gitlab-runner-build prefer it.
      programs: [{ from: required('/bin/bash', 'bash'), path: '/bin/bash' }],
      files: [{ from: '/etc/ssl/certs/ca-certificates.crt', mode: 0o644 }],
      entries: [{ kind: 'symlink', path: '/usr/bin/git', target: '../lib/git-core/git' }],
      packages: ['git', 'ca-certificates', 'libcurl3-gnutls', 'libc6', 'bash'],
    },
    'gitlab-runner': {
      programs: [{ from: i.gitlabRunner, path: '/usr/bin/gitlab-runner' }, ...dumbInit],
      entries: [
        { kind: 'dir', path: '/home/gitlab-runner', mode: 0o755 },
        { kind: 'dir', path: '/etc/gitlab-runner', mode: 0o700 },
      ],
      packages: ['dumb-init'],
    },
    'gitlab-runner-helper': {
      programs: [{ from: i.gitlabRunnerHelper, path: '/usr/bin/gitlab-runner-helper' }, ...dumbInit],
      files: [
        {
          from: join(SCRIPTS, 'helper', 'gitlab-runner-build'),
          path: '/usr/bin/gitlab-runner-build',
          mode: 0o755,
        },
        { from: join(SCRIPTS, 'helper', 'entrypoint'), path: '/entrypoint', mode: 0o755 },
      ],
      packages: ['dumb-init'],
    },
    'docker-cli': { programs: [{ from: i.dockerCli, path: '/usr/bin/docker' }], packages: ['docker.io'] },
    dind: {
      programs: [
        { from: required('/usr/sbin/dockerd', 'docker.io') },
        { from: '/usr/sbin/docker-proxy' },
        { from: '/usr/bin/docker-init', path: '/usr/bin/docker-init' },
        { from: required('/usr/bin/containerd', 'containerd') },
        { from: '/usr/bin/containerd-shim-runc-v2' },
        { from: required('/usr/sbin/runc', 'runc') },
        { from: required('/usr/sbin/xtables-nft-multi', 'iptables') },
        { from: required('/usr/bin/openssl', 'openssl') },
      ].filter((p) => existsSync(p.from)),
      trees: [XTABLES],
      files: [
        { from: '/etc/ssl/openssl.cnf', mode: 0o644 },
        {
          from: join(SCRIPTS, 'dind', 'dockerd-entrypoint.sh'),
          path: '/usr/local/bin/dockerd-entrypoint.sh',
          mode: 0o755,
        },
      ],
      entries: [
        ...IPTABLES_LINKS.map((n): RootfsEntry => ({
          kind: 'symlink',
          path: `/usr/sbin/${n}`,
          target: 'xtables-nft-multi',
        })),
        { kind: 'symlink', path: '/usr/lib/ssl/openssl.cnf', target: '/etc/ssl/openssl.cnf' },
        { kind: 'dir', path: '/var/lib/docker', mode: 0o711 },
        { kind: 'dir', path: '/certs', mode: 0o1777 },
        { kind: 'dir', path: '/certs/client', mode: 0o1777 },
      ],
      packages: ['docker.io', 'containerd', 'runc', 'iptables', 'openssl', 'tini'],
    },
    pause: { programs: [{ from: i.pause, path: '/pause' }], packages: [] },
  };
}

interface ImageSpec {
  layers: LayerName[];
  config: ImageRuntimeConfig;
}

function imageSpecs(i: Inputs): Record<ImageName, ImageSpec> {
  return {
    base: { layers: ['busybox'], config: { cmd: ['sh'] } },
    'gitlab-runner': {
      layers: ['busybox', 'git', 'gitlab-runner'],
      config: { cmd: ['gitlab-runner', 'run', '--working-directory=/home/gitlab-runner'] },
    },
    'gitlab-runner-helper': {
      layers: ['busybox', 'git', 'gitlab-runner-helper'],
      // As GitLab's helper images: the executor replaces CMD with gitlab-runner-build and keeps the entrypoint.
      config: {
        entrypoint: i.dumbInit ? ['/usr/bin/dumb-init', '/entrypoint'] : ['/entrypoint'],
        cmd: ['sh'],
      },
    },
    'docker-cli': { layers: ['busybox', 'docker-cli'], config: { cmd: ['sh'] } },
    'docker-dind': {
      layers: ['busybox', 'docker-cli', 'dind'],
      config: {
        // docker:dind defaults to TLS; jobs turn it off with DOCKER_TLS_CERTDIR="".
        env: [DEFAULT_PATH, 'DOCKER_TLS_CERTDIR=/certs'],
        entrypoint: ['dockerd-entrypoint.sh'],
        cmd: [],
        exposedPorts: ['2375/tcp', '2376/tcp'],
        volumes: ['/var/lib/docker'],
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------- build

async function layerEntries(facts: FileFacts, spec: LayerSpec): Promise<RootfsEntry[]> {
  const lists: RootfsEntry[][] = [];
  if (spec.busybox)
    lists.push(skeletonEntries(), busyboxEntries(spec.busybox, await busyboxListFull(spec.busybox)));
  const treeLists: RootfsEntry[] = [];
  for (const t of spec.trees ?? []) treeLists.push(...(await treeEntries(t)));
  // ELF files found in trees (git-remote-http, the xtables modules) need their libraries too.
  const treeFiles = treeLists.flatMap((e) => (e.kind === 'file' ? [{ from: e.from, path: e.path }] : []));
  lists.push(await programEntries(facts, [...(spec.programs ?? []), ...treeFiles]));
  lists.push(treeLists);
  for (const f of spec.files ?? []) lists.push([await fileEntry(f.from, f.path, f.mode)]);
  lists.push(spec.entries ?? []);
  return mergeEntries(...lists);
}

export interface EnsureOptions {
  /** default $RUNNER_FLEET_CACHE or ~/.cache/runner-fleet */
  cacheRoot?: string;
  /** default $SOURCE_DATE_EPOCH or 0 */
  epoch?: number;
  log?: (line: string) => void;
}

/** Builds every test image and the pause archive, or reuses them from the cache when no input changed. */
export async function ensureTestImages(opts: EnsureOptions = {}): Promise<TestImages> {
  const root = opts.cacheRoot ?? cacheRoot();
  const store: BuildStore = {
    root: join(root, 'images'),
    epoch: opts.epoch ?? Number(process.env.SOURCE_DATE_EPOCH ?? 0),
  };
  const log = opts.log ?? (() => {});
  await mkdir(store.root, { recursive: true });
  const facts = await FileFacts.load(join(store.root, 'file-facts.json'));

  const inputs: Inputs = {
    busybox: required('/bin/busybox', 'busybox-static'),
    gitlabRunner: runnerBinary('gitlab-runner'),
    gitlabRunnerHelper: runnerBinary('gitlab-runner-helper'),
    pause: await pauseBinary(root),
    dockerCli: dockerCli(),
    dumbInit: existsSync('/usr/bin/dumb-init') ? '/usr/bin/dumb-init' : undefined,
  };
  required('/usr/lib/git-core/git', 'git');
  const layerSpec = layerSpecs(inputs);
  const versions = await debianVersions([...new Set(Object.values(layerSpec).flatMap((s) => s.packages))]);

  const layers = new Map<LayerName, { blob: LayerBlob; key: string }>();
  const layer = async (name: LayerName): Promise<{ blob: LayerBlob; key: string }> => {
    const done = layers.get(name);
    if (done) return done;
    const spec = layerSpec[name];
    const entries = await layerEntries(facts, spec);
    const hashes = await hashSources(facts, entries);
    const packages = Object.fromEntries(spec.packages.map((p) => [p, versions[p] ?? 'absent']));
    const key = cacheKey({
      buildVersion: BUILD_VERSION,
      inputs: layerInputs(entries, hashes),
      packages,
      config: { layer: name, epoch: store.epoch },
    });
    const t0 = Date.now();
    const blob = await buildLayer(store, `${name}-${key}`, entries);
    log(
      `layer ${name} ${blob.digest.slice(7, 19)} ${(blob.size / 1e6).toFixed(1)} MB (${Date.now() - t0} ms)`,
    );
    const built = { blob, key };
    layers.set(name, built);
    return built;
  };

  const assemble = async (flavor: ManifestFlavor, names: LayerName[], config: ImageRuntimeConfig) => {
    const ls = [];
    for (const n of names) ls.push(await layer(n));
    const img = assembleImage(
      flavor,
      config,
      ls.map((l) => l.blob),
      store.epoch,
    );
    await storeImageBlobs(store, img);
    return {
      img,
      key: cacheKey({
        buildVersion: BUILD_VERSION,
        inputs: ls.map((l) => l.key),
        packages: {},
        config: [flavor, config],
      }),
    };
  };

  const specs = imageSpecs(inputs);
  const images = {} as Record<ImageName, TestImage>;
  for (const name of IMAGE_NAMES) {
    const { repository, tag } = IMAGE_PATHS[name];
    const { img, key } = await assemble('docker', specs[name].layers, specs[name].config);
    const layout = join(store.root, 'layouts', name);
    await ensureLayout(store, layout, img, `${repository}:${tag}`);
    images[name] = {
      name,
      repository,
      tag,
      layout,
      manifest: img.manifest.descriptor,
      config: img.config.descriptor,
      layers: img.layers,
      size: imageSize(img),
      key,
    };
  }

  const pause = await assemble('oci', ['pause'], { entrypoint: ['/pause'], env: [DEFAULT_PATH] });
  const ociArchive = join(store.root, 'pause.oci.tar');
  const stamp = `${ociArchive}.digest`;
  const want = pause.img.manifest.descriptor.digest;
  if (!(await exists(ociArchive)) || (await readFile(stamp, 'utf8').catch(() => '')) !== want) {
    await writeOciArchive(store, ociArchive, pause.img, PAUSE_REF);
    await writeFileAtomic(stamp, want);
  }
  await facts.save();
  return {
    images,
    pause: { ociArchive, ref: PAUSE_REF, manifest: pause.img.manifest.descriptor, binary: inputs.pause },
    store: store.root,
  };
}

async function ensureLayout(store: BuildStore, dir: string, img: AssembledImage, ref: string): Promise<void> {
  const index = await readFile(join(dir, 'index.json'), 'utf8').catch(() => '');
  if (index.includes(img.manifest.descriptor.digest) && index.includes(`"${ref}"`)) return;
  await writeLayout(store, dir, img, ref);
}

// ---------------------------------------------------------------------------------------------- push

/** Full reference of an image in `registry` (host:port). */
export function imageRef(registry: string, name: ImageName): string {
  const { repository, tag } = IMAGE_PATHS[name];
  return `${registry}/${repository}:${tag}`;
}

/**
 * Uploads the images (default: all, built or taken from the cache) to a plain-HTTP registry and returns each ref.
 * Blobs the registry has are skipped; blobs already pushed to another repository are mounted, not sent again.
 */
export async function pushTestImages(
  registry: string,
  images?: TestImages,
  only: readonly ImageName[] = IMAGE_NAMES,
): Promise<Record<ImageName, string>> {
  const built = images ?? (await ensureTestImages());
  const storeBlob = (d: Digest): string => join(built.store, 'blobs', 'sha256', d.slice(7));
  const mounted = new Map<Digest, string>();
  const refs = {} as Record<ImageName, string>;
  for (const name of only) {
    const img = built.images[name];
    const blobs: PushBlob[] = [img.config, ...img.layers].map((b) => ({
      digest: b.digest,
      size: b.size,
      path: storeBlob(b.digest),
    }));
    const manifest = await readFile(storeBlob(img.manifest.digest));
    await pushImage({
      registry,
      repository: img.repository,
      tag: img.tag,
      blobs,
      manifest,
      manifestMediaType: img.manifest.mediaType,
      mountFrom: mounted,
    });
    refs[name] = imageRef(registry, name);
  }
  return refs;
}

// ---------------------------------------------------------------------------------------------- CLI

async function main(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
  const [cmd, registry] = positionals;
  if (cmd === 'build' || cmd === 'push') {
    const t0 = Date.now();
    const built = await ensureTestImages({ log: (l) => console.error(`[images] ${l}`) });
    console.error(`[images] ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (cmd === 'push') {
      if (!registry) return usage();
      console.log(JSON.stringify(await pushTestImages(registry, built), null, 2));
      return 0;
    }
    const summary = Object.fromEntries(
      IMAGE_NAMES.map((n) => [
        n,
        {
          ref: `${built.images[n].repository}:${built.images[n].tag}`,
          digest: built.images[n].manifest.digest,
          mb: +(built.images[n].size / 1e6).toFixed(1),
        },
      ]),
    );
    console.log(
      JSON.stringify(
        {
          images: summary,
          pause: {
            ociArchive: built.pause.ociArchive,
            ref: built.pause.ref,
            digest: built.pause.manifest.digest,
          },
        },
        null,
        2,
      ),
    );
    return 0;
  }
  return usage();
}

function usage(): number {
  console.error('usage: tsx scripts/testbed/images.ts build | push HOST:PORT');
  return 2;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // 3: an input is missing (setup.sh warns and goes on; nothing else of the test fleet needs these images)
      if (err instanceof MissingImageInputError || err instanceof GitlabRunnerMissingError) {
        console.error(`images: ${err.message}`);
        process.exit(3);
      }
      console.error(err);
      process.exit(1);
    },
  );
}
