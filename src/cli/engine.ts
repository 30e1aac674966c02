// Opens the engine for one CLI command (loaded lazily: `ply --help` never touches the store).
import type { Engine } from '../engine.js';

export async function withEngine<T>(fn: (engine: Engine) => Promise<T> | T): Promise<T> {
  const { Engine } = await import('../engine.js');
  const engine = Engine.open();
  try {
    return await fn(engine);
  } finally {
    engine.close();
  }
}

/** Writes to stdout, waiting for the pipe to take it (large outputs must not be cut off by process.exit). */
export function out(text: string): void {
  process.stdout.write(text);
}
