// Where archive commands (save, export) write: stdout, or a file that appears only once it is complete.
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { ContainerInspect, ImageInspect, NetworkInspect } from '../engine.js';
import { InvalidArgumentError } from '../errors.js';

/** Runs `fn` on stdout, or on a temporary file renamed to `file` once complete (never a partial archive). */
export async function writeAtomically(file: string | undefined, fn: (out: Writable) => Promise<void>): Promise<void> {
  if (!file) {
    await fn(process.stdout);
    return;
  }
  const tmp = tempPath(file);
  const stream = fs.createWriteStream(tmp, { highWaterMark: 1 << 20 });
  try {
    await fn(stream);
    fs.renameSync(tmp, file);
  } catch (e) {
    stream.destroy();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * As writeAtomically, but `fn` gets a file descriptor to write synchronously whenever the output is a regular
 * file (the temporary file, or stdout redirected to a file), and the stdout stream otherwise (a pipe, a
 * terminal). The descriptor is closed here (stdout's is not).
 */
export async function writeAtomicallyToFd(file: string | undefined, fn: (out: Writable | number) => Promise<void>): Promise<void> {
  if (!file) {
    await fn(stdoutIsFile() ? 1 : process.stdout);
    return;
  }
  const tmp = tempPath(file);
  const fd = fs.openSync(tmp, 'w', 0o666);
  let open = true;
  try {
    await fn(fd);
    open = false;
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    if (open) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** A temporary name next to `file` (same file system, so the rename is atomic); its directory must exist. */
function tempPath(file: string): string {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new InvalidArgumentError(`invalid output path: directory "${path.dirname(file)}" does not exist`);
  return path.join(dir, `.${path.basename(file)}.ply-${process.pid}.tmp`);
}

function stdoutIsFile(): boolean {
  try {
    return fs.fstatSync(1).isFile();
  } catch {
    return false;
  }
}

/** inspect's output: docker's JSON (4-space indent), or one line per object through a Go template. */
export async function printInspect(items: (ContainerInspect | ImageInspect | NetworkInspect)[], format?: string): Promise<void> {
  if (format) {
    const { compileTemplate } = await import('../gotemplate/template.js');
    const t = compileTemplate(format, { unescape: false });
    for (const r of items) process.stdout.write(`${t(r)}\n`);
  } else {
    process.stdout.write(`${JSON.stringify(items, null, 4)}\n`);
  }
}

/**
 * docker's inspect: each name that `find` knows, as a JSON array (or through --format); one error line per name it
 * does not (`find` returns undefined), then exit 1.
 */
export async function inspectEach<T extends ContainerInspect | ImageInspect | NetworkInspect>(
  names: string[],
  find: (name: string) => T | undefined,
  format: string | undefined,
  notFound: (name: string) => string,
): Promise<void> {
  const items: T[] = [];
  let missing = 0;
  for (const n of names) {
    const item = find(n);
    if (item !== undefined) items.push(item);
    else {
      process.stderr.write(`Error: ${notFound(n)}\n`);
      missing++;
    }
  }
  await printInspect(items, format);
  if (missing) process.exitCode = 1;
}
