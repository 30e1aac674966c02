// Config instructions (CMD, ENTRYPOINT, ENV, LABEL, EXPOSE, USER, WORKDIR, VOLUME, STOPSIGNAL, HEALTHCHECK,
// ONBUILD): parsed for the builder and for `--change` (`ply import -c`, `ply commit -c`) alike, and applied to an
// image config the way docker's builder does (moby builder/dockerfile dispatchers.go, BuildFromConfig).
import path from 'node:path';
import { isIP } from 'node:net';
import { parseGoDuration } from '../gotemplate/gofmt.js';
import type { ContainerConfig } from '../oci/types.js';
import { fail, goQuote, parseBuilderFlags, parseInstruction, parseJSONArray, TOKEN_WS, trimSpace } from './instruction.js';
import { DockerfileParseError, parseLines, type Instruction } from './lines.js';
import { buildEnvMap, parseKeyValues, processWord, splitWords } from './shell.js';

/** Instructions docker accepts in `docker commit --change` / `docker import --change` (moby validCommitCommands). */
export const VALID_CHANGE_COMMANDS: ReadonlySet<string> = new Set([
  'cmd',
  'entrypoint',
  'healthcheck',
  'env',
  'expose',
  'label',
  'onbuild',
  'stopsignal',
  'user',
  'volume',
  'workdir',
]);

const DEFAULT_SHELL = ['/bin/sh', '-c'];
const MINIMUM_HEALTH_DURATION_NS = 1_000_000; // 1ms, moby container.MinimumDuration


/** An instruction after the parser's per-keyword line parsing (buildkit parser Node). */
interface Node {
  /** Lower-cased keyword, as docker's parser stores it (and prints it in errors). */
  cmd: string;
  flags: string[];
  /** The arguments as the parser splits them for this instruction. */
  list: string[];
  /** Key/value pairs, for ENV and LABEL. */
  pairs: [string, string][];
  json: boolean;
  original: string;
}

/** buildkit parseMaybeJSON: JSON string array, else the whole text as one argument. */
function maybeJSON(args: string): { list: string[]; json: boolean } {
  if (args === '') return { list: [], json: false };
  const j = parseJSONArray(args);
  if (j && !j.strings) fail('when using JSON array syntax, arrays must be comprised of strings only');
  if (j && j.strings) return { list: j.values, json: true };
  return { list: [args], json: false };
}

/** buildkit parseMaybeJSONToList: JSON string array, else whitespace-separated words. */
function maybeJSONToList(args: string): { list: string[]; json: boolean } {
  const j = parseJSONArray(args);
  if (j && !j.strings) fail('when using JSON array syntax, arrays must be comprised of strings only');
  if (j && j.strings) return { list: j.values, json: true };
  return { list: args === '' ? [] : args.split(TOKEN_WS), json: false };
}

/** The arguments of a config instruction as buildkit's parser splits them for its keyword. */
function nodeOf(ins: Instruction): Node {
  const cmd = ins.keyword.toLowerCase();
  const node: Node = { cmd, flags: ins.flags, list: [], pairs: [], json: false, original: ins.original };
  const args = ins.args;
  switch (cmd) {
    case 'cmd':
    case 'entrypoint':
      Object.assign(node, maybeJSON(args));
      break;
    case 'volume':
      Object.assign(node, maybeJSONToList(args));
      break;
    case 'env':
    case 'label':
      if (splitWords(args).length > 0) node.pairs = parseKeyValues(args, cmd.toUpperCase());
      break;
    case 'expose':
      node.list = args === '' ? [] : args.split(TOKEN_WS);
      break;
    case 'stopsignal':
    case 'user':
    case 'workdir':
      node.list = args === '' ? [] : [args];
      break;
    case 'healthcheck': {
      const m = /\p{White_Space}/u.exec(args);
      const type = m ? args.slice(0, m.index) : args;
      if (type === '') break;
      const rest = m ? args.slice(m.index).replace(/^\p{White_Space}+/u, '') : '';
      const sub = maybeJSON(rest);
      node.list = [type, ...sub.list];
      node.json = sub.json;
      break;
    }
    case 'onbuild':
      // Only the trigger's keyword matters here; the trigger itself is kept as written.
      if (args !== '') node.list = [parseInstruction(args).keyword.toLowerCase()];
      break;
  }
  return node;
}

/** A config instruction, parsed (its variables are expanded when it is applied). */
export type ConfigCommand = Command;

type Command =
  | { kind: 'cmd' | 'entrypoint'; cmdLine: string[]; prependShell: boolean }
  | { kind: 'env' | 'label'; pairs: [string, string][] }
  | { kind: 'expose'; ports: string[] }
  | { kind: 'user' | 'workdir' | 'stopsignal'; value: string }
  | { kind: 'volume'; volumes: string[] }
  | { kind: 'onbuild'; expression: string }
  | { kind: 'healthcheck'; health: NonNullable<ContainerConfig['Healthcheck']> };

