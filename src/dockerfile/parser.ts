// The Dockerfile parser: instruction lines (lines.ts) → commands → build stages, with buildkit's rules
// (instructions/parse.go for each instruction). Config instructions (CMD, ENV, …) are parsed by config.ts, the
// same code `--change` uses: one parser for both.
import { applyConfig, parseConfigCommand, type ConfigCommand } from './config.js';
import { parseBuilderFlags, type FlagSpec } from './instruction.js';
import { chompHeredocContent, DockerfileParseError, parseHeredocWord, parseLines, type Heredoc, type Instruction } from './lines.js';
import { parseRunMount } from './mounts.js';
import { splitWords } from './shell.js';

export { chompHeredocContent, DockerfileParseError, parseHeredocWord, parseLines, type Heredoc, type Instruction, type ParsedLines } from './lines.js';

// ---------------------------------------------------------------------------------------------------------
// Instructions (buildkit instructions/parse.go)

export interface KeyValueOptional {
  key: string;
  /** The raw default (quotes and variables still in), or undefined for `ARG NAME`. */
  value?: string;
}

export interface SourceContent {
  /** The heredoc's name: the file name it becomes. */
  path: string;
  data: string;
  expand: boolean;
}

export type Command =
  | { kind: 'FROM'; base: string; stageName?: string; platform?: string }
  | { kind: 'ARG'; args: KeyValueOptional[] }
  /** `mounts`: the `--mount` values as written (variables are expanded at build time: parseRunMount). */
  | { kind: 'RUN'; cmdLine: string[]; prependShell: boolean; network?: string; files: Heredoc[]; mounts: string[] }
  | {
      kind: 'COPY' | 'ADD';
      sources: string[];
      contents: SourceContent[];
      dest: string;
      from?: string;
      chown?: string;
      chmod?: string;
      link: boolean;
      checksum?: string;
      keepGitDir: boolean;
    }
  | { kind: 'SHELL'; shell: string[] }
  | { kind: 'MAINTAINER'; maintainer: string }
  /** CMD ENTRYPOINT ENV LABEL EXPOSE USER WORKDIR VOLUME STOPSIGNAL HEALTHCHECK ONBUILD: applied to the config (config.ts). */
  | { kind: 'CONFIG'; config: ConfigCommand };

export type ParsedCommand = Command & { instruction: Instruction };

const CONFIG_KEYWORDS = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'LABEL', 'EXPOSE', 'USER', 'WORKDIR', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'ONBUILD']);
export const KNOWN_INSTRUCTIONS = new Set([...CONFIG_KEYWORDS, 'FROM', 'ARG', 'RUN', 'COPY', 'ADD', 'SHELL', 'MAINTAINER']);
const STAGE_NAME_RE = /^[a-z][a-z0-9-_.]*$/;

const COPY_FLAGS: FlagSpec = { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'string' };
const ADD_FLAGS: FlagSpec = { chown: 'string', chmod: 'string', link: 'bool', 'keep-git-dir': 'bool', checksum: 'string', exclude: 'string' };

/** Edit distance with transpositions (optimal string alignment), for "did you mean" on unknown instructions. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

function unknownInstruction(keyword: string): string {
  let best = '';
  let bestD = Infinity;
  for (const k of KNOWN_INSTRUCTIONS) {
    const dd = distance(keyword, k);
    if (dd < bestD) {
      bestD = dd;
      best = k;
    }
  }
  const close = bestD <= 1 || (bestD <= 2 && keyword.length >= 6);
  return close ? `unknown instruction: ${keyword} (did you mean ${best}?)` : `unknown instruction: ${keyword}`;
}

/** buildkit's flag parsing; repeatable flags (`--exclude`) are allowed more than once. */
function flagsOf(ins: Instruction, spec: FlagSpec, repeatable: string[] = []): Map<string, string> {
  const single: string[] = [];
  for (const f of ins.flags) {
    const name = f.replace(/^--/, '').split('=')[0]!;
    if (!repeatable.includes(name)) single.push(f);
  }
  return parseBuilderFlags(single, spec);
}

/** Arguments as a JSON string array or whitespace-separated words (buildkit parseMaybeJSONToList). */
function jsonOrWords(ins: Instruction): string[] {
  if (ins.json) return ins.json;
  if (ins.args.trimStart().startsWith('[')) {
    try {
      const v = JSON.parse(ins.args) as unknown;
      if (Array.isArray(v)) throw new Error('when using JSON array syntax, arrays must be comprised of strings only');
    } catch (e) {
      if ((e as Error).message.startsWith('when using')) throw e;
    }
  }
  return ins.args === '' ? [] : ins.args.split(/[\t\v\f\r ]+/);
}

