// Registry commands: registry serve (ply's built-in OCI distribution registry), registry gc.
import path from 'node:path';
import type { Command } from 'commander';
import { PlyError, UsageError } from '../errors.js';
import { out } from './engine.js';
import type { RegistryOptions } from '../engine/registry.js';

/** The server's own options, as flags: the address has a default, the root defaults to $PLY_ROOT/registry. */
type ServeOptions = Omit<RegistryOptions, 'root' | 'addr' | 'log' | 'drainMs' | 'uploadTtlMs' | 'maxUploadsPerClient'> & {
  addr: string;
  root?: string;
  uploadTtl?: string;
  maxUploadsPerClient?: string;
};

export function registerRegistryCommands(program: Command): void {
  const registry = program.command('registry').description("Run ply's built-in OCI distribution registry").usage('COMMAND');

  registry
    .command('serve')
    .description('Serve an OCI distribution registry (distribution-spec v1.1) in the foreground')
    .usage('[OPTIONS]')
    .option('--addr <host:port>', 'Address to listen on (":5000" for every interface)', '127.0.0.1:5000')
    .option('--root <dir>', 'Storage directory (default $PLY_ROOT/registry)')
    .option('--htpasswd <file>', 'Require logins: an htpasswd file with bcrypt entries (htpasswd -B)')
    .option('--token-realm <url>', "Token realm advertised to clients (default: this server's /token)")
    .option('--tls-cert <file>', 'Serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'Private key of --tls-cert (PEM)')
    .option('--read-only', 'Refuse every push and delete')
    .option('--delete', 'Allow deleting tags, manifests and blobs')
    .option('--upload-ttl <duration>', 'Purge uploads idle longer than this (Go duration, e.g. 24h, 30m)', '24h')
    .option('--max-uploads-per-client <n>', 'Uploads one client (user, or address) may have open; more get 429', '100')
    .action(serveAction);

  registry
    .command('gc')
    .description('Remove blobs no manifest references and uploads abandoned for a day')
    .usage('[OPTIONS]')
    .option('--root <dir>', 'Storage directory (default $PLY_ROOT/registry)')
    .option('--dry-run', 'Only list what would be removed')
    .action(gcAction);
}

async function registryRoot(root: string | undefined): Promise<string> {
  if (root) return path.resolve(root);
  const { defaultRegistryRoot } = await import('../engine/registry.js');
  return defaultRegistryRoot();
}

async function serveAction(opts: ServeOptions): Promise<void> {
  const { serveRegistry } = await import('../engine/registry.js');
  const root = await registryRoot(opts.root);
  if (!!opts.tlsCert !== !!opts.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
  const { parseGoDuration } = await import('../gotemplate/gofmt.js');
  let uploadTtlMs: number | undefined;
  if (opts.uploadTtl !== undefined) {
    try {
      uploadTtlMs = parseGoDuration(opts.uploadTtl) / 1e6;
    } catch (e) {
      throw new UsageError(`invalid --upload-ttl: ${(e as Error).message}`);
    }
    if (!(uploadTtlMs > 0)) throw new UsageError(`invalid --upload-ttl ${opts.uploadTtl}: must be positive`);
  }
  const maxUploads = opts.maxUploadsPerClient === undefined ? undefined : Number(opts.maxUploadsPerClient);
  if (maxUploads !== undefined && (!Number.isInteger(maxUploads) || maxUploads < 1)) {
    throw new UsageError(`invalid --max-uploads-per-client ${opts.maxUploadsPerClient}: expected a positive integer`);
  }
  let server;
  try {
    server = await serveRegistry({
      root,
      addr: opts.addr,
      htpasswd: opts.htpasswd,
      tokenRealm: opts.tokenRealm,
      tlsCert: opts.tlsCert,
      tlsKey: opts.tlsKey,
      readOnly: opts.readOnly,
      delete: opts.delete,
      uploadTtlMs,
      maxUploadsPerClient: maxUploads,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new PlyError(`listen tcp ${opts.addr}: address already in use`);
    if (err.code === 'EACCES') throw new PlyError(`listen tcp ${opts.addr}: permission denied`);
    if (err.code === 'ENOENT') throw new PlyError(`${err.path ?? err.message}: no such file`);
    if (e instanceof PlyError) throw e;
    throw new PlyError(err.message ?? String(e));
  }
  const modes = [opts.htpasswd ? 'auth' : '', opts.readOnly ? 'read-only' : '', opts.delete ? 'delete enabled' : ''].filter(Boolean);
  process.stderr.write(`ply registry listening on ${server.url} (storage ${root}${modes.length ? `; ${modes.join(', ')}` : ''})\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stderr.write(`ply registry: ${signal}, shutting down\n`);
      void server.close().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

async function gcAction(opts: { root?: string; dryRun?: boolean }): Promise<void> {
  const { collectRegistryGarbage, registryServing } = await import('../engine/registry.js');
  const { humanSize } = await import('./format.js');
  const root = await registryRoot(opts.root);
  if (await registryServing(root)) {
    process.stderr.write('ply registry gc: a registry is serving this root: blobs written in the last 15 minutes are kept\n');
  }
  const result = await collectRegistryGarbage(root, { dryRun: opts.dryRun });
  const verb = opts.dryRun ? 'Would delete' : 'Deleted';
  const lines: string[] = [];
  for (const l of result.links) lines.push(`${verb} link: ${l.repository}@${l.digest}`);
  for (const b of result.blobs) lines.push(`${verb} blob: ${b.digest} (${humanSize(b.size)})`);
  for (const u of result.uploads) lines.push(`${verb} upload: ${u}`);
  for (const i of result.ingests) lines.push(`${verb} ingest: ${i}`);
  lines.push(`${opts.dryRun ? 'Reclaimable' : 'Total reclaimed'} space: ${humanSize(result.bytes)}`);
  out(`${lines.join('\n')}\n`);
}