function exactlyOne(node: Node, kw: string): string {
  if (node.list.length !== 1) fail(`${kw} requires exactly one argument`);
  return node.list[0]!;
}

/** buildkit instructions.ParseCommand for the config instructions. */
function toCommand(node: Node): Command {
  const kw = node.cmd.toUpperCase();
  switch (node.cmd) {
    case 'cmd':
    case 'entrypoint': {
      parseBuilderFlags(node.flags);
      const cmdLine = node.json ? node.list : node.list.length > 0 ? [node.list.join(' ')] : [];
      return { kind: node.cmd, cmdLine, prependShell: !node.json };
    }
    case 'env':
    case 'label':
      parseBuilderFlags(node.flags);
      if (node.pairs.length === 0) fail(`${kw} requires at least one argument`);
      return { kind: node.cmd, pairs: node.pairs };
    case 'expose':
      if (node.list.length === 0) fail('EXPOSE requires at least one argument');
      parseBuilderFlags(node.flags);
      return { kind: 'expose', ports: [...node.list].sort() };
    case 'user':
    case 'workdir': {
      const value = exactlyOne(node, kw);
      parseBuilderFlags(node.flags);
      return { kind: node.cmd, value };
    }
    case 'stopsignal':
      // docker does not parse (or reject) flags on STOPSIGNAL
      return { kind: 'stopsignal', value: exactlyOne(node, kw) };
    case 'volume': {
      if (node.list.length === 0) fail('VOLUME requires at least one argument');
      parseBuilderFlags(node.flags);
      const volumes = node.list.map((v) => trimSpace(v));
      if (volumes.some((v) => v === '')) fail('VOLUME specified can not be an empty string');
      return { kind: 'volume', volumes };
    }
    case 'onbuild': {
      if (node.list.length === 0) fail('ONBUILD requires at least one argument');
      parseBuilderFlags(node.flags);
      const trigger = trimSpace(node.list[0]!).toUpperCase();
      if (trigger === 'ONBUILD') fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      if (trigger === 'MAINTAINER' || trigger === 'FROM') fail(`${trigger} isn't allowed as an ONBUILD trigger`);
      const expression = node.original
        .replace(/^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*/i, '')
        .replace(/^[^\t\n\v\f\r ]+/, (k) => k.toUpperCase());
      return { kind: 'onbuild', expression };
    }
    case 'healthcheck':
      return { kind: 'healthcheck', health: parseHealthcheck(node) };
    default:
      // not reachable: validity is checked first
      return fail(`${node.cmd} is not a valid change command`);
  }
}

function parseHealthcheck(node: Node): NonNullable<ContainerConfig['Healthcheck']> {
  if (node.list.length === 0) fail('HEALTHCHECK requires at least one argument');
  let type = node.list[0]!.toUpperCase();
  const args = node.list.slice(1);
  if (type === 'NONE') {
    if (args.length !== 0) fail('HEALTHCHECK NONE takes no arguments');
    return { Test: ['NONE'] };
  }
  const flags = parseBuilderFlags(node.flags, {
    interval: 'string',
    timeout: 'string',
    'start-period': 'string',
    'start-interval': 'string',
    retries: 'string',
  });
  if (type !== 'CMD') fail(`Unknown type ${goQuote(type)} in HEALTHCHECK (try CMD)`);
  const cmdSlice = node.json ? args : args.length > 0 ? [args.join(' ')] : [];
  if (cmdSlice.length === 0) fail('Missing command after HEALTHCHECK CMD');
  if (!node.json) type = 'CMD-SHELL';

  const health: NonNullable<ContainerConfig['Healthcheck']> = { Test: [type, ...cmdSlice] };
  const interval = (name: string): number => {
    const s = flags.get(name) ?? '';
    if (s === '') return 0;
    const d = parseGoDuration(s);
    if (d === 0) return 0;
    if (d < MINIMUM_HEALTH_DURATION_NS) fail(`Interval ${goQuote(name)} cannot be less than 1ms`);
    return d;
  };
  const fields = [
    ['Interval', 'interval'],
    ['Timeout', 'timeout'],
    ['StartPeriod', 'start-period'],
    ['StartInterval', 'start-interval'],
  ] as const;
  for (const [field, flag] of fields) {
    const d = interval(flag);
    if (d !== 0) health[field] = d;
  }
  const retries = flags.get('retries') ?? '';
  if (retries !== '') {
    if (!/^[+-]?\d+$/.test(retries)) fail(`strconv.ParseInt: parsing ${goQuote(retries)}: invalid syntax`);
    const n = Number(retries);
    if (n > 2147483647 || n < -2147483648) {
      fail(`strconv.ParseInt: parsing ${goQuote(retries)}: value out of range`);
    }
    if (n < 0) fail(`--retries cannot be negative (${n})`);
    if (n !== 0) health.Retries = n;
  }
  return health;
}

