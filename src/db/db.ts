// The metadata DB: one SQLite file (WAL) holding names, images, layers, leases; versioned migrations.
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';

export type DB = Database.Database;

/** Each entry upgrades the schema by one version; never edit a released entry, append a new one. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE images (
    digest TEXT PRIMARY KEY,            -- manifest digest
    config_digest TEXT NOT NULL,        -- the image ID
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,              -- unpacked size of all layers
    created TEXT,                       -- from the config
    parent TEXT,                        -- parent image ID (commit, build)
    added INTEGER NOT NULL              -- ms since epoch, when stored
  );
  CREATE INDEX images_config ON images(config_digest);
  CREATE TABLE names (
    name TEXT PRIMARY KEY,              -- full reference: docker.io/library/x:tag
    digest TEXT NOT NULL REFERENCES images(digest),
    updated INTEGER NOT NULL
  );
  CREATE INDEX names_digest ON names(digest);
  CREATE TABLE image_blobs (
    image TEXT NOT NULL REFERENCES images(digest) ON DELETE CASCADE,
    blob TEXT NOT NULL,
    PRIMARY KEY (image, blob)
  ) WITHOUT ROWID;
  CREATE INDEX image_blobs_blob ON image_blobs(blob);
  CREATE TABLE layers (
    digest TEXT PRIMARY KEY,            -- blob digest (compressed or not)
    diff_id TEXT NOT NULL,              -- digest of the uncompressed tar
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,              -- blob size
    unpacked_size INTEGER NOT NULL      -- sum of the entries' sizes
  );
  CREATE INDEX layers_diff_id ON layers(diff_id);
  CREATE TABLE repo_digests (
    image TEXT NOT NULL REFERENCES images(digest) ON DELETE CASCADE,
    name TEXT NOT NULL,                 -- repository@digest
    PRIMARY KEY (image, name)
  ) WITHOUT ROWID;
  CREATE TABLE leases (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    created INTEGER NOT NULL
  );
  CREATE TABLE lease_blobs (
    lease TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    blob TEXT NOT NULL,
    PRIMARY KEY (lease, blob)
  ) WITHOUT ROWID;
  CREATE INDEX lease_blobs_blob ON lease_blobs(blob);
  `,
  `
  CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,             -- directory name under snapshots/ (short: overlay's mount data is one page)
    chain_id TEXT UNIQUE NOT NULL,
    diff_id TEXT NOT NULL,
    parent TEXT,                        -- parent chain ID
    size INTEGER NOT NULL,
    created INTEGER NOT NULL
  );
  CREATE TABLE containers (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    image TEXT NOT NULL,                -- manifest digest
    image_ref TEXT NOT NULL,            -- as the user named it
    created INTEGER NOT NULL,
    config TEXT NOT NULL,               -- JSON: ContainerSpec (what create decided)
    state TEXT NOT NULL,                -- created | running | paused | exited | dead | removing
    pid INTEGER NOT NULL DEFAULT 0,
    monitor_pid INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER NOT NULL DEFAULT 0,
    restart_count INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX containers_image ON containers(image);
  CREATE TABLE volumes (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}'
  );
  `,
  `
  CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,               -- sha256 of a build step: parent image ID, instruction, args, sources
    image TEXT NOT NULL REFERENCES images(digest) ON DELETE CASCADE, -- the step's result (manifest digest)
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image);
  `,
  `
  CREATE TABLE networks (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    driver TEXT NOT NULL,               -- bridge | host | null
    subnet TEXT,                        -- a.b.c.d/len (bridge); NULL until the default bridge is first brought up
    gateway TEXT,
    bridge TEXT,                        -- the Linux bridge's name
    internal INTEGER NOT NULL DEFAULT 0,
    dns INTEGER NOT NULL DEFAULT 0,     -- containers resolve each other by name (user networks)
    ipam_user INTEGER NOT NULL DEFAULT 0, -- the subnet was given by the user (docker shows it in IPAM.Config)
    labels TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}',
    created INTEGER NOT NULL
  );
  INSERT INTO networks (id, name, driver, created) VALUES
    (lower(hex(randomblob(32))), 'bridge', 'bridge', CAST(strftime('%s','now') AS INTEGER) * 1000),
    (lower(hex(randomblob(32))), 'host', 'host', CAST(strftime('%s','now') AS INTEGER) * 1000),
    (lower(hex(randomblob(32))), 'none', 'null', CAST(strftime('%s','now') AS INTEGER) * 1000);
  CREATE TABLE sandboxes (              -- a running container's network namespace and published ports
    container TEXT PRIMARY KEY,
    netns TEXT NOT NULL,                -- bind-mounted namespace file
    ports TEXT NOT NULL DEFAULT '[]',   -- JSON: the bindings in force (random host ports resolved)
    created INTEGER NOT NULL
  );
  CREATE TABLE endpoints (              -- one address of a running container on one network
    container TEXT NOT NULL REFERENCES sandboxes(container) ON DELETE CASCADE,
    network TEXT NOT NULL REFERENCES networks(id),
    ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    ifname TEXT NOT NULL,               -- inside the container: eth0, eth1, ...
    host_ifname TEXT NOT NULL,          -- the veth's host end
    id TEXT NOT NULL,                   -- docker's EndpointID
    name TEXT NOT NULL,                 -- the container's name when it joined (DNS, network inspect)
    aliases TEXT NOT NULL DEFAULT '[]', -- resolvable names besides the container's name
    PRIMARY KEY (container, network)
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX endpoints_ip ON endpoints(network, ip);
  `,
  `
  -- The blob-info cache (transport/blobinfo.ts): compressed blobs of layers made by pushes (blobs in the store
  -- are in layers), and the registry repositories known to hold a blob.
  CREATE TABLE blob_variants (
    digest TEXT PRIMARY KEY,            -- the compressed blob
    diff_id TEXT NOT NULL,              -- the digest of the tar it decompresses to
    compression TEXT NOT NULL,          -- gzip | zstd | none
    size INTEGER NOT NULL,
    recipe TEXT,                        -- how ply compressed it (layer/compression.ts compressionRecipe)
    seen INTEGER NOT NULL               -- ms since epoch
  );
  CREATE INDEX blob_variants_diff_id ON blob_variants(diff_id, compression);
  CREATE TABLE blob_locations (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,             -- host[:port]
    repository TEXT NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (digest, registry, repository)
  ) WITHOUT ROWID;
  `,
  `
  -- docker's events (events/log.ts): appended by whichever ply process did the work, followed by rowid; kept for
  -- a bounded time. AUTOINCREMENT: a pruned row's id is never reused, so a follower's position stays valid.
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,         -- Unix nanoseconds
    type TEXT NOT NULL,                 -- container | image | volume | network | ...
    action TEXT NOT NULL,               -- create, start, die, exec_create: CMD, health_status: healthy, ...
    actor TEXT NOT NULL,                -- the actor's ID
    attributes TEXT NOT NULL DEFAULT '{}' -- JSON, keys sorted
  );
  CREATE INDEX events_time ON events(time_nano);
  `,
  `
  -- A running container's --dns servers: on user networks the upstreams of aardvark-dns for its other queries.
  ALTER TABLE sandboxes ADD COLUMN dns TEXT NOT NULL DEFAULT '[]';
  `,
  `
  -- Supervision (supervisor/, container/manager.ts): the kernel's OOM killer struck during the last run; the user
  -- stopped or killed the container (docker's HasBeenManuallyStopped: no policy restart, unless-stopped stays down);
  -- the health check's state (JSON: docker's State.Health) while a check is configured.
  ALTER TABLE containers ADD COLUMN oom_killed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE containers ADD COLUMN manually_stopped INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE containers ADD COLUMN health TEXT;
  `,
  `
  -- What each build cache entry's key was made of (builder/cache.ts), so that --explain-cache can say which part
  -- of a step changed: never values, only short digests of them.
  CREATE TABLE build_cache_inputs (
    key TEXT PRIMARY KEY REFERENCES build_cache(key) ON DELETE CASCADE,
    parent TEXT NOT NULL,               -- the parent image ID the step ran on
    instruction TEXT NOT NULL,          -- the step's history line
    parts TEXT NOT NULL                 -- JSON: part name -> sha256 prefix of its value
  ) WITHOUT ROWID;
  CREATE INDEX build_cache_inputs_parent ON build_cache_inputs(parent);
  CREATE INDEX build_cache_inputs_instruction ON build_cache_inputs(instruction);
  `,
  `
  ALTER TABLE networks ADD COLUMN ip_range TEXT;  -- docker's --ip-range as given: where container addresses come from
  `,
  `
  -- The local driver's options of a volume (JSON: type, device, o; volume/local.ts), NULL for a plain directory.
  ALTER TABLE volumes ADD COLUMN options TEXT;
  `,
];

export function openDb(file: string): DB {
  return openSqlite(file, MIGRATIONS);
}

/** Opens (creating) a SQLite file in WAL mode with foreign keys, brought up to date by `migrations`. */
export function openSqlite(file: string, migrations: string[]): DB {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  makePrivate(file);
  const db = new Database(file, { timeout: 30_000 });
  // Switching a new file to WAL and migrating it take locks that SQLite refuses at once (no busy wait) while
  // another process does the same: several ply processes opening a fresh store must wait their turn.
  retryBusy(() => db.pragma('journal_mode = WAL'));
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  retryBusy(() => migrate(db, migrations));
  return db;
}

