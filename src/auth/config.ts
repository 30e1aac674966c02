// Docker's credentials, shared with the docker CLI: `$DOCKER_CONFIG/config.json` (default ~/.docker/config.json)
// with `auths{<server>:{auth: base64(user:pass)}}`, or a credential helper (`credsStore` for every registry,
// `credHelpers{<host>: name}` per registry) speaking the docker-credential-helpers protocol:
//   docker-credential-<name> get     stdin: server URL              stdout: {"ServerURL","Username","Secret"}
//   docker-credential-<name> store   stdin: {"ServerURL","Username","Secret"}
//   docker-credential-<name> erase   stdin: server URL
// A helper that has nothing for a server prints "credentials not found" and exits non-zero.
// An identity token (OAuth2 refresh token) is stored as Username "<token>" (helpers) or `identitytoken` (file).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PlyError } from '../errors.js';

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth2 refresh token the token server gave at login (then username/password may be empty). */
  identityToken?: string;
}

/** The key docker uses for Docker Hub in config.json and with helpers. */
export const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const TOKEN_USERNAME = '<token>';
const NOT_FOUND = 'credentials not found';

export class CredentialsError extends PlyError {}

/** Directory holding config.json: $DOCKER_CONFIG, else ~/.docker. */
export function configDir(): string {
  const env = process.env.DOCKER_CONFIG;
  if (env) return env;
  return path.join(process.env.HOME || os.homedir(), '.docker');
}

export function configFile(): string {
  return path.join(configDir(), 'config.json');
}

/** docker's ConvertToHostname: strips a scheme and any path ('https://quay.io/v2/' -> 'quay.io'). */
function toHostname(server: string): string {
  let s = server.trim();
  if (s.startsWith('http://')) s = s.slice(7);
  else if (s.startsWith('https://')) s = s.slice(8);
  const slash = s.indexOf('/');
  return slash === -1 ? s : s.slice(0, slash);
}

/**
 * The config.json / helper key for a registry, as docker normalises it: Docker Hub (docker.io, index.docker.io,
 * its URL) -> 'https://index.docker.io/v1/'; any other server -> host[:port] (scheme and path dropped).
 */
export function registryKey(domain: string): string {
  const host = toHostname(domain).toLowerCase();
  if (HUB_ALIASES.has(host)) return DOCKER_HUB_KEY;
  return toHostname(domain);
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  email?: string;
  [k: string]: unknown;
}

interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

async function readConfig(): Promise<ConfigFile> {
  let text: string;
  try {
    text = await fs.promises.readFile(configFile(), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CredentialsError(`reading ${configFile()}: ${(e as Error).message}`, { cause: e });
  }
  if (text.trim() === '') return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as ConfigFile;
  } catch (e) {
    throw new CredentialsError(`${configFile()}: invalid config file: ${(e as Error).message}`, { cause: e });
  }
}

/** Writes config.json atomically (temp file in the same directory, fsync, rename), mode 0600. */
async function writeConfig(cfg: ConfigFile): Promise<void> {
  let file = configFile();
  // Keep a symlinked config.json a symlink: write its target.
  try {
    file = await fs.promises.realpath(file);
  } catch {
    /* does not exist yet */
  }
  const dir = path.dirname(file);
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await fs.promises.open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify(cfg, null, '\t') + '\n');
    await fh.chmod(0o600);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
}

/** The helper configured for `key`: credHelpers (by key or host) wins over credsStore. */
function helperFor(cfg: ConfigFile, key: string): string | undefined {
  const helpers = cfg.credHelpers ?? {};
  const host = toHostname(key);
  const candidates = key === DOCKER_HUB_KEY ? [key, 'docker.io', 'index.docker.io', 'registry-1.docker.io'] : [key, host];
  for (const c of candidates) {
    const h = helpers[c];
    if (typeof h === 'string' && h !== '') return h;
  }
  return typeof cfg.credsStore === 'string' && cfg.credsStore !== '' ? cfg.credsStore : undefined;
}

interface HelperResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runHelper(name: string, action: string, input: string): Promise<HelperResult> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(new CredentialsError(`error getting credentials - err: exec: "${program}": executable file not found in $PATH`));
      } else {
        reject(new CredentialsError(`${program} ${action}: ${e.message}`, { cause: e }));
      }
    });
    child.stdin.on('error', () => {
      /* the helper may exit without reading stdin; its exit status tells */
    });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

function helperFailure(name: string, action: string, r: HelperResult): CredentialsError {
  const msg = (r.stdout.trim() || r.stderr.trim() || `exit status ${r.code}`).split('\n')[0];
  return new CredentialsError(`docker-credential-${name} ${action}: ${msg}`);
}

