// Layer conversion in the copy pipeline. A destination that asks for compressed layers (a push) gets each layer
// that is not yet in that format compressed on the way, or, when the BlobInfoCache knows a blob of the same
// layer in that format, that blob: found at the destination (HEAD) or mounted from another repository of its
// registry, so a layer is compressed once. The manifest then names the blobs the destination holds, with the
// media types of its kind (OCI or Docker; Docker has no zstd type, so zstd makes it OCI); the config, and with
// it the diffIDs (digests of the uncompressed tars) and the image ID, stay as they are.
import { Digester, digestOf, splitDigest } from '../digest/digest.js';
import { DigestMismatchError, InvalidArchiveError } from '../errors.js';
import { compressed, compressionRecipe, decompressed, parseRecipe, type CompressOptions } from '../layer/compression.js';
import {
  isIndexMediaType,
  layerCompressionOf,
  layerMediaType,
  MediaType,
  ociMediaType,
  type Descriptor,
  type Digest,
  type ImageConfig,
  type Index,
  type Manifest,
} from '../oci/types.js';
import type { CopyOptions, ImageDestination, ImageSource, LayerCompression, LayerCompressionRequest, ManifestBlob } from './types.js';

/** How one layer is converted. */
export interface LayerPlan {
  diffId: Digest;
  from: LayerCompression;
  to: LayerCompression;
  level?: number;
  /** The converted layer's media type. */
  mediaType: string;
}

/** Known blobs of a layer tried before compressing it (each costs a HEAD, or a mount attempt). */
const MAX_VARIANTS_TRIED = 3;

/**
 * Which layers of `doc` are converted for `want` (undefined: the layer goes as it is). Uncompressed layers are
 * compressed; compressed ones are converted only when `want.force`. The config is read for the diffIDs only
 * when some layer is converted.
 */
export async function planLayers(
  src: ImageSource,
  m: ManifestBlob,
  doc: Manifest,
  want: LayerCompressionRequest,
  opts: CopyOptions,
): Promise<(LayerPlan | undefined)[]> {
  const converts = doc.layers.map((d) => {
    const from = layerCompressionOf(d.mediaType);
    return from !== undefined && from !== want.format && (from === 'none' || want.force === true) ? from : undefined;
  });
  if (converts.every((c) => c === undefined)) return converts.map(() => undefined);
  const config = await readConfig(src, doc.config, opts.signal);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== doc.layers.length) {
    throw new InvalidArchiveError(`image ${m.digest}: the config lists ${diffIds.length} layers, the manifest ${doc.layers.length}`);
  }
  return converts.map((from, i) =>
    from === undefined
      ? undefined
      : { diffId: diffIds[i]!, from, to: want.format, level: want.level, mediaType: layerMediaType(m.mediaType, want.format) },
  );
}

async function readConfig(src: ImageSource, desc: Descriptor, signal?: AbortSignal): Promise<ImageConfig> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of await src.getBlob(desc, { signal })) {
    parts.push(c);
    n += c.length;
    if (n > desc.size) break;
  }
  const bytes = Buffer.concat(parts);
  const got = digestOf(bytes, splitDigest(desc.digest).algorithm);
  if (got !== desc.digest) throw new DigestMismatchError(desc.digest, got, 'config');
  return JSON.parse(bytes.toString('utf8')) as ImageConfig;
}

/** Repositories of the destination's registry to try mounting `desc` from: the caller's guess, then the cache's. */
export function mountCandidates(dst: ImageDestination, desc: Descriptor, opts: CopyOptions): string[] {
  const out: string[] = [];
  const explicit = opts.mountFrom?.(desc);
  if (explicit) out.push(explicit);
  if (opts.blobInfo && dst.location) {
    for (const repo of opts.blobInfo.locations(desc.digest, dst.location.registry)) {
      if (repo !== dst.location.repository && !out.includes(repo)) out.push(repo);
    }
  }
  return out.slice(0, MAX_VARIANTS_TRIED);
}

/** Tries mounting `desc` into the destination from each candidate repository; the one it came from, if any. */
export async function tryMount(dst: ImageDestination, desc: Descriptor, opts: CopyOptions): Promise<string | undefined> {
  if (!dst.mountBlob) return undefined;
  for (const from of mountCandidates(dst, desc, opts)) {
    if (await dst.mountBlob(desc, from)) return from;
  }
  return undefined;
}

