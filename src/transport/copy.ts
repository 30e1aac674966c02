// The copy pipeline: pull, push, save and load are all "copy an image from one transport to another".
// Blobs the destination has are skipped, the rest move a few at a time; destinations verify every byte.
import { NotFoundError, PlyError } from '../errors.js';
import { isIndexMediaType, isLayerMediaType, isManifestMediaType, type Descriptor, type Index, type Manifest, type Platform } from '../oci/types.js';
import { formatPlatform, hostPlatform } from '../oci/platform.js';
import { convertLayer, planLayers, rewriteIndex, rewriteManifest, tryMount, mountCandidates } from './layers.js';
import type { CopyOptions, CopyResult, ImageDestination, ImageSource, ManifestBlob } from './types.js';

export class ManifestError extends PlyError {}

export function parseManifestBlob(m: ManifestBlob): Manifest | Index {
  let doc: unknown;
  try {
    doc = JSON.parse(m.bytes.toString('utf8'));
  } catch {
    throw new ManifestError(`manifest ${m.digest} is not valid JSON`);
  }
  if (!doc || typeof doc !== 'object') throw new ManifestError(`manifest ${m.digest} is not an object`);
  const d = doc as { schemaVersion?: number; manifests?: unknown; layers?: unknown; config?: unknown };
  if (d.schemaVersion !== 2) throw new ManifestError(`manifest ${m.digest}: unsupported schema version ${String(d.schemaVersion)}`);
  if (isIndexMediaType(m.mediaType) || Array.isArray(d.manifests)) {
    if (!Array.isArray(d.manifests)) throw new ManifestError(`index ${m.digest} has no manifests`);
    return doc as Index;
  }
  if (!d.config || !Array.isArray(d.layers)) throw new ManifestError(`manifest ${m.digest} has no config or layers`);
  return doc as Manifest;
}

/** The index entry for a platform: exact os/arch, then variant (arm64 defaults to v8), as containerd matches. */
export function selectPlatform(index: Index, want: Platform): Descriptor | undefined {
  const candidates = index.manifests.filter(
    (d) => isManifestMediaType(d.mediaType) && d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture,
  );
  const variant = (p?: Platform) => p?.variant ?? (p?.architecture === 'arm64' ? 'v8' : '');
  return candidates.find((d) => variant(d.platform) === variant(want)) ?? (want.variant ? undefined : candidates[0]);
}

/** Runs `fn` over `items` with at most `n` at once; the first failure stops new work and is thrown. */
async function parallel<T>(items: T[], n: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const index = next++;
      try {
        await fn(items[index]!, index);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}

/** A small blob read ahead of its turn: its bytes, or that the destination has it. */
type ReadAhead = { present: true } | { present: false; bytes: Buffer[] };

/** Blobs up to this size (configs) may be read ahead. */
const READ_AHEAD_MAX = 1 << 20;

/**
 * Reads a small blob the destination lacks into memory (hasBlob, then getBlob), so that it can be put later
 * without a round trip of its own. Not for blobs that could be mounted instead.
 */
async function readAhead(src: ImageSource, dst: ImageDestination, desc: Descriptor, opts: CopyOptions): Promise<ReadAhead | undefined> {
  if (desc.size > READ_AHEAD_MAX || (dst.mountBlob && mountCandidates(dst, desc, opts).length > 0)) return undefined;
  if (await dst.hasBlob(desc)) return { present: true };
  const data = await src.getBlob(desc, { signal: opts.signal });
  const bytes: Buffer[] = [];
  let n = 0;
  for await (const chunk of data) {
    bytes.push(chunk);
    n += chunk.length;
    // More than the descriptor says: keep it that way (the destination refuses it), read no further.
    if (n > desc.size) break;
  }
  return { present: false, bytes };
}

async function* replayed(bytes: Buffer[]): AsyncGenerator<Buffer> {
  yield* bytes;
}

async function copyBlob(src: ImageSource, dst: ImageDestination, desc: Descriptor, opts: CopyOptions, ahead?: ReadAhead): Promise<void> {
  const layer = isLayerMediaType(desc.mediaType);
  const emit = opts.onProgress;
  if (ahead ? ahead.present : await dst.hasBlob(desc)) {
    emit?.({ type: 'blob-exists', digest: desc.digest, size: desc.size, layer });
    return;
  }
  const from = await tryMount(dst, desc, opts);
  if (from) {
    emit?.({ type: 'blob-mounted', digest: desc.digest, size: desc.size, from });
    return;
  }
  const prepared = (await dst.prepareBlob?.(desc)) ?? { present: false, offset: 0 };
  if (prepared.present) {
    emit?.({ type: 'blob-exists', digest: desc.digest, size: desc.size, layer });
    return;
  }
  const offset = prepared.offset;
  emit?.({ type: 'blob-start', digest: desc.digest, size: desc.size, layer });
  const data =
    ahead && !ahead.present && offset === 0 ? replayed(ahead.bytes) : await src.getBlob(desc, { signal: opts.signal, offset: offset || undefined });
  let done = offset;
  let lastEmit = 0;
  const counted = async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of data) {
      done += chunk.length;
      if (emit && (done - lastEmit >= 1 << 20 || done === desc.size)) {
        lastEmit = done;
        emit({ type: 'blob-progress', digest: desc.digest, done, size: desc.size });
      }
      yield chunk;
    }
    emit?.({ type: 'blob-verifying', digest: desc.digest });
  };
  await dst.putBlob(desc, counted(), { signal: opts.signal, offset: offset || undefined });
  emit?.({ type: 'blob-done', digest: desc.digest, size: desc.size, layer });
}

