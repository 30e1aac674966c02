// Writing an image: config + manifest as exact bytes into the content store, then one image record.
import { InvalidArgumentError } from '../errors.js';
import type { ContentStore } from '../content/store.js';
import { MediaType, type Descriptor, type ImageConfig, type Manifest, type Platform } from '../oci/types.js';
import type { ImageRecord, ImageStore, LayerRecord, Lease } from './store.js';

export interface WriteImageInput {
  config: ImageConfig;
  layers: LayerRecord[];
  parent?: string;
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

const GO_ARCH: Record<string, Platform> = {
  x64: { os: 'linux', architecture: 'amd64' },
  arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
  ia32: { os: 'linux', architecture: '386' },
  ppc64: { os: 'linux', architecture: 'ppc64le' },
  s390x: { os: 'linux', architecture: 's390x' },
  riscv64: { os: 'linux', architecture: 'riscv64' },
};

/** The host's platform in OCI terms (Go's GOARCH names). */
export function hostPlatform(): Platform {
  return GO_ARCH[process.arch] ?? { os: 'linux', architecture: process.arch };
}

/** Parses `os[/arch[/variant]]` as docker's --platform does. */
export function parsePlatform(s: string): Platform {
  const parts = s.toLowerCase().split('/');
  const host = hostPlatform();
  if (parts.length > 3 || parts.some((p) => p === '' || !/^[a-z0-9._-]+$/.test(p))) {
    throw new InvalidArgumentError(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  const [os, arch, variant] = parts as [string, string | undefined, string | undefined];
  if (os !== 'linux') throw new InvalidArgumentError(`"${s}": operating system "${os}" is not supported`);
  const architecture = normalizeArch(arch ?? host.architecture);
  const p: Platform = { os, architecture };
  if (variant) p.variant = variant;
  else if (architecture === 'arm64' && arch === undefined) p.variant = host.variant;
  return p;
}

function normalizeArch(a: string): string {
  switch (a) {
    case 'x86_64':
    case 'x86-64':
      return 'amd64';
    case 'aarch64':
      return 'arm64';
    case 'i386':
      return '386';
    default:
      return a;
  }
}

/** When the image says it was made: SOURCE_DATE_EPOCH (reproducible builds) or now. */
export function creationTime(): string {
  const sde = process.env.SOURCE_DATE_EPOCH;
  if (sde && /^\d+$/.test(sde)) return new Date(Number(sde) * 1000).toISOString().replace('.000Z', 'Z');
  return new Date().toISOString();
}
