// Writing an image: config + manifest as exact bytes into the content store, then one image record.
import type { ContentStore } from '../content/store.js';
import { MediaType, type Descriptor, type ImageConfig, type Manifest } from '../oci/types.js';
import type { ImageRecord, ImageStore } from './store.js';
import type { LayerRecord } from '../layer/types.js';
import type { Lease } from '../content/lease.js';

export interface WriteImageInput {
  config: ImageConfig;
  layers: LayerRecord[];
  parent?: string;
  /** The manifest's annotations (the builder's step keys); not part of the image ID. */
  annotations?: Record<string, string>;
}

/** Stores config and manifest (OCI media types) and records the image. The config's diff_ids must match `layers`. */
export async function writeImage(images: ImageStore, lease: Lease, input: WriteImageInput): Promise<ImageRecord> {
  const content: ContentStore = images.content;
  const configBytes = Buffer.from(JSON.stringify(input.config));
  const cfg = await content.putBytes(configBytes, { lease });
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
    layers: input.layers.map((l): Descriptor => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    ...(input.annotations ? { annotations: input.annotations } : {}),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const man = await content.putBytes(manifestBytes, { lease });
  return images.addImage({
    manifestDigest: man.digest,
    mediaType: MediaType.OciManifest,
    configDigest: cfg.digest,
    config: input.config,
    layers: input.layers,
    parent: input.parent,
  });
}

/**
 * When the image says it was made: `epoch` (a build's SOURCE_DATE_EPOCH), else the process's SOURCE_DATE_EPOCH
 * (reproducible commits and imports), else now.
 */
export function creationTime(epoch?: number): string {
  const env = process.env.SOURCE_DATE_EPOCH;
  const sde = epoch ?? (env && /^\d+$/.test(env) ? Number(env) : undefined);
  if (sde !== undefined) return new Date(sde * 1000).toISOString().replace('.000Z', 'Z');
  return new Date().toISOString();
}
