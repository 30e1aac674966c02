// Where archive commands (save, export) write: stdout, or a file that appears only once it is complete.
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { ContainerInspect, ImageInspect, NetworkInspect, VolumeInfo } from '../engine.js';
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

export type InspectKind = 'container' | 'image' | 'network' | 'volume';
export interface Inspected {
  kind: InspectKind;
  value: ContainerInspect | ImageInspect | NetworkInspect | VolumeInfo;
}

/**
 * The objects of docker's inspect types that are Go maps (by path; '*' any key): a key missing from one of these
 * prints <no value>, where a field missing from a struct is an error.
 */
const MAP_PATHS: Record<InspectKind, string[]> = {
  container: [
    'Config.Labels', 'Config.ExposedPorts', 'Config.Volumes', 'HostConfig.PortBindings', 'HostConfig.Tmpfs', 'HostConfig.LogConfig.Config',
    'GraphDriver.Data', 'NetworkSettings.Ports', 'NetworkSettings.Networks', 'NetworkSettings.Networks.*.DriverOpts',
  ],
  image: ['Config.Labels', 'Config.ExposedPorts', 'Config.Volumes', 'ContainerConfig.Labels', 'ContainerConfig.ExposedPorts', 'ContainerConfig.Volumes', 'GraphDriver.Data'],
  network: ['Options', 'Labels', 'Containers', 'IPAM.Options'],
  volume: ['Labels', 'Options', 'Status'],
};

/** Slices of docker's inspect types: null in JSON, but `[]` when a template prints one (a nil slice). */
const CONFIG_SLICES = ['Cmd', 'Entrypoint', 'Env', 'OnBuild', 'Shell'];
const SLICE_PATHS: Record<InspectKind, string[]> = {
  container: [
    'Args', 'ExecIDs', ...CONFIG_SLICES.map((f) => `Config.${f}`),
    ...['Binds', 'CapAdd', 'CapDrop', 'Dns', 'DnsOptions', 'DnsSearch', 'ExtraHosts', 'GroupAdd', 'Links', 'SecurityOpt', 'VolumesFrom', 'DeviceCgroupRules', 'DeviceRequests', 'MaskedPaths', 'ReadonlyPaths'].map((f) => `HostConfig.${f}`),
  ],
  image: ['RepoTags', 'RepoDigests', ...CONFIG_SLICES.flatMap((f) => [`Config.${f}`, `ContainerConfig.${f}`])],
  network: [],
  volume: [],
};

/** Fields of docker's inspect types that its JSON may leave out (omitempty): a template still finds them, zero. */
const OPTIONAL_FIELDS: Record<InspectKind, Record<string, unknown>> = {
  container: {
    SizeRw: null, SizeRootFs: null, 'State.Health': null, 'Config.ExposedPorts': null, 'Config.Healthcheck': null, 'Config.ArgsEscaped': false,
    'Config.StopSignal': '', 'Config.StopTimeout': null, 'Config.Shell': null, 'HostConfig.Tmpfs': null, 'HostConfig.Init': null,
  },
  image: {
    Variant: '', 'Config.ExposedPorts': null, 'Config.Healthcheck': null, 'Config.ArgsEscaped': false, 'Config.StopSignal': '', 'Config.Shell': null,
    'ContainerConfig.ExposedPorts': null, 'ContainerConfig.Healthcheck': null, 'ContainerConfig.StopSignal': '',
  },
  network: {},
  volume: { Status: {}, UsageData: null },
};

/** An empty map that marshals as JSON null (Go's nil map). */
function nilMap(): Record<string, unknown> {
  const m = Object.create(null) as Record<string, unknown>;
  Object.defineProperty(m, 'toJSON', { value: () => null, enumerable: false });
  return m;
}

/** An empty slice that marshals as JSON null (Go's nil slice). */
function nilSlice(): unknown[] {
  const a: unknown[] = [];
  Object.defineProperty(a, 'toJSON', { value: () => null, enumerable: false });
  return a;
}

