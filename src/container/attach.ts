// A running container's attach socket (containers/<id>/attach.sock), served by its monitor: what docker's daemon
// keeps in memory for `attach`, held by the process that owns the container's stdio. Clients (the Engine API's
// attach, wait and resize) get the live output and the exit code, and send stdin, stdin's end and terminal sizes.
//
// Frames both ways are docker's stdcopy shape: 8 bytes (kind, three zeros, big-endian uint32 length), then data.
//   monitor → client: 1 stdout, 2 stderr, 3 exit (int32 exit code; the last frame of a run)
//   client → monitor: 0 stdin, 4 stdin closed (StdinOnce ends the container's stdin), 5 resize (uint16 rows, cols)
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const FRAME_STDIN = 0;
export const FRAME_STDOUT = 1;
export const FRAME_STDERR = 2;
export const FRAME_EXIT = 3;
export const FRAME_STDIN_CLOSE = 4;
export const FRAME_RESIZE = 5;

/** Largest frame taken from a client (stdin is split by the sender). */
const MAX_FRAME = 1 << 20;

export const ATTACH_SOCKET = 'attach.sock';

export function encodeFrame(kind: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(8);
  h[0] = kind;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}

/** Splits a byte stream into frames; a frame over `max` bytes is an error (a hostile or confused peer). */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly max = MAX_FRAME) {}

  push(chunk: Buffer): { kind: number; data: Buffer }[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: { kind: number; data: Buffer }[] = [];
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt32BE(4);
      if (len > this.max) throw new Error(`attach frame of ${len} bytes is too large`);
      if (this.buf.length < 8 + len) break;
      out.push({ kind: this.buf[0]!, data: this.buf.subarray(8, 8 + len) });
      this.buf = this.buf.subarray(8 + len);
    }
    return out;
  }
}

/**
 * Runs `fn` with a path for the unix socket `file` that fits sockaddr_un (108 bytes): the path itself, or one
 * through /proc/self/fd/N of its directory when the store's root is deep.
 */
async function withSocketPath<T>(file: string, fn: (p: string) => Promise<T>): Promise<T> {
  if (Buffer.byteLength(file) <= 107) return fn(file);
  const dirFd = fs.openSync(path.dirname(file), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    return await fn(`/proc/self/fd/${dirFd}/${path.basename(file)}`);
  } finally {
    fs.closeSync(dirFd);
  }
}

export interface AttachHandlers {
  stdin(data: Buffer): void;
  /** A client that sent stdin closed it (its end of input). */
  stdinClosed(): void;
  resize(rows: number, cols: number): void;
}

/** The monitor's side: accepts clients, fans output out to them, passes their input in. */
export class AttachServer {
  private readonly server: net.Server;
  private readonly clients = new Set<net.Socket>();
  private connected = 0;
  private waiters: { n: number; resolve: () => void }[] = [];

  private constructor(
    private readonly file: string,
    private readonly handlers: AttachHandlers,
  ) {
    this.server = net.createServer((s) => this.accept(s));
  }

  static async listen(dir: string, handlers: AttachHandlers): Promise<AttachServer> {
    const file = path.join(dir, ATTACH_SOCKET);
    fs.rmSync(file, { force: true });
    const a = new AttachServer(file, handlers);
    // Only the store's owner may connect (the container directory is private too).
    const oldMask = process.umask(0o177);
    try {
      await withSocketPath(file, (p) => new Promise<void>((resolve, reject) => {
        a.server.once('error', reject);
        a.server.listen(p, () => {
          a.server.off('error', reject);
          resolve();
        });
      }));
    } finally {
      process.umask(oldMask);
    }
    return a;
  }