/** Turns one instruction into a command, checking its arguments and flags as buildkit does at parse time. */
export function parseCommand(ins: Instruction): ParsedCommand {
  try {
    return { ...toCommand(ins), instruction: ins };
  } catch (e) {
    if (e instanceof DockerfileParseError) throw e;
    throw new DockerfileParseError((e as Error).message, ins.line);
  }
}

/**
 * The flag splitter joins `--flag value` into `--flag=value`; for a boolean flag written without `=`
 * (`COPY --link src dst`) the word after it is an argument again.
 */
function unjoinBoolFlags(ins: Instruction, spec: FlagSpec): Instruction {
  const flags: string[] = [];
  const moved: string[] = [];
  for (const f of ins.flags) {
    const eq = f.indexOf('=');
    const name = eq < 0 ? f.slice(2) : f.slice(2, eq);
    const value = eq < 0 ? '' : f.slice(eq + 1);
    if (spec[name] === 'bool' && eq >= 0 && !/^(true|false)$/i.test(value) && !ins.original.includes(`--${name}=`)) {
      flags.push(`--${name}`);
      moved.push(value);
    } else {
      flags.push(f);
    }
  }
  if (moved.length === 0) return ins;
  const args = [...moved, ins.args].filter((a) => a !== '').join(' ');
  return { ...ins, flags, args };
}

function toCommand(ins: Instruction): Command {
  const kw = ins.keyword;
  switch (kw) {
    case 'FROM': {
      const flags = flagsOf(ins, { platform: 'string' });
      const words = ins.args === '' ? [] : ins.args.split(/[\t\v\f\r ]+/);
      if (words.length !== 1 && words.length !== 3) throw new Error('FROM requires either one or three arguments');
      let stageName: string | undefined;
      if (words.length === 3) {
        if (words[1]!.toLowerCase() !== 'as') throw new Error("FROM requires either one or three arguments (the second must be 'AS')");
        stageName = words[2]!.toLowerCase();
        if (!STAGE_NAME_RE.test(stageName)) {
          throw new Error(`invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`);
        }
      }
      const platform = flags.get('platform');
      return { kind: 'FROM', base: words[0]!, ...(stageName ? { stageName } : {}), ...(platform ? { platform } : {}) };
    }
    case 'ARG': {
      flagsOf(ins, {});
      const words = splitWords(ins.args);
      if (words.length === 0) throw new Error('ARG requires at least one argument');
      const args = words.map((w): KeyValueOptional => {
        const eq = w.indexOf('=');
        const key = eq < 0 ? w : w.slice(0, eq);
        if (key === '') throw new Error('ARG names can not be blank');
        return eq < 0 ? { key } : { key, value: w.slice(eq + 1) };
      });
      return { kind: 'ARG', args };
    }
    case 'RUN': {
      const flags = flagsOf(ins, { mount: 'string', network: 'string', security: 'string' }, ['mount']);
      const mounts = ins.flags.filter((f) => /^--mount(=|$)/.test(f)).map((f) => f.slice('--mount='.length));
      for (const m of mounts) parseRunMount(m);
      const network = flags.get('network');
      if (network !== undefined && !['default', 'none', 'host'].includes(network)) throw new Error(`unsupported network mode: ${network}`);
      if (flags.get('security') && flags.get('security') !== 'sandbox') throw new Error(`RUN --security=${flags.get('security')} is not supported by ply`);
      if (ins.args === '') throw new Error('RUN requires at least one argument');
      const files = ins.heredocs;
      if (ins.json) return { kind: 'RUN', cmdLine: ins.json, prependShell: false, ...(network ? { network } : {}), files, mounts };
      return { kind: 'RUN', cmdLine: [ins.args], prependShell: true, ...(network ? { network } : {}), files, mounts };
    }
    case 'COPY':
    case 'ADD': {
      ins = unjoinBoolFlags(ins, kw === 'COPY' ? COPY_FLAGS : ADD_FLAGS);
      const flags = flagsOf(ins, kw === 'COPY' ? COPY_FLAGS : ADD_FLAGS, ['exclude']);
      if (ins.flags.some((f) => f.startsWith('--exclude'))) throw new Error(`${kw} --exclude is not supported by ply yet`);
      if (flags.get('parents') === 'true') throw new Error('COPY --parents is not supported by ply yet');
      const words = jsonOrWords(ins);
      if (words.length < 2) {
        throw new Error(`${kw} requires at least two arguments, but only ${words.length === 0 ? 'none were' : 'one was'} provided. Destination could not be determined.`);
      }
      const dest = words[words.length - 1]!;
      if (parseHeredocWord(dest)) throw new Error(`${kw} cannot accept a heredoc as a destination`);
      const byName = new Map(ins.heredocs.map((h) => [h.name, h]));
      const sources: string[] = [];
      const contents: SourceContent[] = [];
      for (const s of words.slice(0, -1)) {
        const h = parseHeredocWord(s);
        const doc = h && byName.get(h.name);
        if (h && doc) {
          contents.push({ path: h.name, data: h.chomp ? chompHeredocContent(doc.content) : doc.content, expand: h.expand });
        } else {
          sources.push(s);
        }
      }
      const from = flags.get('from');
      const chown = flags.get('chown');
      const chmod = flags.get('chmod');
      const checksum = flags.get('checksum');
      return {
        kind: kw,
        sources,
        contents,
        dest,
        ...(from !== undefined ? { from } : {}),
        ...(chown ? { chown } : {}),
        ...(chmod ? { chmod } : {}),
        link: flags.get('link') === 'true',
        ...(checksum ? { checksum } : {}),
        keepGitDir: flags.get('keep-git-dir') === 'true',
      };
    }
    case 'SHELL': {
      flagsOf(ins, {});
      if (!ins.json) throw new Error('SHELL requires the arguments to be in JSON form');
      if (ins.json.length === 0) throw new Error('SHELL requires at least one argument');
      return { kind: 'SHELL', shell: ins.json };
    }
    case 'MAINTAINER': {
      flagsOf(ins, {});
      if (ins.args === '') throw new Error('MAINTAINER requires exactly one argument');
      return { kind: 'MAINTAINER', maintainer: ins.args };
    }
    default:
      if (!CONFIG_KEYWORDS.has(kw)) throw new Error(unknownInstruction(kw));
      return { kind: 'CONFIG', config: validateConfigInstruction(ins) };
  }
}