/** What docker's CLI executes an inspect template on: its typed object (optional fields present) and which parts are maps. */
function templateView(item: Inspected, maps: WeakSet<object>): unknown {
  const view = structuredClone(item.value) as unknown as Record<string, unknown>;
  for (const [p, zero] of Object.entries(OPTIONAL_FIELDS[item.kind])) {
    const parts = p.split('.');
    let o: unknown = view;
    for (const k of parts.slice(0, -1)) o = o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined;
    const last = parts[parts.length - 1]!;
    // Not enumerable: a template finds the field, but json and range leave it out as Go's omitempty does.
    if (o && typeof o === 'object' && !(last in o)) Object.defineProperty(o, last, { value: structuredClone(zero), enumerable: false, writable: true, configurable: true });
  }
  const mark = (o: unknown, parts: string[]) => {
    if (!o || typeof o !== 'object') return;
    const [k, ...rest] = parts as [string, ...string[]];
    const obj = o as Record<string, unknown>;
    for (const key of k === '*' ? Object.keys(obj) : [k]) {
      // A nil map of docker's struct: empty to index, len and range (map[] printed), null in json.
      if (rest.length === 0 && obj[key] === null) obj[key] = nilMap();
      if (rest.length === 0 && obj[key] && typeof obj[key] === 'object') maps.add(obj[key]);
      else mark(obj[key], rest);
    }
  };
  for (const p of MAP_PATHS[item.kind]) mark(view, p.split('.'));
  for (const p of SLICE_PATHS[item.kind]) {
    const parts = p.split('.');
    const parent = parts.slice(0, -1).reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), view);
    const last = parts[parts.length - 1]!;
    if (parent && typeof parent === 'object' && (parent as Record<string, unknown>)[last] === null) (parent as Record<string, unknown>)[last] = nilSlice();
  }
  return view;
}

/**
 * inspect's output: docker's JSON (4-space indent), or one line per object through a Go template executed as
 * docker's CLI does (a malformed template exits 64; one that fails on an object reports it after the others' lines,
 * exit 1).
 */
export async function printInspect(items: Inspected[], format?: string): Promise<void> {
  if (!format) {
    // Go's encoder escapes U+2028 and U+2029 even without HTML escaping.
    process.stdout.write(`${JSON.stringify(items.map((i) => i.value), null, 4).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')}\n`);
    return;
  }
  const { Template, TemplateError } = await import('../gotemplate/template.js');
  const maps = new WeakSet<object>();
  let tmpl: InstanceType<typeof Template>;
  try {
    tmpl = new Template(format, { missingKey: 'error', isMap: (o) => maps.has(o) });
  } catch (e) {
    if (e instanceof TemplateError) e.exitCode = 64;
    throw e;
  }
  let text = '';
  const errors: string[] = [];
  for (const item of items) {
    try {
      text += `${tmpl.execute(templateView(item, maps))}\n`;
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      errors.push(e.message);
    }
  }
  process.stdout.write(text || '\n');
  if (errors.length) {
    process.stderr.write(`${errors.join('\n')}\n`);
    process.exitCode = 1;
  }
}

/**
 * docker's inspect: each name that `find` knows, as a JSON array (or through --format); one error line per name it
 * does not (`find` returns undefined), then exit 1.
 */
export async function inspectEach(
  names: string[],
  find: (name: string) => Inspected | undefined,
  format: string | undefined,
  notFound: (name: string) => string,
): Promise<void> {
  const items: Inspected[] = [];
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

/**
 * One object through `--format` as docker's version/info do: 'json' (or `{{json .}}`) prints it as JSON, else a Go
 * template in which a missing field is an error naming docker's type (`typeName`).
 */
export async function renderTemplateOrJson(format: string, value: object, typeName: string): Promise<string> {
  const { Template } = await import('../gotemplate/template.js');
  const source = format === 'json' ? '{{json .}}' : format;
  return `${new Template(source, { strict: true, typeName }).execute(value)}\n`;
}