/**
 * The DB holds container settings (env values are often secrets): only its owner may read it. SQLite gives
 * the -wal and -shm files the main file's mode, so the main file is created 0600 before SQLite opens it, and
 * the three are fixed in stores made before this rule.
 */
function makePrivate(file: string): void {
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    const st = fs.statSync(f, { throwIfNoEntry: false });
    if (st && (st.mode & 0o077) !== 0) fs.chmodSync(f, st.mode & 0o600);
  }
}

function retryBusy<T>(fn: () => T): T {
  const deadline = Date.now() + 30_000;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    try {
      return fn();
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      if (!code.startsWith('SQLITE_BUSY') && !code.startsWith('SQLITE_LOCKED')) throw e;
      if (Date.now() > deadline) throw e;
      Atomics.wait(pause, 0, 0, delay);
    }
  }
}

function migrate(db: DB, migrations: string[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current >= migrations.length) return;
  // IMMEDIATE: two processes opening a fresh database at once must not both migrate.
  db.transaction(() => {
    const v = db.pragma('user_version', { simple: true }) as number;
    for (let i = v; i < migrations.length; i++) db.exec(migrations[i]!);
    db.pragma(`user_version = ${migrations.length}`);
  }).immediate();
}

/** Runs `fn` in a write transaction that takes the lock up front (no deadlock between readers upgrading). */
export function writeTx<T>(db: DB, fn: () => T): T {
  return db.transaction(fn).immediate();
}
