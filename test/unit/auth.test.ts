// Docker credentials: config.json read/write, credential helpers, and docker.io's key.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  configDir,
  CredentialsError,
  DOCKER_HUB_KEY,
  eraseCredentials,
  getCredentials,
  registryKey,
  storeCredentials,
} from '../../src/auth/config.js';
import { tempDir } from '../helpers.js';

const savedEnv = { DOCKER_CONFIG: process.env.DOCKER_CONFIG, PATH: process.env.PATH, HOME: process.env.HOME };

let binDir: string;
let helperStore: string;
let helperLog: string;

/** A docker-credential-test helper: keeps each server's JSON in a file named after the server's md5. */
function writeHelper(): void {
  const script = `#!/bin/sh
dir='${helperStore}'
echo "$1" >> '${helperLog}'
key() { printf %s "$1" | md5sum | cut -c1-32; }
case "$1" in
get)
  read -r s || true
  f="$dir/$(key "$s")"
  if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
  j=$(cat)
  s=$(printf %s "$j" | sed -n 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/p')
  printf %s "$j" > "$dir/$(key "$s")" ;;
erase)
  read -r s || true
  f="$dir/$(key "$s")"
  if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
list) echo '{}' ;;
*) echo "unknown action" >&2; exit 1 ;;
esac
`;
  fs.writeFileSync(path.join(binDir, 'docker-credential-test'), script, { mode: 0o755 });
  fs.writeFileSync(path.join(binDir, 'docker-credential-other'), script.replace(helperStore, `${helperStore}-other`), {
    mode: 0o755,
  });
  fs.mkdirSync(`${helperStore}-other`, { recursive: true });
}

function configPath(): string {
  return path.join(process.env.DOCKER_CONFIG!, 'config.json');
}
function readConfig(): Record<string, any> {
  return JSON.parse(fs.readFileSync(configPath(), 'utf8')) as Record<string, any>;
}
function writeConfig(obj: unknown): void {
  fs.mkdirSync(process.env.DOCKER_CONFIG!, { recursive: true });
  fs.writeFileSync(configPath(), JSON.stringify(obj));
}
function helperCalls(): string[] {
  return fs.existsSync(helperLog) ? fs.readFileSync(helperLog, 'utf8').trim().split('\n').filter(Boolean) : [];
}

before(() => {
  binDir = tempDir('ply-auth-bin-');
  helperStore = path.join(tempDir('ply-auth-store-'), 'creds');
  fs.mkdirSync(helperStore);
  helperLog = path.join(binDir, 'calls.log');
  writeHelper();
  process.env.PATH = `${binDir}:${savedEnv.PATH}`;
});

