// What a build prints: docker's classic builder lines (`Step 3/9 : …`, ` ---> Using cache`, ` ---> Running in …`,
// the RUN output, ` ---> <id>`), nothing (-q, which still keeps the RUN output's tail for errors), BuildKit's
// plain progress (--progress plain: `#5 [build 2/3] RUN …`, timed output lines, `#5 DONE 0.3s`), or a
// BuildKit-like view redrawn in place on a terminal (--progress tty). The two BuildKit styles number steps as
// BuildKit does (per stage, only the instructions that make a filesystem step: FROM, RUN, COPY, ADD, WORKDIR).

import { formatReference, parseNormalized } from '../reference/reference.js';

export interface BuildLogger {
  /**
   * A numbered step starts (`text` is the instruction as written); `vertex`: its BuildKit label
   * (`[build 2/3] RUN make`), undefined for an instruction BuildKit shows no step for (ENV, LABEL, …).
   */
  step(n: number, total: number, text: string, vertex?: string): void;
  /** An ONBUILD trigger step starts (not numbered). */
  trigger(text: string): void;
  cached(): void;
  running(containerId: string): void;
  output(text: string): void;
  removed(containerId: string): void;
  /** The step's result: an image ID. */
  done(imageId: string): void;
  info(line: string): void;
  /** Why the current step missed the cache (--explain-cache). */
  explain(reason: string): void;
  /** The build ended (successfully or not): stop redrawing. */
  close(ok: boolean): void;
}

const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** docker build's classic output. */
export class ClassicLogger implements BuildLogger {
  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}
  step(n: number, total: number, text: string): void {
    this.out.write(`Step ${n}/${total} : ${text}\n`);
  }
  trigger(text: string): void {
    this.out.write(` ---> Executing trigger: ${text}\n`);
  }
  cached(): void {
    this.out.write(' ---> Using cache\n');
  }
  running(id: string): void {
    this.out.write(` ---> Running in ${short(id)}\n`);
  }
  output(text: string): void {
    this.out.write(text);
  }
  removed(id: string): void {
    this.out.write(`Removing intermediate container ${short(id)}\n`);
  }
  done(imageId: string): void {
    this.out.write(` ---> ${short(imageId)}\n`);
  }
  info(line: string): void {
    this.out.write(`${line}\n`);
  }
  explain(reason: string): void {
    this.out.write(` ---> Cache miss: ${reason}\n`);
  }
  close(): void {}
}

/** -q: prints nothing. */
export class QuietLogger implements BuildLogger {
  step(): void {}
  trigger(): void {}
  cached(): void {}
  running(): void {}
  output(): void {}
  removed(): void {}
  done(): void {}
  info(): void {}
  explain(): void {}
  close(): void {}
}

/** A name as BuildKit prints it: docker.io/library/app:v1. */
function qualified(name: string): string {
  try {
    return formatReference(parseNormalized(name));
  } catch {
    return name;
  }
}

/** The image a build wrote, for the BuildKit styles' last step (`exporting to image`). */
export interface ExportSummary {
  id: string;
  names: string[];
}

/** BuildKit's --progress plain: numbered vertices, each output line with its time, DONE/CACHED/ERROR. */
export class PlainLogger implements BuildLogger {
  private n = 0;
  private cur: { id: number; start: number; hidden: boolean; closed: boolean; partial: string } | undefined;

  constructor(private readonly out: NodeJS.WritableStream = process.stderr) {}

  private open(label: string | undefined): void {
    this.finish();
    if (label === undefined) {
      this.cur = { id: 0, start: Date.now(), hidden: true, closed: true, partial: '' };
      return;
    }
    const id = ++this.n;
    this.cur = { id, start: Date.now(), hidden: false, closed: false, partial: '' };
    this.out.write(`#${id} ${label}\n`);
  }

  private secs(): string {
    return ((Date.now() - (this.cur?.start ?? Date.now())) / 1000).toFixed(1);
  }

  /** Ends the open vertex (DONE) unless it was closed already. */
  private finish(): void {
    const c = this.cur;
    if (!c || c.closed) return;
    if (c.partial) this.out.write(`#${c.id} ${this.stamp()} ${c.partial}\n`);
    this.out.write(`#${c.id} DONE ${this.secs()}s\n\n`);
    c.closed = true;
  }

  private stamp(): string {
    return ((Date.now() - (this.cur?.start ?? Date.now())) / 1000).toFixed(3);
  }