async function helperGet(name: string, key: string): Promise<Credentials | undefined> {
  const r = await runHelper(name, 'get', key);
  if (r.code !== 0) {
    if (r.stdout.includes(NOT_FOUND) || r.stderr.includes(NOT_FOUND)) return undefined;
    throw helperFailure(name, 'get', r);
  }
  let out: { Username?: string; Secret?: string };
  try {
    out = JSON.parse(r.stdout) as { Username?: string; Secret?: string };
  } catch {
    throw new CredentialsError(`docker-credential-${name} get: invalid output`);
  }
  const username = out.Username ?? '';
  const secret = out.Secret ?? '';
  if (username === '' && secret === '') return undefined;
  if (username === TOKEN_USERNAME) return { username: '', password: '', identityToken: secret };
  return { username, password: secret };
}

async function helperStore(name: string, key: string, c: Credentials): Promise<void> {
  const payload = c.identityToken
    ? { ServerURL: key, Username: TOKEN_USERNAME, Secret: c.identityToken }
    : { ServerURL: key, Username: c.username, Secret: c.password };
  const r = await runHelper(name, 'store', JSON.stringify(payload));
  if (r.code !== 0) throw helperFailure(name, 'store', r);
}

async function helperErase(name: string, key: string): Promise<boolean> {
  const r = await runHelper(name, 'erase', key);
  if (r.code === 0) return true;
  if (r.stdout.includes(NOT_FOUND) || r.stderr.includes(NOT_FOUND)) return false;
  throw helperFailure(name, 'erase', r);
}

/** The auths entry for `key`: exact, else the first whose hostname matches (docker's fallback). */
function findAuthKey(auths: Record<string, AuthEntry>, key: string): string | undefined {
  if (Object.prototype.hasOwnProperty.call(auths, key)) return key;
  const host = key === DOCKER_HUB_KEY ? undefined : toHostname(key);
  for (const k of Object.keys(auths)) {
    const kh = registryKey(k);
    if (kh === key || (host !== undefined && toHostname(k) === host)) return k;
  }
  return undefined;
}

function decodeEntry(e: AuthEntry): Credentials | undefined {
  let username = typeof e.username === 'string' ? e.username : '';
  let password = typeof e.password === 'string' ? e.password : '';
  if (typeof e.auth === 'string' && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i === -1) throw new CredentialsError('invalid auth configuration file: auth has no ":"');
    username = decoded.slice(0, i);
    password = decoded.slice(i + 1);
  }
  const identityToken = typeof e.identitytoken === 'string' && e.identitytoken !== '' ? e.identitytoken : undefined;
  if (username === '' && password === '' && !identityToken) return undefined;
  const c: Credentials = { username, password };
  if (identityToken) c.identityToken = identityToken;
  return c;
}

/** Saved credentials for `server` ('docker.io', 'localhost:5000', 'https://index.docker.io/v1/'), or undefined. */
export async function getCredentials(server: string): Promise<Credentials | undefined> {
  const key = registryKey(server);
  const cfg = await readConfig();
  const helper = helperFor(cfg, key);
  if (helper) return helperGet(helper, key);
  const auths = cfg.auths ?? {};
  const k = findAuthKey(auths, key);
  return k === undefined ? undefined : decodeEntry(auths[k] ?? {});
}

/** Saves credentials: through the configured helper (leaving docker's empty auths entry), else in auths. */
export async function storeCredentials(server: string, c: Credentials): Promise<void> {
  const key = registryKey(server);
  const cfg = await readConfig();
  const helper = helperFor(cfg, key);
  const auths: Record<string, AuthEntry> =
    cfg.auths && typeof cfg.auths === 'object' && !Array.isArray(cfg.auths) ? cfg.auths : {};
  const previous = auths[key] ?? {};
  const entry: AuthEntry = {};
  // Keep fields of the entry ply does not manage (e.g. email).
  for (const [k, v] of Object.entries(previous)) {
    if (!['auth', 'username', 'password', 'identitytoken'].includes(k)) entry[k] = v;
  }
  if (helper) {
    await helperStore(helper, key, c);
  } else {
    if (c.identityToken) {
      if (c.username !== '') entry.auth = Buffer.from(`${c.username}:`).toString('base64');
      entry.identitytoken = c.identityToken;
    } else {
      entry.auth = Buffer.from(`${c.username}:${c.password}`).toString('base64');
    }
  }
  cfg.auths = { ...auths, [key]: entry };
  await writeConfig(cfg);
}

/** Removes credentials for `server`; true when there were any. */
export async function eraseCredentials(server: string): Promise<boolean> {
  const key = registryKey(server);
  const cfg = await readConfig();
  const helper = helperFor(cfg, key);
  let removed = false;
  if (helper) removed = await helperErase(helper, key);
  const auths = cfg.auths;
  if (auths && typeof auths === 'object') {
    const k = findAuthKey(auths, key);
    if (k !== undefined) {
      if (!helper && decodeEntry(auths[k] ?? {}) !== undefined) removed = true;
      delete auths[k];
      await writeConfig(cfg);
    }
  }
  return removed;
}
