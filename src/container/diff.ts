// `ply diff`: what a container changed, read from its overlay upper directory against the image's layers (or,
// for a vfs container, from its tree against its manifest).
import fs from 'node:fs';
import path from 'node:path';
import { chainIds } from '../digest/digest.js';
import { vfsChanges } from '../layer/changes-vfs.js';
import { isVfsContainer, vfsLayout, vfsRootfs } from '../snapshot/vfs.js';
import type { Stores } from '../stores.js';
import type { Container } from './store.js';

export interface Change {
  kind: 'A' | 'C' | 'D';
  path: string;
}

function isWhiteout(st: fs.Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** Whether `rel` exists in the image (the lower layers, top first, honouring whiteouts). */
function inLowers(lowers: string[], rel: string): boolean {
  for (const l of lowers) {
    try {
      const st = fs.lstatSync(path.join(l, rel));
      return !isWhiteout(st);
    } catch {
      // not in this layer
    }
  }
  return false;
}

/** Changes in docker's order (sorted by path): A added, C changed, D deleted. */
export function containerChanges(stores: Stores, c: Container): Change[] {
  const dir = stores.containers.pathOf(c.id);
  if (isVfsContainer(dir)) {
    // vfs: the container's tree against the manifest of what it held when it was built.
    const v = vfsLayout(dir);
    return vfsRootfs(dir) ? vfsChanges(v.tree, v.manifest).map((ch) => ({ kind: ch.kind, path: `/${ch.rel}` })) : [];
  }
  const rec = stores.images.get(c.image);
  const lowers = rec ? chainIds(stores.images.layers(rec).map((l) => l.diffId)).map((ch) => stores.snapshots.pathFor(ch)).reverse() : [];
  const upper = path.join(stores.containers.pathOf(c.id), 'upper');
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
      const existed = inLowers(lowers, r);
      out.push({ kind: existed ? 'C' : 'A', path: `/${r}` });
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