// ---------------------------------------------------------------------------------------------------------
// EXPOSE port specs (docker/go-connections nat.ParsePortSpec)

function parsePortNumber(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

function parsePortRange(s: string): [number, number] | undefined {
  if (s === '') return undefined;
  const dash = s.indexOf('-');
  if (dash < 0) {
    const p = parsePortNumber(s);
    return p === undefined ? undefined : [p, p];
  }
  const start = parsePortNumber(s.slice(0, dash));
  const end = parsePortNumber(s.slice(dash + 1).split('-')[0]!);
  if (start === undefined || end === undefined || end < start) return undefined;
  return [start, end];
}

/** `[ip:][hostPort:]containerPort[-end][/proto]` → the exposed container ports, as `port/proto` keys. */
function parsePortSpec(raw: string): string[] {
  const parts = raw.split(':');
  const n = parts.length;
  let ip = '';
  let hostPort = '';
  if (n === 2) hostPort = parts[0]!;
  else if (n >= 3) {
    ip = parts.slice(0, n - 2).join(':');
    hostPort = parts[n - 2]!;
  }
  const last = parts[n - 1]!;
  const slash = last.indexOf('/');
  let containerPort = slash < 0 ? last : last.slice(0, slash);
  let proto = slash < 0 ? '' : last.slice(slash + 1);
  if (containerPort === '') {
    proto = '';
    containerPort = '';
  } else if (proto === '') proto = 'tcp';
  if (containerPort === '') fail(`no port specified: ${raw}<empty>`);
  proto = proto.toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') fail(`invalid proto: ${proto}`);
  if (ip.startsWith('[')) {
    const m = /^\[([^\]]*)\]$/.exec(ip);
    if (!m) fail(`invalid IP address ${ip}`);
    ip = m[1]!;
  }
  if (ip !== '' && isIP(ip) === 0) fail(`invalid IP address: ${ip}`);
  const range = parsePortRange(containerPort);
  if (!range) fail(`invalid containerPort: ${containerPort}`);
  const [start, end] = range;
  if (hostPort !== '') {
    const hostRange = parsePortRange(hostPort);
    if (!hostRange) fail(`invalid hostPort: ${hostPort}`);
    if (end - start !== hostRange[1] - hostRange[0] && end !== start) {
      fail(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
    }
  }
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// STOPSIGNAL (moby/sys/signal ParseSignal, Linux signal names)

const SIGNAL_NAMES = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE',
  'POLL', 'PROF', 'PWR', 'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU',
  'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ', 'RTMIN', 'RTMAX',
  ...Array.from({ length: 15 }, (_, i) => `RTMIN+${i + 1}`),
  ...Array.from({ length: 14 }, (_, i) => `RTMAX-${i + 1}`),
]);

function validateSignal(raw: string): void {
  if (/^[+-]?\d+$/.test(raw)) {
    if (Number(raw) === 0) fail(`invalid signal: ${raw}`);
    return;
  }
  const name = raw.toUpperCase().replace(/^SIG/, '');
  if (!SIGNAL_NAMES.has(name)) fail(`invalid signal: ${raw}`);
}

// ---------------------------------------------------------------------------------------------------------
// applyChanges

