// Typed errors: the engine throws these, the CLI maps each to one line on stderr and an exit code, the Engine API
// server to an HTTP status (by class: invalid argument 400, not found 404, conflict 409).
//
// Exit codes follow docker's CLI: a command that fails exits 1; a flag or option value refused before anything
// ran exits 125 (UsageError); `run` exits 125 for every failure before the container's process runs, 126/127 when
// that process cannot be executed (StartError), and the process's own code otherwise (the CLI's run applies that).

export class PlyError extends Error {
  /** Exit code the CLI uses for this error (docker's CLI: 1 when a command fails). */
  exitCode = 1;
  /** What the CLI prints before the message ('' for errors docker's CLI prints bare, as a template's). */
  cliPrefix = 'Error: ';
  constructor(message: string, options?: { cause?: unknown }) {
    // Messages often quote user input: control characters are escaped so an error is always one line.
    super(oneLine(message), options);
    this.name = new.target.name;
  }
}

/** A name docker would not parse; `input` and `reason` (docker's error for it, without the input) when known. */
export class InvalidReferenceError extends PlyError {
  constructor(
    message: string,
    readonly input?: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}
export class InvalidArgumentError extends PlyError {}
/** A flag or option value refused before anything ran: docker's CLI exits 125 for these (all commands). */
export class UsageError extends InvalidArgumentError {
  override exitCode = 125;
}
/** A value docker's CLI refuses before it asks the daemon: printed bare (no "Error: "), exit 1. */
export class ClientCheckError extends InvalidArgumentError {
  override cliPrefix = '';
}
export class NotFoundError extends PlyError {}
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

/** A container's process could not be started: docker's codes (127 not found, 126 not executable, 125 otherwise). */
export class StartError extends PlyError {
  constructor(message: string, code: number) {
    super(message);
    this.exitCode = code;
  }
}

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
