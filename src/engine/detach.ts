// docker's detach keys (ctrl-p ctrl-q by default, `--detach-keys`, the API's detachKeys): parsed as moby/term's
// ToBytes, and found in a client's input as its EscapeProxy does (a partial match is held back until it completes
// or breaks), so the CLI's attach, `run -it` and the API server stop reading input the same way.
import { InvalidArgumentError } from '../errors.js';

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** 'ctrl-p,ctrl-q' → [0x10, 0x11]: single characters, or ctrl-@, ctrl-a … ctrl-z, ctrl-[, ctrl-\, ctrl-], ctrl-^, ctrl-_. */
export function parseDetachKeys(spec: string = DEFAULT_DETACH_KEYS): Buffer {
  const out: number[] = [];
  for (const key of (spec || DEFAULT_DETACH_KEYS).split(',')) {
    if (key.length === 1) out.push(key.charCodeAt(0));
    else if (/^ctrl-[@a-z[\\\]^_]$/.test(key)) out.push(key.charCodeAt(5) & 0x1f);
    else throw new InvalidArgumentError(`Invalid detach keys (${spec}) provided`);
  }
  return Buffer.from(out);
}

/** Finds the detach keys in a stream of input chunks. */
export class DetachKeys {
  private held = 0;

  constructor(private readonly keys: Buffer) {}

  /** The bytes to pass on now, and whether the keys were typed (nothing after them is passed on). */
  push(chunk: Buffer): { data: Buffer; detached: boolean } {
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.held]) {
        this.held++;
        if (this.held === this.keys.length) return { data: Buffer.from(out), detached: true };
        continue;
      }
      // Not the next key: what was held goes on as typed, and this byte may start the sequence again.
      for (let i = 0; i < this.held; i++) out.push(this.keys[i]!);
      this.held = 0;
      if (b === this.keys[0]) this.held = 1;
      else out.push(b);
      if (this.held === this.keys.length) return { data: Buffer.from(out), detached: true };
    }
    return { data: Buffer.from(out), detached: false };
  }
}