/** Set an own enumerable property, even for keys like `__proto__`. */
function setKey<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Go's path.Clean for absolute paths (no trailing slash, except the root). */
function cleanPath(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function normalizeWorkdir(current: string, requested: string): string {
  if (requested === '') fail('cannot normalize nothing');
  if (!requested.startsWith('/')) return cleanPath(path.posix.join('/', current, requested));
  return cleanPath(requested);
}

/** Parses a config instruction (CMD ENTRYPOINT ENV LABEL EXPOSE USER WORKDIR VOLUME STOPSIGNAL HEALTHCHECK ONBUILD). */
export function parseConfigCommand(ins: Instruction): ConfigCommand {
  const node = nodeOf(ins);
  if (!VALID_CHANGE_COMMANDS.has(node.cmd)) fail(`${node.cmd} is not a valid change command`);
  return toCommand(node);
}

/**
 * Apply `--change` values (each one Dockerfile instruction) to an image config, the way
 * `docker commit --change` / `docker import --change` do: the Dockerfile's line parser (lines.ts) and its config
 * instruction parser (parseConfigCommand), then applyConfig. Returns a new object; `config` is not modified.
 *
 * Allowed: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR
 * (keywords case-insensitive). Anything else is refused with docker's `<keyword> is not a valid change
 * command`. All errors are InvalidArgumentError. As in docker, every change is parsed and checked before any is
 * applied.
 */
export function applyChanges(config: ContainerConfig, changes: string[], opts: { buildArgs?: Record<string, string> } = {}): ContainerConfig {
  if (changes.length === 0) return structuredClone(config ?? {}) as ContainerConfig;
  let instructions: Instruction[];
  try {
    instructions = parseLines(changes.join('\n')).instructions;
  } catch (e) {
    if (e instanceof DockerfileParseError) fail(e.reason);
    throw e;
  }
  if (instructions.length === 0) fail('file with no instructions');
  const nodes = instructions.map((ins) => {
    const kw = ins.keyword.toLowerCase();
    return VALID_CHANGE_COMMANDS.has(kw) ? nodeOf(ins) : undefined;
  });
  nodes.forEach((n, i) => {
    if (!n) fail(`${instructions[i]!.keyword.toLowerCase()} is not a valid change command`);
  });
  return applyConfig(config, nodes.map((n) => toCommand(n!)), opts);
}

/**
 * Applies parsed config instructions to an image config, as docker's builder dispatchers do; returns a new object.
 * Variables in ENV, LABEL, EXPOSE, USER, WORKDIR, VOLUME and STOPSIGNAL are expanded from the config's Env as it
 * stands when that instruction is applied (plus `opts.buildArgs`, the builder's ARG values in scope, which the
 * config's Env overrides).
 */
export function applyConfig(config: ContainerConfig, commands: ConfigCommand[], opts: { buildArgs?: Record<string, string> } = {}): ContainerConfig {
  const out = structuredClone(config ?? {}) as ContainerConfig;
  let cmdSet = false;
  for (const c of commands) {
    // The Dockerfile builder expands with its build args in scope too (ENV wins over an ARG of the same name).
    const env = buildEnvMap(out.Env ?? []);
    for (const [k, v] of Object.entries(opts.buildArgs ?? {})) if (!env.has(k)) env.set(k, v);
    const expand = (word: string) => processWord(word, env).result;
    switch (c.kind) {
      case 'cmd':
      case 'entrypoint': {
        let resolved: string[] = [];
        if (c.cmdLine.length > 0) {
          const shell = out.Shell && out.Shell.length > 0 ? out.Shell : DEFAULT_SHELL;
          resolved = c.prependShell ? [...shell, ...c.cmdLine] : [...c.cmdLine];
          delete out.ArgsEscaped; // docker sets ArgsEscaped=false on Linux (omitted from the JSON)
        }
        if (c.kind === 'cmd') {
          out.Cmd = resolved;
          if (c.cmdLine.length > 0) cmdSet = true;
        } else {
          out.Entrypoint = resolved;
          // A CMD inherited from the base config does not survive a new ENTRYPOINT.
          if (!cmdSet) out.Cmd = null;
        }
        break;
      }
      case 'env': {
        const envList = [...(out.Env ?? [])];
        for (const [rawKey, rawValue] of c.pairs) {
          const key = expand(rawKey);
          const entry = `${key}=${expand(rawValue)}`;
          const i = envList.findIndex((e) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e) === key);
          if (i >= 0) envList[i] = entry;
          else envList.push(entry);
        }
        out.Env = envList;
        break;
      }
      case 'label': {
        const labels: Record<string, string> = { ...(out.Labels ?? {}) };
        for (const [k, v] of c.pairs) setKey(labels, expand(k), expand(v));
        out.Labels = labels;
        break;
      }
      case 'expose': {
        const ports = c.ports.flatMap((p) => processWord(p, env).words);
        const keys = ports.flatMap(parsePortSpec);
        const exposed: Record<string, Record<string, never>> = { ...(out.ExposedPorts ?? {}) };
        for (const k of keys) setKey(exposed, k, {});
        out.ExposedPorts = exposed;
        break;
      }
      case 'user':
        out.User = expand(c.value);
        break;
      case 'workdir':
        out.WorkingDir = normalizeWorkdir(out.WorkingDir ?? '', expand(c.value));
        break;
      case 'stopsignal': {
        const sig = expand(c.value);
        validateSignal(sig);
        out.StopSignal = sig;
        break;
      }
      case 'volume': {
        const volumes: Record<string, Record<string, never>> = { ...(out.Volumes ?? {}) };
        for (const raw of c.volumes) {
          const v = expand(raw);
          if (v === '') fail('VOLUME specified can not be an empty string');
          setKey(volumes, v, {});
        }
        out.Volumes = volumes;
        break;
      }
      case 'onbuild':
        out.OnBuild = [...(out.OnBuild ?? []), c.expression];
        break;
      case 'healthcheck':
        out.Healthcheck = c.health;
        break;
    }
  }
  return out;
}