/** Copies one image manifest and its blobs; returns the manifest written (another when layers were converted). */
async function copyManifest(
  src: ImageSource,
  dst: ImageDestination,
  m: ManifestBlob,
  tag: string | undefined,
  opts: CopyOptions,
): Promise<ManifestBlob> {
  const doc = parseManifestBlob(m) as Manifest;
  const plans = dst.layerCompression ? await planLayers(src, m, doc, dst.layerCompression, opts) : [];
  // The config is put after the layers (in that order in an archive) but read while they move: at the end it
  // costs no round trip of its own. Its errors count from when it is put, as if it had been read then.
  const config = readAhead(src, dst, doc.config, opts);
  config.catch(() => undefined);
  // Layers first, config last: a registry may reject a manifest whose blobs are not all there.
  const layers = [...doc.layers];
  await parallel(doc.layers, opts.parallel ?? 3, async (d, i) => {
    const plan = plans[i];
    if (plan) layers[i] = await convertLayer(src, dst, d, plan, opts);
    else await copyBlob(src, dst, d, opts);
  });
  await copyBlob(src, dst, doc.config, opts, await config);
  const written = rewriteManifest(m, doc, layers);
  await dst.putManifest(written, tag);
  opts.onProgress?.({ type: 'manifest-done', digest: written.digest, size: written.bytes.length, mediaType: written.mediaType });
  rememberLocations(src, dst, doc, layers, opts);
  return written;
}

/** Where the blobs are now known to be: the source's repository and the destination's (for later mounts). */
function rememberLocations(src: ImageSource, dst: ImageDestination, doc: Manifest, written: Descriptor[], opts: CopyOptions): void {
  const cache = opts.blobInfo;
  if (!cache) return;
  if (src.location) for (const d of [...doc.layers, doc.config]) cache.recordLocation(d.digest, src.location);
  if (dst.location) for (const d of [...written, doc.config]) cache.recordLocation(d.digest, dst.location);
}

/**
 * Copies the image `srcRef` names in `src` to `dst` (tagging it `dstTag` there). An index is resolved to the
 * requested platform's manifest unless `all` is set, in which case every child and the index itself are copied.
 */
export async function copyImage(
  src: ImageSource,
  srcRef: string,
  dst: ImageDestination,
  dstTag: string | undefined,
  opts: CopyOptions = {},
): Promise<CopyResult & { manifest: ManifestBlob; top: ManifestBlob }> {
  const top = await src.getManifest(srcRef);
  opts.onProgress?.({ type: 'resolved', digest: top.digest, mediaType: top.mediaType });
  const doc = parseManifestBlob(top);
  if ('manifests' in doc) {
    if (opts.all) {
      const written = new Map<string, ManifestBlob>();
      for (const child of doc.manifests) {
        if (!isManifestMediaType(child.mediaType)) continue;
        written.set(child.digest, await copyManifest(src, dst, await src.getManifest(child.digest), undefined, opts));
      }
      const index = rewriteIndex(top, doc, written);
      await dst.putManifest(index, dstTag);
      await dst.commit?.();
      return { digest: index.digest, mediaType: index.mediaType, size: index.bytes.length, manifest: index, top: index };
    }
    const want = opts.platform ?? hostPlatform();
    const child = selectPlatform(doc, want);
    if (!child) throw new NotFoundError(`no matching manifest for ${formatPlatform(want)} in the manifest list entries`);
    const m = await copyManifest(src, dst, await src.getManifest(child.digest), dstTag, opts);
    await dst.commit?.();
    return { digest: m.digest, mediaType: m.mediaType, size: m.bytes.length, manifest: m, top };
  }
  const m = await copyManifest(src, dst, top, dstTag, opts);
  await dst.commit?.();
  return { digest: m.digest, mediaType: m.mediaType, size: m.bytes.length, manifest: m, top: m };
}