  private accept(s: net.Socket): void {
    this.clients.add(s);
    this.connected++;
    for (const w of this.waiters.filter((w) => this.connected >= w.n)) w.resolve();
    this.waiters = this.waiters.filter((w) => this.connected < w.n);
    const dec = new FrameDecoder();
    s.on('data', (chunk: Buffer) => {
      let frames;
      try {
        frames = dec.push(chunk);
      } catch {
        s.destroy();
        return;
      }
      for (const f of frames) {
        if (f.kind === FRAME_STDIN) this.handlers.stdin(f.data);
        else if (f.kind === FRAME_STDIN_CLOSE) this.handlers.stdinClosed();
        else if (f.kind === FRAME_RESIZE && f.data.length >= 4) this.handlers.resize(f.data.readUInt16BE(0), f.data.readUInt16BE(2));
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => this.clients.delete(s));
  }

  /** Resolves once `n` clients have connected (the ones a start was held for), or after `timeoutMs`. */
  waitForClients(n: number, timeoutMs: number): Promise<void> {
    if (this.connected >= n) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Output to every client (a slow client is not waited for: the kernel buffers, then its socket backs up alone). */
  output(kind: typeof FRAME_STDOUT | typeof FRAME_STDERR, data: Buffer): void {
    if (this.clients.size === 0) return;
    const f = encodeFrame(kind, data);
    for (const s of this.clients) s.write(f);
  }

  /** The run ended: each client gets the exit code, then its connection ends. */
  finish(code: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32BE(code, 0);
    const f = encodeFrame(FRAME_EXIT, b);
    for (const s of this.clients) s.end(f);
  }

  /** Stops accepting and removes the socket (clients already finished keep draining). */
  close(): void {
    this.server.close();
    fs.rmSync(this.file, { force: true });
  }
}

/** A client of a monitor's attach socket. */
export interface AttachConnection {
  /** Output frames as they come (stdout 1, stderr 2); ends after the run's end (or when the monitor went away). */
  output: AsyncIterable<{ kind: 1 | 2; data: Buffer }>;
  /** The run's exit code: resolves when the exit frame comes, or undefined if the connection ended without one. */
  exit: Promise<number | undefined>;
  stdin(data: Buffer): void;
  closeStdin(): void;
  resize(rows: number, cols: number): void;
  close(): void;
}

/** Connects to the attach socket in the container directory `dir`; rejects if no monitor listens there. */
export async function connectAttach(dir: string): Promise<AttachConnection> {
  const file = path.join(dir, ATTACH_SOCKET);
  const socket = await withSocketPath(file, (p) => new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(p);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  }));
  socket.on('error', () => undefined);
  let resolveExit!: (c: number | undefined) => void;
  const exit = new Promise<number | undefined>((r) => (resolveExit = r));
  const dec = new FrameDecoder(Number.MAX_SAFE_INTEGER);
  const queue: { kind: 1 | 2; data: Buffer }[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const f of dec.push(chunk)) {
      if (f.kind === FRAME_EXIT) resolveExit(f.data.length >= 4 ? f.data.readInt32BE(0) : undefined);
      else if (f.kind === FRAME_STDOUT || f.kind === FRAME_STDERR) queue.push({ kind: f.kind, data: Buffer.from(f.data) });
    }
    // Back-pressure: stop reading while the consumer is behind.
    if (queue.length > 64) socket.pause();
    wake?.();
  });
  socket.on('close', () => {
    ended = true;
    resolveExit(undefined);
    wake?.();
  });
  const send = (kind: number, data?: Buffer) => {
    if (!socket.destroyed && socket.writable) socket.write(encodeFrame(kind, data));
  };
  return {
    output: (async function* () {
      for (;;) {
        while (queue.length) {
          yield queue.shift()!;
          if (queue.length < 16) socket.resume();
        }
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    })(),
    exit,
    stdin: (data) => {
      for (let i = 0; i < data.length; i += 64 * 1024) send(FRAME_STDIN, data.subarray(i, i + 64 * 1024));
    },
    closeStdin: () => send(FRAME_STDIN_CLOSE),
    resize: (rows, cols) => {
      const b = Buffer.alloc(4);
      b.writeUInt16BE(Math.max(0, Math.min(65535, rows)), 0);
      b.writeUInt16BE(Math.max(0, Math.min(65535, cols)), 2);
      send(FRAME_RESIZE, b);
    },
    close: () => socket.destroy(),
  };
}
