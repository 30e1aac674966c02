// The registry's metadata DB: one SQLite file (WAL) next to the registry's blob store; versioned migrations.
import { openSqlite, type DB } from '../db/db.js';

export { writeTx } from '../db/db.js';
export type RegistryDB = DB;

/** Each entry upgrades the schema by one version; never edit a released entry, append a new one. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE repositories (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,           -- team/app
    created INTEGER NOT NULL             -- ms since epoch
  );
  -- A blob is visible in a repository only once pushed to or mounted into it.
  CREATE TABLE blob_links (
    repo INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (repo, digest)
  ) WITHOUT ROWID;
  CREATE INDEX blob_links_digest ON blob_links(digest);
  -- Manifests are blobs too (their exact bytes, in the global store); a row makes one visible in a repository.
  CREATE TABLE manifests (
    repo INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    subject TEXT,                        -- digest of the manifest's subject (referrers API)
    artifact_type TEXT,                  -- the manifest's own artifactType
    config_media_type TEXT,              -- config.mediaType of an image manifest
    annotations TEXT,                    -- JSON object, or NULL
    created INTEGER NOT NULL,
    PRIMARY KEY (repo, digest)
  ) WITHOUT ROWID;
  CREATE INDEX manifests_subject ON manifests(repo, subject);
  CREATE INDEX manifests_digest ON manifests(digest);
  -- What each manifest references (config, layers, child manifests): GC roots.
  CREATE TABLE manifest_refs (
    repo INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, manifest, digest),
    FOREIGN KEY (repo, manifest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX manifest_refs_digest ON manifest_refs(digest);
  CREATE TABLE tags (
    repo INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (repo, name),
    FOREIGN KEY (repo, digest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX tags_digest ON tags(repo, digest);
  -- Upload sessions; their data is the ingest upload-<uuid> in the content store, so they survive a restart.
  CREATE TABLE uploads (
    uuid TEXT PRIMARY KEY,
    repo INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    started INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    offset INTEGER NOT NULL DEFAULT 0
  );
  `,
  `
  -- Who opened each upload (the user, or the address of an anonymous client): the per-client cap counts these.
  ALTER TABLE uploads ADD COLUMN client TEXT NOT NULL DEFAULT '';
  CREATE INDEX uploads_client ON uploads(client, updated);
  CREATE INDEX uploads_updated ON uploads(updated);
  `,
];

export function openRegistryDb(file: string): RegistryDB {
  return openSqlite(file, MIGRATIONS);
}
