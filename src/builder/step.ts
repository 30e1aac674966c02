// What a build step works on and makes: the stage's state after each step, the named parts of a step's cache key,
// and a step's result before it becomes an image.
import { createHash } from 'node:crypto';
import type { ImageRecord, ImageStore } from '../image/store.js';
import type { LayerRecord } from '../layer/types.js';
import type { ContainerConfig, ImageConfig } from '../oci/types.js';
import type { RemoteStep } from './remote-cache.js';
import { stepKey } from './cache.js';

/** A stage after a step. */
export interface State {
  /** The step's image; while `remote` is set, only its IDs are real (nothing of it is in the store yet). */
  image: ImageRecord;
  config: ImageConfig;
  layers?: LayerRecord[];
  /** A step found in an imported cache whose layers are not pulled yet (StepCache.local pulls them). */
  remote?: RemoteStep;
  /** ARGs declared in this stage, in order, with their values (undefined: declared without one). */
  args: Map<string, string | undefined>;
}

/**
 * What a step's cache key is made of: its parent image and named parts (the instruction, the sources' checksum,
 * the network, each mount, …). Kept with the cache entry so that a later miss can say which part changed.
 */
export interface StepInputs {
  key: string;
  parent: string;
  instruction: string;
  parts: [name: string, value: string | undefined][];
  /** The config the step leaves (default: its parent's), to restore it from a --cache-from image. */
  after?: Pick<StepResult, 'containerConfig' | 'author'>;
}

/** What a step that ran produced: the config after it, its history line, its layer (none: config only). */
export interface StepResult {
  containerConfig: ContainerConfig;
  createdBy: string;
  layer?: LayerRecord;
  author?: string;
}

/**
 * A step's key from its parent, instruction and named parts (`before`: unnamed parts hashed between the parent
 * and the instruction, as keys always were).
 */
export function stepInputs(state: State, instruction: string, parts: [string, string | undefined][], before: string[] = []): StepInputs {
  return { key: stepKey([state.image.id, ...before, instruction, ...parts.map(([, v]) => v)]), parent: state.image.id, instruction, parts };
}

/** Named key parts as short digests (what the cache keeps to explain later misses; never the values). */
export function summarizeParts(parts: [string, string | undefined][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of parts) if (v !== undefined) out[name] = createHash('sha256').update(v).digest('hex').slice(0, 16);
  return out;
}

/** The name --explain-cache gives a RUN mount's key part (`bind target=/src …` → `--mount bind /src`). */
export function mountPartName(part: string): string {
  const type = /^\S+/.exec(part)?.[0] ?? 'mount';
  const target = /target=(\S+)/.exec(part)?.[1];
  return `--mount ${type}${target ? ` ${target}` : ''}`;
}

/** The state's layers (read from its image once). */
export function layersOf(images: ImageStore, state: State): LayerRecord[] {
  if (state.remote) throw new Error('internal: layers of a step not pulled from its cache');
  state.layers ??= images.layers(state.image);
  return state.layers;
}
