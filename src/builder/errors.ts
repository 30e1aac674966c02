// The builder's error: a module of its own, so faces can recognise it without loading the builder.
import { PlyError } from '../errors.js';

/** A build failure: one message (docker's words), nothing tagged; exit code 1, or a failing RUN's own (as docker's). */
export class BuildError extends PlyError {
  override exitCode = 1;
  constructor(
    message: string,
    /** The last lines a failing RUN printed. */
    readonly tail: string[] = [],
    exitCode = 1,
    /** A failed RUN's own exit code (docker's API reports it as the error's code). */
    readonly runCode?: number,
  ) {
    super(message);
    this.exitCode = exitCode;
  }
}