/** Copies layer `d` converted as `plan` says; returns the descriptor of the blob the destination now holds. */
export async function convertLayer(src: ImageSource, dst: ImageDestination, d: Descriptor, plan: LayerPlan, opts: CopyOptions): Promise<Descriptor> {
  const emit = opts.onProgress;
  const cache = opts.blobInfo;
  const converted = (digest: Digest, size: number): Descriptor => ({
    mediaType: plan.mediaType,
    digest,
    size,
    ...(d.annotations ? { annotations: d.annotations } : {}),
  });
  // Compressed before: the destination, or another repository of its registry, may hold that blob already.
  const known = cache?.variants(plan.diffId, plan.to) ?? [];
  for (const v of known.slice(0, MAX_VARIANTS_TRIED)) {
    const desc = converted(v.digest, v.size);
    if (await dst.hasBlob(desc)) {
      emit?.({ type: 'blob-exists', digest: d.digest, size: d.size, layer: true });
      return desc;
    }
    const from = await tryMount(dst, desc, opts);
    if (from) {
      emit?.({ type: 'blob-mounted', digest: d.digest, size: d.size, from });
      return desc;
    }
  }
  if (!dst.putNewBlob) throw new Error(`${dst.description} asks for ${plan.to} layers but cannot store a blob made on the way`);
  if (plan.from === 'none' && d.digest !== plan.diffId) {
    throw new DigestMismatchError(plan.diffId, d.digest, `uncompressed layer ${d.digest.slice(7, 19)} diffID`);
  }
  emit?.({ type: 'blob-start', digest: d.digest, size: d.size, layer: true, compressing: plan.to });
  let lastEmit = 0;
  const progress = (done: number) => {
    if (emit && (done - lastEmit >= 1 << 20 || done === d.size)) {
      lastEmit = done;
      emit({ type: 'blob-progress', digest: d.digest, done, size: d.size });
    }
  };
  // Every byte read is checked (the blob against its digest, the tar against the diffID) before the destination
  // commits the result: a failure ends the upload without its final request.
  const input = checked(await src.getBlob(d, { signal: opts.signal }), d.digest, `layer ${d.digest.slice(7, 19)}`, progress);
  const tar = plan.from === 'none' ? input : checked(decompressed(input), plan.diffId, `layer ${d.digest.slice(7, 19)} diffID`);
  // A layer ply compressed before (for another registry) is compressed the same way again: the same bytes, so
  // the same digest everywhere. Otherwise the level adapts to the link unless a level was asked for.
  const replay = known
    .map((v) => (v.recipe ? parseRecipe(v.recipe) : undefined))
    .find((r) => r && r.format === plan.to && (plan.level === undefined || r.opts.level === plan.level));
  const how: CompressOptions = replay?.opts ?? { level: plan.level, adaptive: plan.level === undefined };
  let made: string | undefined;
  const data = compressed(tar, plan.to, { ...how, onPlan: (p) => (made = p) });
  const out = await dst.putNewBlob(data, { signal: opts.signal });
  const recipe = compressionRecipe(plan.to, { ...how, plan: made ?? how.plan });
  cache?.recordVariant(plan.diffId, { digest: out.digest, size: out.size, compression: plan.to, recipe });
  emit?.({ type: 'blob-done', digest: d.digest, size: d.size, layer: true });
  return converted(out.digest, out.size);
}

/** Passes `data` on, hashing it; throws at the end unless it hashes to `want`. */
async function* checked(data: AsyncIterable<Buffer>, want: Digest, what: string, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  const h = new Digester(splitDigest(want).algorithm);
  for await (const chunk of data) {
    h.update(chunk);
    onBytes?.(h.size);
    yield chunk;
  }
  const got = h.digest();
  if (got !== want) throw new DigestMismatchError(want, got, what);
}

/** The manifest naming `layers` instead of `doc`'s (`m` itself when nothing changed). */
export function rewriteManifest(m: ManifestBlob, doc: Manifest, layers: Descriptor[]): ManifestBlob {
  if (layers.every((l, i) => l === doc.layers[i])) return m;
  const toOci = m.mediaType === MediaType.DockerManifest && layers.some((l) => l.mediaType === MediaType.OciLayerZstd);
  const out: Manifest = { ...doc, layers };
  if (toOci) {
    out.mediaType = MediaType.OciManifest;
    out.config = { ...doc.config, mediaType: ociMediaType(doc.config.mediaType) };
    out.layers = layers.map((l) => ({ ...l, mediaType: ociMediaType(l.mediaType) }));
  }
  const bytes = Buffer.from(JSON.stringify(out));
  return { bytes, mediaType: toOci ? MediaType.OciManifest : m.mediaType, digest: digestOf(bytes) };
}

/** The index naming the children as written (`top` itself when none changed). */
export function rewriteIndex(top: ManifestBlob, doc: Index, written: Map<string, ManifestBlob>): ManifestBlob {
  if (![...written].some(([from, to]) => from !== to.digest)) return top;
  const manifests = doc.manifests.map((d) => {
    const w = written.get(d.digest);
    return w && w.digest !== d.digest ? { ...d, mediaType: w.mediaType, digest: w.digest, size: w.bytes.length } : d;
  });
  const toOci = top.mediaType === MediaType.DockerManifestList && manifests.some((d) => d.mediaType === MediaType.OciManifest);
  const out: Index = { ...doc, manifests };
  if (toOci) out.mediaType = MediaType.OciIndex;
  const bytes = Buffer.from(JSON.stringify(out));
  const mediaType = toOci ? MediaType.OciIndex : isIndexMediaType(top.mediaType) ? top.mediaType : MediaType.OciIndex;
  return { bytes, mediaType, digest: digestOf(bytes) };
}
