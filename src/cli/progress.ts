// Docker-style per-layer progress: lines redrawn in place on a terminal, plain status lines otherwise.
import type { ProgressMessage } from '../engine.js';
import { humanSize } from './format.js';

export class ProgressLines {
  private readonly order: string[] = [];
  private readonly text = new Map<string, string>();
  private readonly lastStatus = new Map<string, string>();

  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly tty = Boolean(process.stdout.isTTY) && process.env.TERM !== 'dumb',
    private readonly quiet = false,
  ) {}

  /** Draws one of the engine's progress messages (a layer's status, or a line of its own), as the docker CLI does. */
  show(m: ProgressMessage): void {
    if (m.id === undefined) this.message(m.status);
    else this.update(m.id, m.status, m.progressDetail?.current, m.progressDetail?.total);
  }

  /** Prints a line that is not tied to a layer. */
  message(s: string): void {
    if (!this.quiet) this.out.write(`${s}\n`);
  }

  /** Sets the status of `id` ('Pulling fs layer', 'Pushed', …), with a bar when `done`/`total` are given. */
  update(id: string, status: string, done?: number, total?: number): void {
    if (this.quiet) return;
    const bar = done !== undefined && total ? ` ${progressBar(done, total)}` : '';
    const line = `${id}: ${status}${bar}`;
    if (!this.tty) {
      // Plain output: one line per status change, never per chunk.
      if (this.lastStatus.get(id) !== status) this.out.write(`${id}: ${status}\n`);
      this.lastStatus.set(id, status);
      return;
    }
    let i = this.order.indexOf(id);
    if (i < 0) {
      this.order.push(id);
      this.text.set(id, line);
      this.out.write(`${line}\n`);
      return;
    }
    this.text.set(id, line);
    const up = this.order.length - i;
    this.out.write(`\x1b[${up}A\r\x1b[2K${line}\x1b[${up}B\r`);
  }
}

/** `[=====>      ]  12.3MB/40MB`, as docker draws it. */
export function progressBar(done: number, total: number): string {
  const width = 50;
  const filled = Math.min(width, Math.floor((done / total) * width));
  const bar = filled >= width ? '='.repeat(width) : `${'='.repeat(filled)}>${' '.repeat(width - filled - 1)}`;
  return `[${bar}]  ${humanSize(done)}/${humanSize(total)}`;
}
