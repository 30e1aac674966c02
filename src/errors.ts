// Typed errors: the engine throws these, the CLI maps each to one line on stderr and an exit code.

export class PlyError extends Error {
  /** Exit code the CLI uses (docker uses 125 for its own failures, 1 for "not found"-like client errors). */
  exitCode = 125;
  constructor(message: string, options?: { cause?: unknown }) {
    // Messages often quote user input: control characters are escaped so an error is always one line.
    super(oneLine(message), options);
    this.name = new.target.name;
  }
}

export class InvalidReferenceError extends PlyError {}
export class InvalidArgumentError extends PlyError {}
export class NotFoundError extends PlyError {
  override exitCode = 1;
}
export class ConflictError extends PlyError {}
export class DigestMismatchError extends PlyError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    what = 'content',
  ) {
    super(`${what} digest mismatch: expected ${expected}, got ${actual}`);
  }
}
export class InvalidArchiveError extends PlyError {}
export class UnsupportedError extends PlyError {}

function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Whether `e` (or an error it was caused by) is a full disk or quota: ENOSPC, EDQUOT, or SQLite's SQLITE_FULL. */
export function isDiskFull(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && typeof cur === 'object' && depth < 8; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') return true;
  }
  return false;
}
