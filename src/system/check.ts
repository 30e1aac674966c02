// `ply system check`: verifies the store — blob digests, image records, snapshots, containers, mounts and
// ingests — and with `repair` removes what is broken and unreferenced.
import fs from 'node:fs';
import path from 'node:path';
import { chainIds, Digester, splitDigest } from '../digest/digest.js';
import { ContainerManager } from '../container/manager.js';
import type { Digest, Manifest } from '../oci/types.js';
import { isAbandonedUnpack, isMounted } from '../snapshot/index.js';
import type { Stores } from '../stores.js';
import { removeTree } from '../util/fs.js';

export interface Problem {
  kind: 'blob' | 'image' | 'snapshot' | 'container' | 'mount' | 'ingest' | 'name' | 'network';
  subject: string;
  message: string;
  repaired?: boolean;
  /** Leftovers of interrupted work (a retry resumes them, GC removes them): reported, not an inconsistency. */
  note?: boolean;
}

const STALE_INGEST_MS = 0;

/** Runs one repair; a failure (reported as not repaired) never stops the others: --repair always finishes. */
function attempt(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
}

async function hashFile(file: string, algorithm: 'sha256' | 'sha512'): Promise<Digest> {
  const d = new Digester(algorithm);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) d.update(chunk as Buffer);
  return d.digest();
}

export async function checkStore(stores: Stores, opts: { repair?: boolean } = {}): Promise<Problem[]> {
  const problems: Problem[] = [];
  const report = (p: Problem) => problems.push(p);
  const { content, images, snapshots, containers } = stores;
  const manager = new ContainerManager(stores);

  // Blobs: each must hash to its name.
  const corrupt = new Set<string>();
  for (const d of content.list()) {
    const actual = await hashFile(content.path(d), splitDigest(d).algorithm);
    if (actual !== d) corrupt.add(d);
  }
  const referenced: Set<string> = images.referencedBlobs();
  for (const d of corrupt) {
    const held = referenced.has(d);
    let repaired = false;
    if (opts.repair && !held) repaired = content.delete(d as Digest);
    report({ kind: 'blob', subject: d, message: `content does not match its digest${held ? ' (used by an image)' : ''}`, repaired });
  }

  // Images: manifest, config and layers present and consistent.
  const usedChains = new Set<string>();
  for (const img of images.list()) {
    const missing: string[] = [];
    let manifest: Manifest | undefined;
    if (!content.has(img.digest)) missing.push(`manifest ${img.digest}`);
    else {
      try {
        manifest = JSON.parse(content.readBytes(img.digest).toString('utf8')) as Manifest;
      } catch {
        report({ kind: 'image', subject: img.id, message: `manifest ${img.digest} is not valid JSON` });
      }
    }
    if (!content.has(img.id)) missing.push(`config ${img.id}`);
    for (const l of manifest?.layers ?? []) {
      if (!content.has(l.digest)) missing.push(`layer ${l.digest}`);
      else if (!images.layerRecord(l.digest)) missing.push(`layer record for ${l.digest}`);
    }
    for (const m of missing) report({ kind: 'image', subject: img.id, message: `missing ${m}` });
    for (const d of [img.digest, img.id, ...(manifest?.layers ?? []).map((l) => l.digest)]) {
      if (corrupt.has(d)) report({ kind: 'image', subject: img.id, message: `uses corrupt blob ${d}` });
    }
    if (manifest && missing.length === 0) {
      try {
        for (const c of chainIds(images.layers(img).map((l) => l.diffId))) usedChains.add(c);
      } catch {
        // reported above
      }
    }
  }

  // Snapshots: every record has its directory; every directory has a record; parents chain.
  const snapRows = snapshots.layers.records();
  const known = new Set(snapRows.map((r) => r.chain_id));
  for (const r of snapRows) {
    const dir = snapshots.layers.pathFor(r.chain_id);
    if (!fs.existsSync(dir)) {
      if (opts.repair) snapshots.layers.forget(r.chain_id);
      report({ kind: 'snapshot', subject: r.chain_id, message: 'unpacked layer directory is missing (it is unpacked again on next use)', repaired: opts.repair });
    }
    if (r.parent && !known.has(r.parent as Digest)) report({ kind: 'snapshot', subject: r.chain_id, message: `parent ${r.parent} is not unpacked` });
  }
  const dirsByName = new Map(snapRows.map((r) => [path.basename(snapshots.layers.pathFor(r.chain_id)), r.chain_id]));
  for (const name of fs.readdirSync(snapshots.dir)) {
    if (name === 'empty' || dirsByName.has(name)) continue;
    if (name.startsWith('tmp-') && !isAbandonedUnpack(name)) continue; // another process is unpacking it
    const p = path.join(snapshots.dir, name);
    const repaired = opts.repair ? attempt(() => removeTree(p)) : undefined;
    report({ kind: 'snapshot', subject: name, message: name.startsWith('tmp-') ? 'unfinished unpack left behind' : 'directory without a record', repaired, note: true });
  }

  // Containers: directories, images, and state against the runtime (refresh reconciles dead supervisors).
  const containerIds = new Set<string>();
  for (const c0 of containers.list()) {
    const c = manager.refresh(c0);
    containerIds.add(c.id);
    if (!fs.existsSync(containers.pathOf(c.id))) report({ kind: 'container', subject: c.id, message: 'container directory is missing' });
    if (!images.get(c.image)) report({ kind: 'container', subject: c.id, message: `image ${c.image} is missing` });
    const merged = path.join(containers.pathOf(c.id), 'merged');
    if (!manager.isRunning(c) && isMounted(merged)) {
      if (opts.repair) manager.unmountRootfs(c);
      report({ kind: 'mount', subject: c.id, message: `rootfs still mounted at ${merged} though the container is ${c.state}`, repaired: opts.repair });
    }
  }
  for (const name of fs.readdirSync(containers.dir)) {
    if (containerIds.has(name)) continue;
    const dir = path.join(containers.dir, name);
    if (isMounted(path.join(dir, 'merged'))) {
      if (opts.repair) snapshots.of(dir).unmount(dir);
      report({ kind: 'mount', subject: name, message: 'rootfs of a removed container still mounted', repaired: opts.repair });
    }
    const repaired = opts.repair && !isMounted(path.join(dir, 'merged')) ? attempt(() => removeTree(dir)) : opts.repair;
    report({ kind: 'container', subject: name, message: 'directory of a removed container', repaired, note: true });
  }

  // Networks: addresses, ports and DNS names of containers that no longer run, veths nobody holds, the firewall.
  const running = new Set(containers.list().filter((c) => manager.isRunning(manager.refresh(c))).map((c) => c.id));
  for (const message of stores.networks.check((id) => running.has(id), !!opts.repair)) {
    report({ kind: 'network', subject: 'network', message, repaired: opts.repair });
  }
  for (const name of stores.volumes.checkMounts((id) => running.has(id), !!opts.repair)) {
    report({ kind: 'mount', subject: name, message: 'volume still mounted though no container uses it', repaired: opts.repair });
  }

  // Ingests no live process holds: half writes.
  for (const { key } of content.removeStaleIngests(STALE_INGEST_MS, { dryRun: !opts.repair })) {
    report({ kind: 'ingest', subject: key, message: 'unfinished write left behind', repaired: opts.repair, note: true });
  }

  // Leases of dead processes and blobs nothing holds are removed by a GC pass in repair mode.
  if (opts.repair) {
    for (const d of images.collectGarbage()) report({ kind: 'blob', subject: d, message: 'unreferenced blob', repaired: true, note: true });
  }
  return problems;
}
