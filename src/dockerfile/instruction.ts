// One Dockerfile instruction line: its keyword, leading `--flag`s and arguments, and whether the arguments are a
// JSON array (buildkit frontend/dockerfile/parser: splitCommand, extractBuilderFlags, parseJSON). Every other part
// of the language (lines.ts, shell.ts, config.ts, parser.ts) builds on it; errors are InvalidArgumentError.
import { InvalidArgumentError } from '../errors.js';

/** Go's unicode.IsSpace. */
const SPACE_RE = /^\p{White_Space}$/u;
/** buildkit's reWhitespace / tokenWhitespace: splits instruction words (no newline: lines are already split). */
export const TOKEN_WS = /[\t\v\f\r ]+/;

export function isSpace(ch: string): boolean {
  return SPACE_RE.test(ch);
}

/** Go's strings.TrimSpace. */
export function trimSpace(s: string): string {
  return s.replace(/^\p{White_Space}+|\p{White_Space}+$/gu, '');
}

/** Roughly Go's %q for the strings that end up in error messages. */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

export function fail(message: string): never {
  throw new InvalidArgumentError(message);
}

// ---------------------------------------------------------------------------------------------------------
// Instruction line parsing

export interface ParsedInstruction {
  /** Instruction keyword, upper-cased (`RUN`, `ENV`, ...). */
  keyword: string;
  /** Arguments after the keyword and any leading `--flag` words, whitespace-trimmed, otherwise untouched. */
  args: string;
  /** Set when `args` is a JSON array made only of strings (the exec form of CMD, ENTRYPOINT, VOLUME, ...). */
  json?: string[];
  /** Leading builder flags (`--from=x`, `--interval=5s`; `--flag value` is joined into `--flag=value`). */
  flags: string[];
}

/**
 * Split one Dockerfile line into keyword, builder flags and arguments (buildkit parser splitCommand +
 * extractBuilderFlags). Does not validate anything.
 */
export function parseInstruction(line: string): ParsedInstruction {
  const trimmed = trimSpace(line);
  const m = TOKEN_WS.exec(trimmed);
  const keyword = m ? trimmed.slice(0, m.index) : trimmed;
  let args = '';
  let flags: string[] = [];
  if (m) {
    const extracted = extractBuilderFlags(trimmed.slice(m.index + m[0].length));
    args = trimSpace(extracted.rest);
    flags = extracted.flags;
  }
  const result: ParsedInstruction = { keyword: keyword.toUpperCase(), args, flags };
  const json = parseJSONArray(args);
  if (json && json.strings) result.json = json.values;
  return result;
}

/** Leading `--flag[=value]` words of an instruction's arguments (buildkit extractBuilderFlags). */
function extractBuilderFlags(line: string): { rest: string; flags: string[] } {
  const IN_SPACES = 0;
  const IN_WORD = 1;
  const IN_QUOTE = 2;
  const words: string[] = [];
  let phase = IN_SPACES;
  let word = '';
  let quote = '';
  let blankOK = false;
  let ch = '';
  let parsingFlagArg = false;
  let needFlagArg = true;

  for (let pos = 0; pos <= line.length; pos++) {
    if (pos !== line.length) ch = line[pos]!;

    if (phase === IN_SPACES) {
      if (pos === line.length) break;
      if (isSpace(ch)) continue;
      // Only keep going if the next word starts with -- or if we're parsing a flag argument.
      if (!parsingFlagArg && (ch !== '-' || pos + 1 === line.length || line[pos + 1] !== '-')) {
        return { rest: line.slice(pos), flags: words };
      }
      phase = IN_WORD;
    }
    if ((phase === IN_WORD || phase === IN_QUOTE) && pos === line.length) {
      if (word !== '--' && (blankOK || word.length > 0)) words.push(word);
      break;
    }
    if (phase === IN_WORD) {
      if (isSpace(ch)) {
        phase = IN_SPACES;
        if (parsingFlagArg) {
          words[words.length - 1] += '=' + word;
          parsingFlagArg = false;
          needFlagArg = true;
        } else {
          if (word === '--') return { rest: line.slice(pos), flags: words };
          if (blankOK || word.length > 0) {
            if (needFlagArg) parsingFlagArg = true;
            words.push(word);
          }
          // buildkit forgets this reset, so `--a=1 --b 2` would not join `--b 2`; every flag word starts fresh.
          needFlagArg = true;
        }
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === '=' && needFlagArg) needFlagArg = false;
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue; // skip \ at end
        pos++;
        ch = line[pos]!;
      }
      word += ch;
      continue;
    }
    // IN_QUOTE
    if (ch === quote) {
      phase = IN_WORD;
      continue;
    }
    if (ch === '\\') {
      if (pos + 1 === line.length) {
        phase = IN_WORD;
        continue;
      }
      pos++;
      ch = line[pos]!;
    }
    word += ch;
  }
  return { rest: '', flags: words };
}

/** `undefined` when `s` is not a JSON array; `strings: false` when it is one but not all strings. */
export function parseJSONArray(s: string): { strings: true; values: string[] } | { strings: false } | undefined {
  const t = s.replace(/^\p{White_Space}+/u, '');
  if (!t.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  if (!parsed.every((v): v is string => typeof v === 'string')) return { strings: false };
  return { strings: true, values: parsed };
}

export type FlagSpec = Record<string, 'string' | 'bool'>;

/**
 * Validate builder flags against the flags an instruction accepts (buildkit BFlags.Parse). Returns the
 * flags that were given, by name; bool flags given without a value are `'true'`.
 */
export function parseBuilderFlags(flags: readonly string[], spec: FlagSpec = {}): Map<string, string> {
  const used = new Map<string, string>();
  for (const raw of flags) {
    if (!raw.startsWith('--')) fail(`Arg should start with -- : ${raw}`);
    if (raw === '--') break;
    let name = raw.slice(2);
    let value = '';
    const index = name.indexOf('=');
    if (index >= 0) {
      value = name.slice(index + 1);
      name = name.slice(0, index);
    }
    const type = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!type) fail(`Unknown flag: ${name}`);
    if (used.has(name)) fail(`Duplicate flag specified: ${name}`);
    if (type === 'bool') {
      if (index >= 0 && value === '') fail(`Missing a value on flag: ${name}`);
      const lower = value.toLowerCase();
      if (lower === '') used.set(name, 'true');
      else if (lower === 'true' || lower === 'false') used.set(name, lower);
      else fail(`Expecting boolean value for flag ${name}, not: ${value}`);
    } else {
      if (index < 0) fail(`Missing a value on flag: ${name}`);
      used.set(name, value);
    }
  }
  return used;
}
