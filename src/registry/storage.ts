// The registry's storage: one global content store (a blob is stored once, whatever repositories hold it) and
// the metadata DB that says which repository sees which blob, manifest and tag, plus the upload sessions.
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { ContentStore } from '../content/store.js';
import type { Digest } from '../oci/types.js';
import { openRegistryDb, writeTx, type RegistryDB } from './db.js';
import { RegistryError } from '../oci/distribution-errors.js';
import { ensurePrivateRoot } from '../util/fs.js';
import type { ParsedManifest } from './manifest.js';

export interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  subject: string | null;
  artifact_type: string | null;
  config_media_type: string | null;
  annotations: string | null;
}

export interface UploadRow {
  uuid: string;
  repo: number;
  started: number;
  updated: number;
  offset: number;
}

export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export class RegistryStorage {
  readonly store: ContentStore;
  readonly db: RegistryDB;
  private readonly stmts: Record<string, Database.Statement>;

  constructor(readonly root: string) {
    ensurePrivateRoot(root);
    this.store = new ContentStore(root);
    this.db = openRegistryDb(path.join(root, 'registry.db'));
    const s = (sql: string) => this.db.prepare(sql);
    this.stmts = {
      repoId: s('SELECT id FROM repositories WHERE name = ?'),
      repoInsert: s('INSERT OR IGNORE INTO repositories (name, created) VALUES (?, ?)'),
      link: s('SELECT size FROM blob_links WHERE repo = ? AND digest = ?'),
      linkInsert: s('INSERT OR IGNORE INTO blob_links (repo, digest, size, created) VALUES (?, ?, ?, ?)'),
      linkDelete: s('DELETE FROM blob_links WHERE repo = ? AND digest = ?'),
      linkAnyRepo: s('SELECT r.name AS name, l.size AS size FROM blob_links l JOIN repositories r ON r.id = l.repo WHERE l.digest = ?'),
      manifest: s(
        'SELECT digest, media_type, size, subject, artifact_type, config_media_type, annotations FROM manifests WHERE repo = ? AND digest = ?',
      ),
      manifestInsert: s(
        `INSERT OR IGNORE INTO manifests (repo, digest, media_type, size, subject, artifact_type, config_media_type, annotations, created)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      manifestDelete: s('DELETE FROM manifests WHERE repo = ? AND digest = ?'),
      refInsert: s('INSERT OR IGNORE INTO manifest_refs (repo, manifest, digest) VALUES (?, ?, ?)'),
      tag: s('SELECT digest FROM tags WHERE repo = ? AND name = ?'),
      tagUpsert: s(
        `INSERT INTO tags (repo, name, digest, updated) VALUES (?, ?, ?, ?)
         ON CONFLICT (repo, name) DO UPDATE SET digest = excluded.digest, updated = excluded.updated`,
      ),
      tagDelete: s('DELETE FROM tags WHERE repo = ? AND name = ?'),
      tagsAfter: s('SELECT name FROM tags WHERE repo = ? AND name > ? ORDER BY name LIMIT ?'),
      referrers: s(
        'SELECT digest, media_type, size, subject, artifact_type, config_media_type, annotations FROM manifests WHERE repo = ? AND subject = ? ORDER BY created, digest',
      ),
      catalogAfter: s(
        `SELECT name FROM repositories r WHERE name > ?
           AND (EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.id) OR EXISTS (SELECT 1 FROM blob_links l WHERE l.repo = r.id))
         ORDER BY name LIMIT ?`,
      ),
      upload: s('SELECT uuid, repo, started, updated, offset FROM uploads WHERE uuid = ?'),
      uploadInsert: s('INSERT INTO uploads (uuid, repo, started, updated, offset, client) VALUES (?, ?, ?, ?, 0, ?)'),
      uploadsOfClient: s('SELECT uuid, updated FROM uploads WHERE client = ? ORDER BY updated'),
      uploadsIdle: s('SELECT uuid FROM uploads WHERE updated <= ?'),
      uploadUuids: s('SELECT uuid FROM uploads'),
      uploadUpdate: s('UPDATE uploads SET offset = ?, updated = ? WHERE uuid = ?'),
      uploadDelete: s('DELETE FROM uploads WHERE uuid = ?'),
    };
  }

  close(): void {
    this.db.close();
  }

  repoId(name: string): number | undefined {
    const row = this.stmts.repoId!.get(name) as { id: number } | undefined;
    return row?.id;
  }

  ensureRepo(name: string): number {
    const id = this.repoId(name);
    if (id !== undefined) return id;
    this.stmts.repoInsert!.run(name, Date.now());
    return this.repoId(name)!;
  }

  /** The size of a blob visible in the repository (linked, or a manifest of it) whose data is on disk. */
  blobSize(repo: number, digest: Digest): number | undefined {
    const link = this.stmts.link!.get(repo, digest) as { size: number } | undefined;
    if (!link && !this.stmts.manifest!.get(repo, digest)) return undefined;
    try {
      return fs.statSync(this.store.path(digest)).size;
    } catch {
      return undefined;
    }
  }

  isLinked(repo: number, digest: string): boolean {
    return this.stmts.link!.get(repo, digest) !== undefined;
  }

  linkBlob(repo: number, digest: Digest, size: number): void {
    this.stmts.linkInsert!.run(repo, digest, size, Date.now());
  }

  unlinkBlob(repo: number, digest: Digest): boolean {
    return this.stmts.linkDelete!.run(repo, digest).changes > 0;
  }

  /** Repositories holding a link to `digest` (for a mount without `from`). */
  reposWithBlob(digest: Digest): string[] {
    return (this.stmts.linkAnyRepo!.all(digest) as Array<{ name: string }>).map((r) => r.name);
  }

  manifest(repo: number, digest: string): ManifestRow | undefined {
    return this.stmts.manifest!.get(repo, digest) as ManifestRow | undefined;
  }

  resolveTag(repo: number, tag: string): string | undefined {
    return (this.stmts.tag!.get(repo, tag) as { digest: string } | undefined)?.digest;
  }

  /**
   * Records a manifest whose bytes are already in the store, after checking (in the same transaction) that
   * everything it references is in the repository; tags it with `tags`.
   */
  /** Blobs and child manifests `parsed` references that the repository does not hold. */
  missingRefs(repo: number | undefined, parsed: ParsedManifest): Array<{ digest: string; kind: 'blob' | 'manifest' }> {
    const has = (d: string) => repo !== undefined && (this.stmts.link!.get(repo, d) !== undefined || this.stmts.manifest!.get(repo, d) !== undefined);
    return [
      ...parsed.blobs.filter((d) => !has(d)).map((digest) => ({ digest, kind: 'blob' as const })),
      ...parsed.manifests.filter((d) => !has(d)).map((digest) => ({ digest, kind: 'manifest' as const })),
    ];
  }

  /**
   * Records a manifest whose bytes are already in the store, after checking (in the same transaction) that
   * everything it references is in the repository; points `tags` at it.
   */
  putManifest(name: string, digest: Digest, size: number, parsed: ParsedManifest, tags: string[]): void {
    writeTx(this.db, () => {
      const repo = this.ensureRepo(name);
      const missing = this.missingRefs(repo, parsed);
      if (missing.length > 0) throw manifestBlobUnknown(missing);
      const now = Date.now();
      this.stmts.manifestInsert!.run(
        repo,
        digest,
        parsed.mediaType,
        size,
        parsed.subject ?? null,
        parsed.artifactType ?? null,
        parsed.configMediaType ?? null,
        parsed.annotations ? JSON.stringify(parsed.annotations) : null,
        now,
      );
      for (const d of [...parsed.blobs, ...parsed.manifests]) this.stmts.refInsert!.run(repo, digest, d);
      for (const tag of tags) this.stmts.tagUpsert!.run(repo, tag, digest, now);
    });
  }

  deleteTag(repo: number, tag: string): boolean {
    return this.stmts.tagDelete!.run(repo, tag).changes > 0;
  }

  /** Deletes the manifest and every tag pointing at it. */
  deleteManifest(repo: number, digest: string): boolean {
    return writeTx(this.db, () => this.stmts.manifestDelete!.run(repo, digest).changes > 0);
  }

  /** Up to `n` tags after `last`, in byte order, and whether more follow. */
  listTags(repo: number, n: number | undefined, last: string | undefined): { tags: string[]; more: boolean } {
    return page(this.stmts.tagsAfter!, [repo], n, last);
  }

  catalog(n: number | undefined, last: string | undefined): { names: string[]; more: boolean } {
    const { tags, more } = page(this.stmts.catalogAfter!, [], n, last);
    return { names: tags, more };
  }

  referrers(repo: number, subject: string): ReferrerDescriptor[] {
    return (this.stmts.referrers!.all(repo, subject) as ManifestRow[]).map((row) => {
      const d: ReferrerDescriptor = { mediaType: row.media_type, digest: row.digest, size: row.size };
      const artifactType = row.artifact_type ?? row.config_media_type ?? undefined;
      if (artifactType) d.artifactType = artifactType;
      if (row.annotations) d.annotations = JSON.parse(row.annotations) as Record<string, string>;
      return d;
    });
  }

  createUpload(repo: number, uuid: string, client = ''): void {
    const now = Date.now();
    this.stmts.uploadInsert!.run(uuid, repo, now, now, client);
  }

  /** The client's open upload sessions, least recently used first. */
  uploadsOf(client: string): Array<{ uuid: string; updated: number }> {
    return this.stmts.uploadsOfClient!.all(client) as Array<{ uuid: string; updated: number }>;
  }

  /** Upload sessions not written to since `before` (ms since epoch). */
  idleUploads(before: number): string[] {
    return (this.stmts.uploadsIdle!.all(before) as Array<{ uuid: string }>).map((r) => r.uuid);
  }

  uploadUuids(): string[] {
    return (this.stmts.uploadUuids!.all() as Array<{ uuid: string }>).map((r) => r.uuid);
  }

  /** Ends an upload session and drops its data (unless a request is writing it right now: false then). */
  removeUpload(uuid: string): boolean {
    if (!this.store.removeIngest(RegistryStorage.ingestKey(uuid))) return false;
    this.deleteUpload(uuid);
    return true;
  }

  upload(uuid: string): UploadRow | undefined {
    return this.stmts.upload!.get(uuid) as UploadRow | undefined;
  }

  updateUpload(uuid: string, offset: number): void {
    this.stmts.uploadUpdate!.run(offset, Date.now(), uuid);
  }

  deleteUpload(uuid: string): void {
    this.stmts.uploadDelete!.run(uuid);
  }

  /** The ingest key of an upload session's data. */
  static ingestKey(uuid: string): string {
    return `upload-${uuid}`;
  }

  ingestDataPath(uuid: string): string {
    return path.join(this.store.ingestDir, RegistryStorage.ingestKey(uuid), 'data');
  }
}

function page(stmt: Database.Statement, args: unknown[], n: number | undefined, last: string | undefined): { tags: string[]; more: boolean } {
  if (n === 0) return { tags: [], more: false };
  const limit = n === undefined ? -1 : n + 1;
  const rows = stmt.all(...args, last ?? '', limit) as Array<{ name: string }>;
  const names = rows.map((r) => r.name);
  if (n !== undefined && names.length > n) return { tags: names.slice(0, n), more: true };
  return { tags: names, more: false };
}

export function manifestBlobUnknown(missing: Array<{ digest: string; kind: string }>): RegistryError {
  const what = missing.length === 1 ? `${missing[0]!.kind} ${missing[0]!.digest}` : `${missing.length} blobs or manifests`;
  return new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest references ${what} unknown to the repository`, { detail: missing });
}
