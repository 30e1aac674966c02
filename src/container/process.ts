// The plumbing around one runtime process (a container's run, an exec, a health probe): its exit code, its start
// seen through the pid file, a pseudo-terminal held as its stdio, and output held back until it runs.
import fs from 'node:fs';
import os from 'node:os';
import tty from 'node:tty';
import type { ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { openpty, ptyResize } from '../native/index.js';

/** The process's exit code, 128 + the signal when a signal ended it (a shell's rule); `failed` when it cannot run. */
export function exitCodeOf(child: ChildProcess, failed: number): Promise<number> {
  return new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
    child.on('error', () => resolve(failed));
  });
}

export function exitedOnce(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
}

/** Waits for the runtime's pid file (the process started) or for the runtime to exit first (it failed). */
export async function waitForPid(pidFile: string, exited: Promise<number>): Promise<number> {
  let done = false;
  void exited.then(() => (done = true));
  for (let delay = 2; ; delay = Math.min(delay * 2, 10)) {
    try {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      if (pid > 0) return pid;
    } catch {
      // not yet
    }
    if (done) {
      try {
        const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
        return pid > 0 ? pid : 0;
      } catch {
        return 0;
      }
    }
    // Woken early when the runtime exits (a short-lived container must not wait out the poll interval).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((r) => (timer = setTimeout(r, delay))), exited]);
    clearTimeout(timer);
  }
}

/** A pseudo-terminal of ours as a runtime process's stdio (runc proxies it to the process's own console). */
export interface HeldTerminal {
  /** The slave side, given to the runtime as its stdio and closed here once the runtime has it. */
  slave: number;
  /** The master side as a stream that owns the descriptor (destroying it closes the terminal). */
  term: tty.ReadStream;
  /** Resolves when the terminal's output ends (EIO once every holder of the slave is gone). */
  closed: Promise<void>;
  /** Resizes the terminal and tells the runtime (SIGWINCH), which passes the size on. */
  resize(child: ChildProcess, rows: number, cols: number): void;
}

export function openTerminal(size: readonly number[] | undefined): HeldTerminal {
  const pty = openpty(size?.[0] ?? 24, size?.[1] ?? 80);
  const term = new tty.ReadStream(pty.master);
  // Raw: the process's own console already turned \n into \r\n once.
  term.setRawMode(true);
  const closed = new Promise<void>((r) => {
    term.once('close', () => r());
    term.once('error', () => r());
  });
  return {
    slave: pty.slave,
    term,
    closed,
    resize(child, rows, cols) {
      if (term.destroyed) return;
      try {
        ptyResize(pty.master, rows, cols);
        child.kill('SIGWINCH');
      } catch {
        // the terminal is gone
      }
    },
  };
}

/** While the process runs, the size of ply's own terminal follows to `resize`. */
export function followOwnTerminal(child: ChildProcess, resize: (rows: number, cols: number) => void): void {
  const onWinch = () => resize(process.stdout.rows, process.stdout.columns);
  process.stdout.on('resize', onWinch);
  void exitedOnce(child).then(() => process.stdout.off('resize', onWinch));
}

/**
 * Output held back until the process is known to run: before that, what the runtime writes can only be its own
 * complaint, which ply reports once, in its own words.
 */
export class HeldOutput {
  private held: [Writable, Buffer][] | undefined = [];

  write(to: Writable, d: Buffer): void {
    if (this.held) this.held.push([to, d]);
    else to.write(d);
  }

  /** From now on output goes straight through; what was held is written (`show`) or dropped. */
  release(show = true): void {
    const h = this.held;
    this.held = undefined;
    if (show) for (const [to, d] of h ?? []) to.write(d);
  }
}
