// Reading what a push left in a registry: manifests and blobs over plain HTTP, and the magic bytes of layers.
import type { Manifest } from '../src/oci/types.js';

export const GZIP_MAGIC = [0x1f, 0x8b];
export const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export async function fetchManifest(domain: string, repo: string, ref: string): Promise<{ doc: Manifest; digest: string; mediaType: string }> {
  const res = await fetch(`http://${domain}/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT } });
  if (res.status !== 200) throw new Error(`GET manifest ${repo}:${ref}: ${res.status}`);
  const text = await res.text();
  return { doc: JSON.parse(text) as Manifest, digest: res.headers.get('docker-content-digest')!, mediaType: res.headers.get('content-type')! };
}

export async function fetchBlob(domain: string, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`http://${domain}/v2/${repo}/blobs/${digest}`);
  if (res.status !== 200) throw new Error(`GET blob ${repo}@${digest}: ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}