  step(_n: number, _total: number, _text: string, vertex?: string): void {
    this.open(vertex);
  }
  trigger(text: string): void {
    this.open(`[onbuild] ${text}`);
  }
  cached(): void {
    const c = this.cur;
    if (!c || c.closed) return;
    this.out.write(`#${c.id} CACHED\n\n`);
    c.closed = true;
  }
  running(): void {}
  output(text: string): void {
    const c = this.cur;
    if (!c || c.hidden) return;
    const parts = (c.partial + text).split('\n');
    c.partial = parts.pop()!;
    for (const line of parts) this.out.write(`#${c.id} ${this.stamp()} ${line}\n`);
  }
  removed(): void {}
  done(): void {
    this.finish();
  }
  info(line: string): void {
    const c = this.cur;
    if (c && !c.closed) {
      this.out.write(`#${c.id} ${line}\n`);
      return;
    }
    this.open(line);
    this.finish();
  }
  explain(reason: string): void {
    const c = this.cur;
    if (c && !c.hidden) this.out.write(`#${c.id} cache miss: ${reason}\n`);
  }
  close(ok: boolean): void {
    const c = this.cur;
    if (c && !c.closed) {
      if (ok) this.finish();
      else {
        if (c.partial) this.out.write(`#${c.id} ${this.stamp()} ${c.partial}\n`);
        this.out.write(`#${c.id} ERROR\n\n`);
        c.closed = true;
      }
    }
  }
  /** The last vertex, as BuildKit's: the image written and its names. */
  exported(s: ExportSummary): void {
    this.open('exporting to image');
    this.out.write(`#${this.n} writing image ${s.id} done\n`);
    for (const name of s.names) this.out.write(`#${this.n} naming to ${qualified(name)} done\n`);
    this.finish();
  }
}

interface TtyStep {
  label: string;
  start: number;
  end?: number;
  cached?: boolean;
  lines: string[];
  partial: string;
}

/** A buildkit-style live view: one line per step with its time, the running step's last output lines below it. */
export class TtyLogger implements BuildLogger {
  private readonly steps: TtyStep[] = [];
  private readonly started = Date.now();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The current instruction has no step of its own in the view (ENV, LABEL, …). */
  private hidden = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {
    this.timer = setInterval(() => this.draw(), 100);
    this.timer.unref();
  }

  private current(): TtyStep | undefined {
    return this.steps[this.steps.length - 1];
  }

  private begin(label: string): void {
    const cur = this.current();
    if (cur && cur.end === undefined) cur.end = Date.now();
    this.steps.push({ label, start: Date.now(), lines: [], partial: '' });
    this.draw();
  }

  step(_n: number, _total: number, text: string, vertex?: string): void {
    if (vertex === undefined) {
      // No step of its own in BuildKit's view: the previous one ends here.
      const cur = this.current();
      if (cur && cur.end === undefined) cur.end = Date.now();
      this.hidden = true;
      return;
    }
    this.hidden = false;
    this.begin(vertex);
  }
  trigger(text: string): void {
    this.begin(`[onbuild] ${text}`);
  }
  cached(): void {
    const cur = this.current();
    if (cur && !this.hidden) cur.cached = true;
  }
  running(): void {}
  output(text: string): void {
    const cur = this.current();
    if (!cur || this.hidden) return;
    const parts = (cur.partial + text).split('\n');
    cur.partial = parts.pop()!;
    cur.lines.push(...parts);
    if (cur.lines.length > 200) cur.lines.splice(0, cur.lines.length - 200);
  }
  removed(): void {}
  done(): void {
    const cur = this.current();
    if (cur && !this.hidden) cur.end = Date.now();
    this.draw();
  }
  info(): void {}
  explain(reason: string): void {
    const cur = this.current();
    if (cur && !this.hidden) cur.lines.push(`cache miss: ${reason}`);
  }
  /** After the build: BuildKit's export step, printed once below the final view. */
  exported(s: ExportSummary): void {
    this.out.write(` => exporting to image\n => => writing image ${s.id}\n`);
    for (const name of s.names) this.out.write(` => => naming to ${qualified(name)}\n`);
  }
  close(ok: boolean): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const cur = this.current();
    if (cur && cur.end === undefined) cur.end = Date.now();
    this.draw(!ok);
  }

  private draw(showAllOutput = false): void {
    const width = Math.max(40, (this.out.columns ?? 100) - 1);
    const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
    const lines: string[] = [`[+] Building ${secs(Date.now() - this.started)} (${this.steps.filter((s) => s.end !== undefined).length}/${this.steps.length})${this.timer ? '' : ' FINISHED'}`];
    for (const s of this.steps) {
      const t = secs((s.end ?? Date.now()) - s.start);
      const label = ` => ${s.cached ? 'CACHED ' : ''}${s.label}`;
      const room = width - t.length - 1;
      const text = label.length > room ? `${label.slice(0, room - 1)}…` : label.padEnd(room);
      lines.push(`${text} ${t}`);
      const running = s.end === undefined;
      if (running || showAllOutput) {
        const out = [...s.lines, ...(s.partial ? [s.partial] : [])].slice(running ? -6 : -10);
        for (const o of out) lines.push(` => => # ${o}`.slice(0, width));
      }
    }
    let text = '';
    if (this.drawn > 0) text += `\x1b[${this.drawn}A`;
    for (const l of lines) text += `\r\x1b[2K${l}\n`;
    this.out.write(`${text}\x1b[J`);
    this.drawn = lines.length;
  }
}
