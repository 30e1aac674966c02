// Where a store lives by default: a module of its own so that commands which open no store (`ply version`) can
// find files beside it without loading the stores.
import os from 'node:os';
import path from 'node:path';

/** Store root; $PLY_ROOT, else /var/lib/ply as root, else $XDG_DATA_HOME/ply. */
export function defaultRoot(): string {
  if (process.env.PLY_ROOT) return path.resolve(process.env.PLY_ROOT);
  if (process.getuid?.() === 0) return '/var/lib/ply';
  const xdg = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(xdg, 'ply');
}
