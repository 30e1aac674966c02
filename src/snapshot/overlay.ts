// The overlayfs snapshotter: a container's rootfs is an overlay of its writable layer (KEY/upper, with
// KEY/work) over its init layer and its image's layers, unpacked once per ChainID and shared (layers.ts),
// mounted at KEY/merged while something uses it. Deleting the container's directory deletes only its layer.
import fs from 'node:fs';
import path from 'node:path';
import { chainIds } from '../digest/digest.js';
import { PlyError } from '../errors.js';
import type { LayerRecord } from '../layer/types.js';
import { unmodelledOverlayState, writeUpperDiff } from '../layer/diff.js';
import * as native from '../native/index.js';
import type { TarWriter } from '../tar/index.js';
import { dirSize } from '../util/fs.js';
import type { LayerSnapshots } from './layers.js';
import { isMounted, unmountIfMounted } from './mount.js';
import type { Change, Parent, Snapshotter } from './snapshotter.js';

const isWhiteout = (st: fs.Stats) => st.isCharacterDevice() && st.rdev === 0;

export class OverlaySnapshotter implements Snapshotter {
  readonly name = 'overlayfs' as const;

  constructor(private readonly layers: LayerSnapshots) {}

  /** Nothing to make ahead: the upper and work directories appear with the first mount. */
  async prepare(): Promise<void> {}

  async mount(key: string, parent: Parent): Promise<string> {
    const merged = path.join(key, 'merged');
    if (isMounted(merged)) return merged;
    const lowers = await this.layers.unpack(parent.layers);
    const upper = path.join(key, 'upper');
    const work = path.join(key, 'work');
    for (const d of [upper, work, merged]) fs.mkdirSync(d, { recursive: true });
    if (isMounted(merged)) return merged;
    const data = `lowerdir=${[parent.init, ...lowers].join(':')},upperdir=${upper},workdir=${work}`;
    if (data.length > 4000) throw new PlyError(`too many layers to mount (${lowers.length})`);
    native.mount('overlay', merged, 'overlay', 0, data);
    return merged;
  }

  mounted(key: string): boolean {
    return isMounted(path.join(key, 'merged'));
  }

  unmount(key: string): void {
    unmountIfMounted(path.join(key, 'merged'));
  }

  /** The upper dir against the image's layers: a whiteout is a deletion, a name the image had a change. */
  changes(key: string, parent: Parent): Change[] {
    const lowers = chainIds(parent.layers.map((l) => l.diffId))
      .map((c) => this.layers.pathFor(c))
      .reverse();
    const inLowers = (rel: string) => {
      for (const l of lowers) {
        const st = fs.lstatSync(path.join(l, rel), { throwIfNoEntry: false });
        if (st) return !isWhiteout(st);
      }
      return false;
    };
    const upper = path.join(key, 'upper');
    const out: Change[] = [];
    const walk = (rel: string) => {
      let names: string[];
      try {
        names = fs.readdirSync(path.join(upper, rel));
      } catch {
        return;
      }
      for (const name of names) {
        const r = path.posix.join(rel, name);
        const st = fs.lstatSync(path.join(upper, r));
        if (isWhiteout(st)) {
          out.push({ kind: 'D', path: `/${r}` });
          continue;
        }
        out.push({ kind: inLowers(r) ? 'C' : 'A', path: `/${r}` });
        if (st.isDirectory()) walk(r);
      }
    };
    walk('');
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  hasChanges(key: string): boolean {
    const upper = path.join(key, 'upper');
    return fs.existsSync(upper) && fs.readdirSync(upper).length > 0;
  }

  async diff(key: string, writer: TarWriter, opts?: { clamp?: number }): Promise<void> {
    const upper = path.join(key, 'upper');
    // A container never started has no upper dir yet: no changes (an empty layer, as docker commits one).
    if (!fs.existsSync(upper)) return;
    await writeUpperDiff(upper, writer, opts?.clamp);
  }

  usage(key: string): number {
    return dirSize(path.join(key, 'upper'));
  }

  async mergeLayers(key: string, parent: Parent): Promise<string[] | null> {
    const lowers = await this.layers.unpack(parent.layers);
    const upper = path.join(key, 'upper');
    if (unmodelledOverlayState(upper, path.join(key, 'work')) !== undefined) return null;
    return fs.existsSync(upper) ? [upper, parent.init, ...lowers] : [parent.init, ...lowers];
  }

  /** The unpacked layer itself for one layer; a read-only overlay of them for more. */
  async view(dir: string, layers: LayerRecord[]): Promise<string> {
    const lowers = await this.layers.unpack(layers);
    if (lowers.length === 1) return lowers[0]!;
    fs.mkdirSync(dir, { recursive: true });
    native.mount('overlay', dir, 'overlay', native.MS_RDONLY, `lowerdir=${lowers.join(':')}`);
    return dir;
  }

  releaseView(view: string): void {
    if (view.startsWith(`${this.layers.dir}/`)) return; // a shared unpacked layer
    try {
      native.umount2(view, 0);
    } catch {
      if (isMounted(view)) native.umount2(view, native.MNT_DETACH);
    }
  }

  remove(key: string): void {
    this.unmount(key);
    if (this.mounted(key)) throw new PlyError(`container ${path.basename(key)} rootfs is still mounted`);
  }

  graphData(key: string): Record<string, string> {
    return { MergedDir: `${key}/merged`, UpperDir: `${key}/upper`, WorkDir: `${key}/work` };
  }
}
