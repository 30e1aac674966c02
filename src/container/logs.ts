// Container logs in docker's json-file format: one {"log","stream","time"} object per line.
import fs from 'node:fs';

export type Stream = 'stdout' | 'stderr';

export interface LogEntry {
  log: string;
  stream: Stream;
  time: string;
}

/** Appends output as json-file lines; a line without its newline yet waits for the rest. */
export class LogWriter {
  private readonly fd: number;
  private readonly pending: Record<Stream, string> = { stdout: '', stderr: '' };

  constructor(file: string) {
    this.fd = fs.openSync(file, 'a');
  }

  write(stream: Stream, data: Buffer): void {
    const text = this.pending[stream] + data.toString('utf8');
    const lines = text.split('\n');
    this.pending[stream] = lines.pop()!;
    const time = new Date().toISOString();
    let out = '';
    for (const l of lines) out += `${JSON.stringify({ log: `${l}\n`, stream, time })}\n`;
    // Docker splits very long partial lines at 16 KiB; so do we, so a runaway line cannot grow unbounded.
    while (this.pending[stream].length > 16384) {
      out += `${JSON.stringify({ log: this.pending[stream].slice(0, 16384), stream, time })}\n`;
      this.pending[stream] = this.pending[stream].slice(16384);
    }
    if (out) fs.writeSync(this.fd, out);
  }

  close(): void {
    const time = new Date().toISOString();
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.pending[stream]) fs.writeSync(this.fd, `${JSON.stringify({ log: this.pending[stream], stream, time })}\n`);
      this.pending[stream] = '';
    }
    fs.closeSync(this.fd);
  }
}

/** Parses the complete lines of a json-file log starting at byte `offset`; returns the entries and the new offset. */
export function readLog(file: string, offset = 0): { entries: LogEntry[]; offset: number } {
  let buf: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      buf = Buffer.alloc(Math.max(0, size - offset));
      if (buf.length) fs.readSync(fd, buf, 0, buf.length, offset);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return { entries: [], offset };
  }
  const end = buf.lastIndexOf(0x0a) + 1;
  const entries: LogEntry[] = [];
  for (const line of buf.subarray(0, end).toString('utf8').split('\n')) {
    if (!line) continue;
    try {
      entries.push(JSON.parse(line) as LogEntry);
    } catch {
      // a torn line from a crash: skip it
    }
  }
  return { entries, offset: offset + end };
}
