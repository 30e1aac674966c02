// Shared test helpers: temporary stores on tmpfs, running bin/ply, and the busybox rootfs fixture.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TarWriter } from '../src/tar/index.js';
import { reclaimRemovedStores, RUN_DIR } from '../src/network/host.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const PLY = path.join(REPO, 'bin', 'ply');
const TMP_BASE = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) {
    // A failed test may leave containers running and rootfs mounted in its store: stop and unmount them first,
    // so removing the directory neither writes through a mount nor leaves a runtime behind.
    const stateRoot = path.join(d, 'runtime', 'runc');
    for (const id of fs.existsSync(stateRoot) ? fs.readdirSync(stateRoot) : []) {
      spawnSync('runc', ['--root', stateRoot, 'delete', '--force', id], { stdio: 'ignore' });
    }
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => m !== undefined && m.startsWith(`${d}/`));
    for (const m of mounts.reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
    fs.rmSync(d, { recursive: true, force: true });
  }
  // Bridges, firewall tables and DNS servers of the stores just removed (shared machine resources).
  if (tempDirs.length && fs.existsSync(RUN_DIR)) {
    try {
      reclaimRemovedStores();
    } catch (e) {
      process.stderr.write(`test clean-up: ${(e as Error).message}\n`);
    }
  }
});

/** A fresh directory on tmpfs, removed when the process exits. */
export function tempDir(prefix = 'ply-test-'): string {
  const dir = fs.mkdtempSync(path.join(TMP_BASE, prefix));
  tempDirs.push(dir);
  return dir;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/ply synchronously with PLY_ROOT set. */
export function ply(root: string, args: string[], opts: { input?: string | Buffer; env?: Record<string, string> } = {}): RunResult {
  const r = spawnSync(PLY, args, {
    input: opts.input ?? '',
    env: { ...process.env, PLY_ROOT: root, ...opts.env },
    maxBuffer: 256 << 20,
  });
  return { code: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Runs bin/ply asynchronously (for concurrency tests). */
export function plyAsync(root: string, args: string[], opts: { inputFile?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  return collect(
    spawn(PLY, args, {
      env: { ...process.env, PLY_ROOT: root, ...opts.env },
      stdio: [opts.inputFile ? fs.openSync(opts.inputFile, 'r') : 'ignore', 'pipe', 'pipe'],
    }),
  );
}

/** A spawned process's exit code and output, once it has closed. */
export function collect(child: ChildProcess): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** A build context directory with these files (paths may have directories; a Dockerfile among them). */
export function buildContext(files: Record<string, string>): string {
  const dir = tempDir('ply-build-ctx-');
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  return dir;
}

/** Asserts success and returns stdout. */
export function plyOk(root: string, args: string[], opts: { input?: string | Buffer; env?: Record<string, string> } = {}): string {
  const r = ply(root, args, opts);
  if (r.code !== 0) throw new Error(`ply ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

let busybox: string | undefined;
/** The busybox rootfs tar (built once per test process). */
export function busyboxTar(): string {
  if (busybox) return busybox;
  const dir = tempDir('ply-fixture-');
  busybox = path.join(dir, 'busybox-rootfs.tar');
  execFileSync(path.join(REPO, 'test', 'fixtures', 'busybox-rootfs.sh'), [busybox]);
  return busybox;
}

/** Every file below `dir` with its size and mtime, to prove a failed command changed nothing. */
export function snapshotTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = fs.lstatSync(p);
        out.push(`${path.relative(dir, p)} ${st.size}`);
      }
    }
  };
  walk(dir);
  return out.sort();
}

/** mulberry32: a small, seeded, reproducible PRNG for generated test cases. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `fill` with a streaming TarWriter and returns the finished archive. */
export async function tarBytes(fill: (w: TarWriter) => Promise<void>): Promise<Buffer> {
  const w = new TarWriter();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of w.stream) chunks.push(c as Buffer);
  })();
  try {
    await fill(w);
    await w.finish();
  } catch (e) {
    w.destroy(e as Error);
    await done.catch(() => {});
    throw e;
  }
  await done;
  return Buffer.concat(chunks);
}

/** A detached tmux session running `command` on a real terminal, for tests of `-it`; `close()` ends it. */
export function tmuxSession(name: string, command: string, cols = 100, rows = 30) {
  const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
  const screen = () => tmux('capture-pane', '-p', '-t', name);
  tmux('new-session', '-d', '-s', name, '-x', String(cols), '-y', String(rows), command);
  return {
    /** tmux send-keys: text, or key names such as 'Enter', 'C-c', 'C-d'. */
    send: (...keys: string[]) => void tmux('send-keys', '-t', name, ...keys),
    resize: (c: number, r: number) => void tmux('resize-window', '-t', name, '-x', String(c), '-y', String(r)),
    /** Waits (up to 10 s) until the screen matches `re`. */
    async waitFor(re: RegExp): Promise<void> {
      for (let i = 0; i < 200; i++) {
        if (re.test(screen())) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${re}: ${screen()}`);
    },
    close() {
      try {
        tmux('kill-session', '-t', name);
      } catch {
        // already gone
      }
    },
  };
}