after(() => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

beforeEach(() => {
  process.env.DOCKER_CONFIG = path.join(tempDir('ply-auth-cfg-'), 'docker');
  fs.rmSync(helperLog, { force: true });
});

describe('registryKey and configDir', () => {
  it('normalises Docker Hub to https://index.docker.io/v1/', () => {
    for (const s of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/', 'DOCKER.IO']) {
      assert.equal(registryKey(s), DOCKER_HUB_KEY, s);
    }
    assert.equal(DOCKER_HUB_KEY, 'https://index.docker.io/v1/');
  });

  it('keys other registries by host[:port]', () => {
    assert.equal(registryKey('localhost:5000'), 'localhost:5000');
    assert.equal(registryKey('quay.io'), 'quay.io');
    assert.equal(registryKey('https://quay.io/v2/'), 'quay.io');
    assert.equal(registryKey('http://127.0.0.1:5000'), '127.0.0.1:5000');
    assert.equal(registryKey('[::1]:5000'), '[::1]:5000');
  });

  it('uses $DOCKER_CONFIG, else ~/.docker', () => {
    assert.equal(configDir(), process.env.DOCKER_CONFIG);
    const saved = process.env.DOCKER_CONFIG;
    delete process.env.DOCKER_CONFIG;
    process.env.HOME = '/home/someone';
    try {
      assert.equal(configDir(), '/home/someone/.docker');
    } finally {
      process.env.DOCKER_CONFIG = saved;
      process.env.HOME = savedEnv.HOME;
    }
  });
});

describe('config.json auths', () => {
  it('has no credentials when there is no config file', async () => {
    assert.equal(await getCredentials('localhost:5000'), undefined);
    assert.equal(await eraseCredentials('localhost:5000'), false);
    assert.equal(fs.existsSync(configPath()), false);
  });

  it('creates the file (mode 0600) in docker format and reads it back', async () => {
    await storeCredentials('localhost:5000', { username: 'alice', password: 's3cr:et' });
    const st = fs.statSync(configPath());
    assert.equal(st.mode & 0o777, 0o600);
    const cfg = readConfig();
    assert.deepEqual(cfg, { auths: { 'localhost:5000': { auth: Buffer.from('alice:s3cr:et').toString('base64') } } });
    assert.deepEqual(await getCredentials('localhost:5000'), { username: 'alice', password: 's3cr:et' });
    assert.deepEqual(await getCredentials('http://localhost:5000/v2/'), { username: 'alice', password: 's3cr:et' });
    assert.equal(await getCredentials('localhost:5001'), undefined);
    // No temp files left behind.
    assert.deepEqual(fs.readdirSync(process.env.DOCKER_CONFIG!), ['config.json']);
  });

  it('keeps the other keys and entries of the file', async () => {
    writeConfig({
      auths: { 'quay.io': { auth: Buffer.from('q:w').toString('base64'), email: 'q@example.com' } },
      psFormat: 'table {{.ID}}',
      plugins: { x: { y: 'z' } },
    });
    fs.chmodSync(configPath(), 0o644);
    await storeCredentials('docker.io', { username: 'bob', password: 'pw' });
    const cfg = readConfig();
    assert.equal(cfg.psFormat, 'table {{.ID}}');
    assert.deepEqual(cfg.plugins, { x: { y: 'z' } });
    assert.deepEqual(cfg.auths['quay.io'], { auth: Buffer.from('q:w').toString('base64'), email: 'q@example.com' });
    assert.deepEqual(cfg.auths[DOCKER_HUB_KEY], { auth: Buffer.from('bob:pw').toString('base64') });
    assert.equal(fs.statSync(configPath()).mode & 0o777, 0o600);

    assert.deepEqual(await getCredentials('docker.io'), { username: 'bob', password: 'pw' });
    assert.deepEqual(await getCredentials('index.docker.io'), { username: 'bob', password: 'pw' });
    assert.deepEqual(await getCredentials('quay.io'), { username: 'q', password: 'w' });

    // Replacing keeps unrelated fields of the entry (email), drops the old secret.
    await storeCredentials('quay.io', { username: 'q2', password: 'w2' });
    assert.deepEqual(readConfig().auths['quay.io'], { email: 'q@example.com', auth: Buffer.from('q2:w2').toString('base64') });

    assert.equal(await eraseCredentials('docker.io'), true);
    const after = readConfig();
    assert.equal(after.auths[DOCKER_HUB_KEY], undefined);
    assert.ok(after.auths['quay.io']);
    assert.equal(after.psFormat, 'table {{.ID}}');
    assert.equal(await getCredentials('docker.io'), undefined);
    assert.equal(await eraseCredentials('docker.io'), false);
  });

  it('finds entries keyed with a scheme (docker fallback) and identity tokens', async () => {
    writeConfig({
      auths: {
        'http://reg.example:5000': { auth: Buffer.from('u:p').toString('base64') },
        'tok.example': { identitytoken: 'refresh-123' },
      },
    });
    assert.deepEqual(await getCredentials('reg.example:5000'), { username: 'u', password: 'p' });
    assert.deepEqual(await getCredentials('tok.example'), { username: '', password: '', identityToken: 'refresh-123' });
    await storeCredentials('id.example', { username: 'me', password: '', identityToken: 'rt' });
    assert.deepEqual(await getCredentials('id.example'), { username: 'me', password: '', identityToken: 'rt' });
  });

  it('refuses an invalid config file with its path', async () => {
    writeConfig({});
    fs.writeFileSync(configPath(), '{not json');
    await assert.rejects(getCredentials('x.io'), (e: Error) => e instanceof CredentialsError && e.message.includes(configPath()));
  });

  it('writes through a symlinked config.json to its target', async () => {
    const real = path.join(tempDir('ply-auth-real-'), 'real.json');
    fs.writeFileSync(real, JSON.stringify({ keep: 1 }));
    fs.mkdirSync(process.env.DOCKER_CONFIG!, { recursive: true });
    fs.symlinkSync(real, configPath());
    await storeCredentials('a.example', { username: 'a', password: 'b' });
    assert.ok(fs.lstatSync(configPath()).isSymbolicLink());
    assert.equal(JSON.parse(fs.readFileSync(real, 'utf8')).keep, 1);
    assert.deepEqual(await getCredentials('a.example'), { username: 'a', password: 'b' });
  });
});

describe('credential helpers', () => {
  it('stores, gets and erases through credsStore, leaving docker\'s empty auths entry', async () => {
    writeConfig({ credsStore: 'test', other: true });
    await storeCredentials('localhost:5000', { username: 'carol', password: 'pw1' });
    const cfg = readConfig();
    assert.equal(cfg.credsStore, 'test');
    assert.equal(cfg.other, true);
    assert.deepEqual(cfg.auths, { 'localhost:5000': {} }, 'no secret in config.json');
    assert.equal(fs.readdirSync(helperStore).length, 1);

    assert.deepEqual(await getCredentials('localhost:5000'), { username: 'carol', password: 'pw1' });
    assert.equal(await getCredentials('localhost:5001'), undefined, '"credentials not found" means none');
    assert.equal(await eraseCredentials('localhost:5000'), true);
    assert.deepEqual(readConfig().auths, {});
    assert.equal(await getCredentials('localhost:5000'), undefined);
    assert.equal(await eraseCredentials('localhost:5000'), false);
    assert.deepEqual(helperCalls(), ['store', 'get', 'get', 'erase', 'get', 'erase']);
  });

  it('sends Docker Hub\'s key to the helper and maps <token> to an identity token', async () => {
    writeConfig({ credsStore: 'test' });
    await storeCredentials('docker.io', { username: '', password: '', identityToken: 'idtok' });
    const stored = fs.readdirSync(helperStore).map((f) => JSON.parse(fs.readFileSync(path.join(helperStore, f), 'utf8')));
    assert.deepEqual(stored.find((s) => s.ServerURL === DOCKER_HUB_KEY), {
      ServerURL: DOCKER_HUB_KEY,
      Username: '<token>',
      Secret: 'idtok',
    });
    assert.deepEqual(await getCredentials('index.docker.io'), { username: '', password: '', identityToken: 'idtok' });
    assert.equal(await eraseCredentials('docker.io'), true);
  });

  it('uses credHelpers for its host over credsStore, and the file for no helper', async () => {
    writeConfig({ credHelpers: { 'ghcr.example': 'other' } });
    await storeCredentials('ghcr.example', { username: 'g', password: 'h' });
    await storeCredentials('plain.example', { username: 'p', password: 'q' });
    assert.equal(fs.readdirSync(`${helperStore}-other`).length, 1);
    const cfg = readConfig();
    assert.deepEqual(cfg.auths['ghcr.example'], {});
    assert.deepEqual(cfg.auths['plain.example'], { auth: Buffer.from('p:q').toString('base64') });
    assert.deepEqual(await getCredentials('ghcr.example'), { username: 'g', password: 'h' });
    assert.deepEqual(await getCredentials('plain.example'), { username: 'p', password: 'q' });
    assert.equal(await eraseCredentials('ghcr.example'), true);
    assert.equal(fs.readdirSync(`${helperStore}-other`).length, 0);
  });

  it('fails clearly when the helper is not installed', async () => {
    writeConfig({ credsStore: 'missing' });
    await assert.rejects(
      getCredentials('x.example'),
      /exec: "docker-credential-missing": executable file not found in \$PATH/,
    );
    await assert.rejects(storeCredentials('x.example', { username: 'a', password: 'b' }), CredentialsError);
    assert.deepEqual(readConfig(), { credsStore: 'missing' }, 'a failed store writes nothing');
  });
});
