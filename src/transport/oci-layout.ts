// The OCI image layout (image-spec image-layout.md) as ply reads and writes it: `oci-layout`, `index.json`,
// `blobs/<alg>/<hex>`, and the annotations that name images in an index.
import { isDigest } from '../digest/digest.js';
import type { Descriptor, Digest } from '../oci/types.js';
import { formatReference, parseReference, type Reference } from '../reference/reference.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_INDEX_FILE = 'index.json';
export const OCI_LAYOUT_CONTENT = '{"imageLayoutVersion":"1.0.0"}';
/** containerd's (and docker 25+'s) full image name: 'docker.io/library/busybox:latest'. */
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
/** The OCI reference name; docker writes the tag alone, podman and skopeo whatever name they were given. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

/** The path of a blob in a layout: 'blobs/sha256/<hex>'. */
export function blobPath(d: Digest): string {
  const i = d.indexOf(':');
  return `blobs/${d.slice(0, i)}/${d.slice(i + 1)}`;
}

/** The digest a layout path names ('blobs/sha256/<hex>'), if it is a blob path. */
export function digestOfBlobPath(p: string): Digest | undefined {
  const m = /^blobs\/([a-z0-9]+)\/([0-9a-f]+)$/.exec(p);
  if (!m) return undefined;
  const d = `${m[1]}:${m[2]}`;
  return isDigest(d) ? d : undefined;
}

/** The annotations docker 25+ puts on an index entry for a full name ('docker.io/library/x:tag'). */
export function nameAnnotations(fullName: string): Record<string, string> {
  const r = parseReference(fullName);
  return { [ANNOTATION_IMAGE_NAME]: fullName, [ANNOTATION_REF_NAME]: r.tag ?? 'latest' };
}

function tagged(s: string): string | undefined {
  let r: Reference;
  try {
    r = parseReference(s);
  } catch {
    return undefined;
  }
  if (r.tag === undefined) {
    if (r.digest !== undefined) return undefined; // repo@digest names no tag
    r.tag = 'latest';
  }
  return formatReference({ domain: r.domain, path: r.path, tag: r.tag });
}

/**
 * The full name an index entry gives its image: containerd's image-name annotation, else a ref.name that is a
 * whole reference (podman: 'localhost/x:latest'). A ref.name that is only a tag ('latest', as docker writes next to
 * the image-name annotation, or as `skopeo copy … oci:DIR:tag` writes) names no repository, so no image name.
 */
export function nameFromAnnotations(desc: Pick<Descriptor, 'annotations'>): string | undefined {
  const a = desc.annotations ?? {};
  const full = a[ANNOTATION_IMAGE_NAME];
  if (full) {
    const n = tagged(full);
    if (n) return n;
  }
  const ref = a[ANNOTATION_REF_NAME];
  if (ref && /[/:]/.test(ref)) return tagged(ref);
  return undefined;
}
