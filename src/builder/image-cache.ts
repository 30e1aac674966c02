// Images as build caches: docker's classic `--cache-from IMAGE` (the Engine API's `cachefrom`). An image in the
// store (pulled or loaded, so its intermediate images are not here) lends its steps to a build whose steps match.
//
// docker matches a step by its history's `created_by`; ply's history does not hold a COPY's checksum or a RUN's
// mounts, so ply matches by step key instead: every image a build writes carries, in its manifest (not its config,
// so the image ID does not change), the key of each history entry it built:
//
//   "annotations": { "dev.ply.build.keys": "[\"\",\"\",\"<key of step 3>\",…]" }   ("" where no ply step made it)
//
// Manifests travel as exact bytes through push and pull, so the keys reach another store with the image. A step
// on parent P matches image T when T's history and layers begin with P's (docker's isValidParent) and T's key for
// the next entry is the step's key; the builder then writes the step's image from T's entry and layer (docker's
// restoreCachedImage), which is the image that step originally produced: the final step gives T's own ID.
import type { ImageRecord, ImageStore } from '../image/store.js';
import type { LayerRecord } from '../layer/types.js';
import type { HistoryEntry, ImageConfig } from '../oci/types.js';

export const KEYS_ANNOTATION = 'dev.ply.build.keys';

/** The step keys a manifest records, one per history entry ('' where none; padded to `entries`). */
export function recordedKeys(annotations: Record<string, string> | undefined, entries: number): string[] {
  let keys: string[] = [];
  const raw = annotations?.[KEYS_ANNOTATION];
  if (raw) {
    try {
      const v = JSON.parse(raw) as unknown;
      if (Array.isArray(v)) keys = v.map((k) => (typeof k === 'string' ? k : ''));
    } catch {
      // A damaged annotation is no keys: the image is then only no cache source.
    }
  }
  return Array.from({ length: entries }, (_, i) => keys[i] ?? '');
}

/** A step found in a source image: the history entry to restore and its layer (none for an empty_layer entry). */
export interface ImageCacheHit {
  history: HistoryEntry;
  layer?: LayerRecord;
}

interface Source {
  image: ImageRecord;
  config: ImageConfig;
  keys: string[];
  layers?: LayerRecord[];
}

/** Local images whose steps a build may reuse, in the order given. */
export class ImageCacheSources {
  private sources: Source[];

  constructor(
    private readonly images: ImageStore,
    sources: ImageRecord[],
  ) {
    this.sources = sources.map((image) => {
      const config = images.config(image);
      return { image, config, keys: recordedKeys(images.manifest(image).annotations, config.history?.length ?? 0) };
    });
  }

  /** The entry of a source image that a step with `key` on `parent` made, if one did. */
  match(parent: ImageConfig, key: string): ImageCacheHit | undefined {
    const n = parent.history?.length ?? 0;
    for (const s of this.sources) {
      if (s.keys[n] !== key || !extends_(s.config, parent)) continue;
      const history = s.config.history![n]!;
      let layer: LayerRecord | undefined;
      if (!history.empty_layer) {
        s.layers ??= this.images.layers(s.image);
        const i = parent.rootfs.diff_ids.length;
        layer = s.layers[i];
        if (!layer || layer.diffId !== s.config.rootfs.diff_ids[i]) continue;
      }
      // As docker: once a step came from one image, the following ones come from it too (or run).
      this.sources = [s];
      return { history, ...(layer ? { layer } : {}) };
    }
    return undefined;
  }
}

/** Whether `img` is `parent` plus more: the same history and layers first (docker's isValidParent). */
function extends_(img: ImageConfig, parent: ImageConfig): boolean {
  const h = img.history ?? [];
  const ph = parent.history ?? [];
  if (h.length <= ph.length) return false;
  if (ph.some((e, i) => JSON.stringify(e) !== JSON.stringify(h[i]))) return false;
  const d = img.rootfs.diff_ids;
  return parent.rootfs.diff_ids.length <= d.length && parent.rootfs.diff_ids.every((x, i) => x === d[i]);
}
