// Pure image-format code for the test images: media types, image config, manifest, OCI index and digests.
// Everything here is a function of its arguments (no clock, no file system), so equal inputs give equal digests.
import { createHash } from 'node:crypto';

/**
 * Docker schema2 is what the registry serves to the fleet's dockerds (Debian's 20.10) and containerds (1.6); the OCI
 * flavour is for the archive `ctr images import` reads (the pause image), which has no registry in between.
 */
export type ManifestFlavor = 'docker' | 'oci';

export interface MediaTypes {
  manifest: string;
  config: string;
  layer: string;
}

export const MEDIA_TYPES: Record<ManifestFlavor, MediaTypes> = {
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  },
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  },
};

export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';

export type Digest = `sha256:${string}`;

export function sha256Digest(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The hex part of a digest: the blob's file name in an OCI layout. */
export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

/** A layer as built: the digest of its gzip blob and of the tar inside (the config's diff_id). */
export interface LayerBlob {
  digest: Digest;
  size: number;
  diffId: Digest;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

/** What a Dockerfile would set; only the fields the test images use. */
export interface ImageRuntimeConfig {
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  /** e.g. "2375/tcp": the runner's service health check probes the exposed ports */
  exposedPorts?: string[];
  volumes?: string[];
}

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A fixed creation time (SOURCE_DATE_EPOCH or 0): a clock would make every build a new digest. */
export function createdAt(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace('.000Z', 'Z');
}

/** Key order is fixed by construction, so JSON.stringify is canonical enough for stable digests. */
export function imageConfigJson(
  rc: ImageRuntimeConfig,
  layers: readonly LayerBlob[],
  epochSeconds: number,
): string {
  const config: Record<string, unknown> = { Env: rc.env ?? [DEFAULT_PATH] };
  if (rc.entrypoint) config.Entrypoint = rc.entrypoint;
  if (rc.cmd) config.Cmd = rc.cmd;
  config.WorkingDir = rc.workingDir ?? '/';
  if (rc.exposedPorts?.length)
    config.ExposedPorts = Object.fromEntries([...rc.exposedPorts].sort().map((p) => [p, {}]));
  if (rc.volumes?.length) config.Volumes = Object.fromEntries([...rc.volumes].sort().map((v) => [v, {}]));
  const created = createdAt(epochSeconds);
  return JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created,
    config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created, created_by: 'runner-fleet scripts/testbed/images.ts' })),
  });
}

export function manifestJson(
  flavor: ManifestFlavor,
  config: Descriptor,
  layers: readonly LayerBlob[],
): string {
  const mt = MEDIA_TYPES[flavor];
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: mt.manifest,
    config: { mediaType: mt.config, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: mt.layer, digest: l.digest, size: l.size })),
  });
}

/**
 * index.json of an OCI layout holding one image. `io.containerd.image.name` is the full name `ctr images import`
 * gives the image; `org.opencontainers.image.ref.name` the tag other tools read.
 */
export function ociIndexJson(manifest: Descriptor, ref: string): string {
  const tag = ref.slice(ref.lastIndexOf(':') + 1);
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: [
      {
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.size,
        platform: { architecture: 'amd64', os: 'linux' },
        annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': tag },
      },
    ],
  });
}

export const OCI_LAYOUT_JSON = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/** An image assembled from its layers: every blob (config, manifest) with its bytes, ready to be written. */
export interface AssembledImage {
  flavor: ManifestFlavor;
  config: { descriptor: Descriptor; json: string };
  manifest: { descriptor: Descriptor; json: string };
  layers: readonly LayerBlob[];
}

export function assembleImage(
  flavor: ManifestFlavor,
  rc: ImageRuntimeConfig,
  layers: readonly LayerBlob[],
  epochSeconds: number,
): AssembledImage {
  const mt = MEDIA_TYPES[flavor];
  const configJson = imageConfigJson(rc, layers, epochSeconds);
  const config: Descriptor = {
    mediaType: mt.config,
    digest: sha256Digest(configJson),
    size: Buffer.byteLength(configJson),
  };
  const mJson = manifestJson(flavor, config, layers);
  const manifest: Descriptor = {
    mediaType: mt.manifest,
    digest: sha256Digest(mJson),
    size: Buffer.byteLength(mJson),
  };
  return {
    flavor,
    config: { descriptor: config, json: configJson },
    manifest: { descriptor: manifest, json: mJson },
    layers,
  };
}

/** Sum of blob sizes (compressed layers + config), what a registry stores and a first pull transfers. */
export function imageSize(img: AssembledImage): number {
  return img.config.descriptor.size + img.layers.reduce((n, l) => n + l.size, 0);
}

/**
 * The cache key of an image: a hash over everything that decides its bytes (build version, every input file's
 * sha256, the Debian package versions, the runtime config). Inputs are sorted so their order does not matter.
 */
export function cacheKey(parts: {
  buildVersion: string;
  inputs: readonly string[];
  packages: Record<string, string>;
  config: unknown;
}): string {
  const h = createHash('sha256');
  h.update(`build ${parts.buildVersion}\n`);
  for (const line of [...parts.inputs].sort()) h.update(`input ${line}\n`);
  for (const [p, v] of Object.entries(parts.packages).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    h.update(`package ${p} ${v}\n`);
  h.update(`config ${JSON.stringify(parts.config)}\n`);
  return h.digest('hex').slice(0, 16);
}

/** `host:port/repo:tag` → its parts; the registry's host:port is the part before the first slash. */
export function parseRef(ref: string): { registry: string; repository: string; tag: string } {
  const slash = ref.indexOf('/');
  const colon = ref.lastIndexOf(':');
  if (slash <= 0 || colon <= slash) throw new Error(`not a host:port/repository:tag reference: ${ref}`);
  return {
    registry: ref.slice(0, slash),
    repository: ref.slice(slash + 1, colon),
    tag: ref.slice(colon + 1),
  };
}
