// Registry adapter: pushes one image to a plain-HTTP registry with the Docker Registry HTTP API v2 (no docker daemon):
// HEAD each blob, mount it from a repository it was pushed to, else POST an upload and PUT the bytes; then the manifest.
import { readFile } from 'node:fs/promises';
import type { Digest } from './oci.js';

export interface PushBlob {
  digest: Digest;
  size: number;
  /** the blob's file in the content store */
  path: string;
}

/** The registry answered something the push cannot go on from. */
export class RegistryError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${url}: HTTP ${status}${body ? ` ${body.slice(0, 300)}` : ''}`);
    this.name = 'RegistryError';
  }
}

export interface PushRequest {
  /** host:port, spoken to over plain HTTP */
  registry: string;
  repository: string;
  tag: string;
  blobs: readonly PushBlob[];
  manifest: Buffer;
  manifestMediaType: string;
  /** digest → a repository of the same registry that has it (filled in as blobs are pushed); enables mounts */
  mountFrom?: Map<Digest, string>;
}

export interface PushResult {
  /** blobs sent, mounted, or already there */
  uploaded: number;
  mounted: number;
  skipped: number;
  manifestDigest: string;
}

async function request(method: string, url: string, init: RequestInit = {}, ok: number[]): Promise<Response> {
  const res = await fetch(url, { ...init, method, redirect: 'manual', signal: AbortSignal.timeout(300_000) });
  if (!ok.includes(res.status))
    throw new RegistryError(method, url, res.status, await res.text().catch(() => ''));
  return res;
}

/** Location of an upload session, absolute, with `digest` added to whatever query the registry put there. */
function uploadUrl(base: string, location: string | null, digest: Digest): string {
  if (!location) throw new Error(`registry at ${base} started an upload without a Location header`);
  const u = new URL(location, base);
  u.searchParams.set('digest', digest);
  return u.toString();
}

export async function pushImage(req: PushRequest): Promise<PushResult> {
  const base = `http://${req.registry}`;
  const repo = `${base}/v2/${req.repository}`;
  const result: PushResult = { uploaded: 0, mounted: 0, skipped: 0, manifestDigest: '' };
  for (const blob of req.blobs) {
    const head = await request('HEAD', `${repo}/blobs/${blob.digest}`, {}, [200, 404]);
    if (head.status === 200) {
      result.skipped++;
      req.mountFrom?.set(blob.digest, req.repository);
      continue;
    }
    const from = req.mountFrom?.get(blob.digest);
    const start = from
      ? `${repo}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`
      : `${repo}/blobs/uploads/`;
    const started = await request('POST', start, {}, [201, 202]);
    await started.body?.cancel();
    if (started.status === 201) {
      result.mounted++;
    } else {
      // Monolithic upload: the whole blob in the PUT that closes the session (layers are tens of MB at most).
      const data = await readFile(blob.path);
      if (data.length !== blob.size)
        throw new Error(`${blob.path}: ${data.length} bytes, the manifest says ${blob.size}`);
      const put = await request(
        'PUT',
        uploadUrl(base, started.headers.get('location'), blob.digest),
        {
          body: data,
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.length) },
        },
        [201],
      );
      await put.body?.cancel();
      result.uploaded++;
    }
    req.mountFrom?.set(blob.digest, req.repository);
  }
  const put = await request(
    'PUT',
    `${repo}/manifests/${req.tag}`,
    { body: new Uint8Array(req.manifest), headers: { 'Content-Type': req.manifestMediaType } },
    [201],
  );
  await put.body?.cancel();
  result.manifestDigest = put.headers.get('docker-content-digest') ?? '';
  return result;
}
