// What a build prints: docker's classic builder lines (`Step 3/9 : …`, ` ---> Using cache`, ` ---> Running in …`,
// the RUN output, ` ---> <id>`), nothing (-q, which still keeps the RUN output's tail for errors), or a
// buildkit-like view redrawn in place on a terminal (--progress tty).

export interface BuildLogger {
  /** A numbered step starts (`text` is the instruction as written). */
  step(n: number, total: number, text: string): void;
  /** An ONBUILD trigger step starts (not numbered). */
  trigger(text: string): void;
  cached(): void;
  running(containerId: string): void;
  output(text: string): void;
  removed(containerId: string): void;
  /** The step's result: an image ID. */
  done(imageId: string): void;
  info(line: string): void;
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
  close(): void {}
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
  private total = 0;
  private n = 0;

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

  step(n: number, total: number, text: string): void {
    this.n = n;
    this.total = total;
    this.begin(`[${n}/${total}] ${text}`);
  }
  trigger(text: string): void {
    this.begin(`[onbuild] ${text}`);
  }
  cached(): void {
    const cur = this.current();
    if (cur) cur.cached = true;
  }
  running(): void {}
  output(text: string): void {
    const cur = this.current();
    if (!cur) return;
    const parts = (cur.partial + text).split('\n');
    cur.partial = parts.pop()!;
    cur.lines.push(...parts);
    if (cur.lines.length > 200) cur.lines.splice(0, cur.lines.length - 200);
  }
  removed(): void {}
  done(): void {
    const cur = this.current();
    if (cur) cur.end = Date.now();
    this.draw();
  }
  info(): void {}
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
    const lines: string[] = [`[+] Building ${secs(Date.now() - this.started)} (${this.steps.filter((s) => s.end !== undefined).length}/${this.total || this.n})${this.timer ? '' : ' FINISHED'}`];
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