/** Parses a config instruction, and checks what it means by applying it to an empty config. */
function validateConfigInstruction(ins: Instruction): ConfigCommand {
  const config = parseConfigCommand(ins);
  // With variables in it, what the instruction means depends on the values in scope: checked at build time.
  if (ins.original.includes('$')) return config;
  try {
    applyConfig({}, [config]);
  } catch (e) {
    const msg = (e as Error).message;
    if (!msg.startsWith('failed to process')) throw e;
  }
  return config;
}

// ---------------------------------------------------------------------------------------------------------
// Stages

export interface Stage {
  /** Lower-cased `AS` name. */
  name?: string;
  index: number;
  from: ParsedCommand & { kind: 'FROM' };
  commands: ParsedCommand[];
}

export interface Dockerfile {
  directives: Record<string, string>;
  /** ARG instructions before the first FROM: they are in scope for FROM lines only. */
  metaArgs: (ParsedCommand & { kind: 'ARG' })[];
  stages: Stage[];
  warnings: string[];
}

/** Parses a whole Dockerfile into its global ARGs and its stages; every instruction is checked. */
export function parseDockerfile(text: string): Dockerfile {
  const parsed = parseLines(text);
  if (parsed.instructions.length === 0) throw new DockerfileParseError('file with no instructions');
  const metaArgs: (ParsedCommand & { kind: 'ARG' })[] = [];
  const stages: Stage[] = [];
  for (const ins of parsed.instructions) {
    const cmd = parseCommand(ins);
    if (cmd.kind === 'FROM') {
      if (cmd.stageName && stages.some((s) => s.name === cmd.stageName)) {
        throw new DockerfileParseError(`duplicate stage name "${cmd.stageName}"`, ins.line);
      }
      stages.push({ ...(cmd.stageName ? { name: cmd.stageName } : {}), index: stages.length, from: cmd, commands: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) {
      if (cmd.kind === 'ARG') {
        metaArgs.push(cmd);
        continue;
      }
      throw new DockerfileParseError('no build stage in current context', ins.line);
    }
    stage.commands.push(cmd);
  }
  if (stages.length === 0) throw new DockerfileParseError('no build stage in current context');
  return { directives: parsed.directives, metaArgs, stages, warnings: parsed.warnings };
}

/** Parses one ONBUILD trigger (an instruction without heredocs). */
export function parseTrigger(text: string): ParsedCommand {
  const parsed = parseLines(text);
  if (parsed.instructions.length !== 1) throw new DockerfileParseError(`invalid ONBUILD trigger: ${text}`);
  const cmd = parseCommand(parsed.instructions[0]!);
  if (cmd.kind === 'FROM' || cmd.instruction.keyword === 'ONBUILD' || cmd.kind === 'MAINTAINER') {
    throw new DockerfileParseError(`${cmd.instruction.keyword} isn't allowed as an ONBUILD trigger`);
  }
  return cmd;
}
