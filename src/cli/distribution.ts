// Registry commands: login, logout, pull, push — with docker's output.
import { createRequire } from 'node:module';
import type { Command } from 'commander';
import { InvalidArgumentError, UsageError } from '../errors.js';
import { withEngine, out } from './engine.js';
import { ProgressLines } from './progress.js';

function tlsFlag(v: string | boolean | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  return !(v === false || v === 'false' || v === '0');
}

export function registerDistributionCommands(program: Command): void {
  const image = program.commands.find((c) => c.name() === 'image');
  for (const cmd of [program.command('pull'), ...(image ? [image.command('pull')] : [])]) {
    cmd
      .description('Download an image from a registry')
      .usage('[OPTIONS] NAME[:TAG|@DIGEST]')
      .argument('<name>')
      .option('-a, --all-tags', 'Download all tagged images in the repository')
      .option('--platform <string>', 'Set platform if server is multi-platform capable')
      .option('-q, --quiet', 'Suppress verbose output')
      .option('--tls-verify [bool]', 'Require HTTPS and verify certificates (false: allow plain HTTP)')
      .action(pullAction);
  }
  for (const cmd of [program.command('push'), ...(image ? [image.command('push')] : [])]) {
    cmd
      .description('Upload an image to a registry')
      .usage('[OPTIONS] NAME[:TAG]')
      .argument('<name>')
      .option('-a, --all-tags', 'Push all tags of an image to the repository')
      .option('--compression-format <format>', 'Compression format of the layers: gzip (default), zstd or none')
      .option('--compression-level <level>', 'Compression level (gzip 0-9, default: adapted to the link; zstd 1-22, default 3)')
      .option('-q, --quiet', 'Suppress verbose output')
      .option('--tls-verify [bool]', 'Require HTTPS and verify certificates (false: allow plain HTTP)')
      .action(pushAction);
  }
  program
    .command('login')
    .description('Log in to a registry (default: docker.io)')
    .usage('[OPTIONS] [SERVER]')
    .argument('[server]')
    .option('-u, --username <string>', 'Username')
    .option('-p, --password <string>', 'Password')
    .option('--password-stdin', 'Take the password from stdin')
    .option('--tls-verify [bool]', 'Require HTTPS and verify certificates (false: allow plain HTTP)')
    .action(loginAction);
  program
    .command('logout')
    .description('Log out from a registry (default: docker.io)')
    .usage('[SERVER]')
    .argument('[server]')
    .action(async (server: string | undefined) => {
      const { logout } = await import('../engine/auth.js');
      const { key, removed } = await logout(server);
      out(removed ? `Removing login credentials for ${key}\n` : `Not logged in to ${key}\n`);
    });
}

async function pullAction(name: string, f: { allTags?: boolean; platform?: string; quiet?: boolean; tlsVerify?: string | boolean }) {
  await withEngine(async (engine) => {
    const refs = f.allTags ? await engine.images.registryTags(name, { tlsVerify: tlsFlag(f.tlsVerify) }) : [name];
    for (const ref of refs) {
      const lines = new ProgressLines(process.stdout, undefined, f.quiet);
      const res = await engine.images.pull(ref, { platform: f.platform, tlsVerify: tlsFlag(f.tlsVerify), onProgress: (m) => lines.show(m) });
      out(`${res.name}\n`);
    }
  });
}

interface PushFlags {
  allTags?: boolean;
  quiet?: boolean;
  tlsVerify?: string | boolean;
  compressionFormat?: string;
  compressionLevel?: string;
}

async function pushAction(name: string, f: PushFlags) {
  const format = f.compressionFormat?.toLowerCase();
  if (format !== undefined && format !== 'gzip' && format !== 'zstd' && format !== 'none') {
    throw new UsageError(`unsupported compression format "${f.compressionFormat}": use gzip, zstd or none`);
  }
  const level = f.compressionLevel === undefined ? undefined : Number(f.compressionLevel);
  if (level !== undefined && (!/^-?\d+$/.test(f.compressionLevel!.trim()))) {
    throw new UsageError(`invalid compression level "${f.compressionLevel}"`);
  }
  await withEngine(async (engine) => {
    const refs = f.allTags ? engine.images.localTags(name) : [name];
    for (const ref of refs) {
      const lines = new ProgressLines(process.stdout, undefined, f.quiet);
      const res = await engine.images.push(ref, { tlsVerify: tlsFlag(f.tlsVerify), compressionFormat: format, compressionLevel: level, onProgress: (m) => lines.show(m) });
      out(`${res.reference.tag}: digest: ${res.digest} size: ${res.size}\n`);
    }
  });
}

async function readSecret(prompt: string): Promise<string> {
  // No echo: the terminal is put in raw mode and characters are read one by one.
  const stdin = process.stdin;
  process.stderr.write(prompt);
  if (!stdin.isTTY) return (await readLine()).trim();
  stdin.setRawMode(true);
  stdin.resume();
  let value = '';
  try {
    for await (const chunk of stdin) {
      for (const ch of (chunk as Buffer).toString('utf8')) {
        if (ch === '\r' || ch === '\n') return value;
        if (ch === '\u0003') throw new InvalidArgumentError('interrupted');
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    }
    return value;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

async function readLine(prompt?: string): Promise<string> {
  // require, not import(): bin/ply.cjs runs the bundle from a V8 code cache, where import() has no loader.
  const readline = createRequire(import.meta.url)('node:readline') as typeof import('node:readline');
  const rl = readline.createInterface({ input: process.stdin, output: prompt ? process.stderr : undefined, terminal: false });
  if (prompt) process.stderr.write(prompt);
  try {
    return await new Promise<string>((resolve) => {
      rl.once('line', resolve);
      rl.once('close', () => resolve(''));
    });
  } finally {
    rl.close();
  }
}

async function readAllStdin(): Promise<string> {
  let s = '';
  for await (const chunk of process.stdin) s += (chunk as Buffer).toString('utf8');
  return s;
}

async function loginAction(server: string | undefined, f: { username?: string; password?: string; passwordStdin?: boolean; tlsVerify?: string | boolean }) {
  const auth = await import('../engine/auth.js');
  if (f.password && f.passwordStdin) throw new InvalidArgumentError('--password and --password-stdin are mutually exclusive');
  let password = f.password;
  if (f.password) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  if (f.passwordStdin) {
    if (!f.username) throw new InvalidArgumentError('Must provide --username with --password-stdin');
    password = (await readAllStdin()).replace(/\r?\n$/, '');
  }
  let username = f.username;
  if (!username && !password) {
    const saved = await auth.savedLogin(server);
    if (saved) {
      try {
        await auth.checkLogin(server, saved, { tlsVerify: tlsFlag(f.tlsVerify) });
        out('Login Succeeded\n');
        return;
      } catch {
        // fall through to asking
      }
    }
  }
  if (!username) username = (await readLine(`Username${f.username ? ` (${f.username})` : ''}: `)).trim();
  if (!username) throw new InvalidArgumentError('Username is required');
  if (password === undefined) password = await readSecret('Password: ');
  if (!password) throw new InvalidArgumentError('Password is required');
  const res = await auth.login(server, { username, password }, { tlsVerify: tlsFlag(f.tlsVerify) });
  out(`${res.Status}\n`);
}
