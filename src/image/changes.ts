// `--change` / `-c` for `ply import` and `ply commit`: Dockerfile instructions applied to an image config,
// the way docker's classic builder does it (moby builder/dockerfile BuildFromConfig + dispatchers.go, with
// buildkit's frontend/dockerfile parser, instructions and shell lexer for the parsing rules).
//
// The Dockerfile pieces (instruction splitting, builder flags, word splitting, key=value parsing, variable
// expansion) are exported so the Dockerfile builder can reuse them.

import path from 'node:path';
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { parseGoDuration } from '../gotemplate/gofmt.js';
import type { ContainerConfig } from '../oci/types.js';

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
/** Go's unicode.IsSpace. */
const SPACE_RE = /^\p{White_Space}$/u;
/** buildkit's reWhitespace / tokenWhitespace: splits instruction words (no newline: lines are already split). */
const TOKEN_WS = /[\t\v\f\r ]+/;
const MINIMUM_HEALTH_DURATION_NS = 1_000_000; // 1ms, moby container.MinimumDuration

function isSpace(ch: string): boolean {
  return SPACE_RE.test(ch);
}

/** Go's strings.TrimSpace. */
function trimSpace(s: string): string {
  return s.replace(/^\p{White_Space}+|\p{White_Space}+$/gu, '');
}

/** Roughly Go's %q for the strings that end up in error messages. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

function fail(message: string): never {
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
function parseJSONArray(s: string): { strings: true; values: string[] } | { strings: false } | undefined {
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

// ---------------------------------------------------------------------------------------------------------
// Word splitting and key=value pairs (buildkit parser line_parsers.go)

/**
 * Split a Dockerfile argument string into words the way the Dockerfile parser does for ENV/LABEL/ARG
 * (buildkit parseWords): words are separated by unquoted whitespace; quotes and backslash escapes keep
 * whitespace inside a word but are left IN the word, exactly as docker's parser does. They are removed
 * later, together with variable substitution, by {@link expandVariables}.
 *
 *   splitWords(`a "b c" d\ e`)  →  ['a', '"b c"', 'd\\ e']
 */
export function splitWords(s: string): string[] {
  const IN_SPACES = 0;
  const IN_WORD = 1;
  const IN_QUOTE = 2;
  const chars = Array.from(s);
  const words: string[] = [];
  let phase = IN_SPACES;
  let quote = '';
  let blankOK = false;
  let word = '';

  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = pos < chars.length ? chars[pos]! : '';
    if (phase === IN_SPACES) {
      if (pos === chars.length) break;
      if (isSpace(ch)) continue;
      phase = IN_WORD;
    }
    if ((phase === IN_WORD || phase === IN_QUOTE) && pos === chars.length) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === IN_WORD) {
      if (isSpace(ch)) {
        phase = IN_SPACES;
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = IN_QUOTE;
      }
      if (ch === '\\') {
        if (pos + 1 === chars.length) continue; // an escape at the end of the line is dropped
        // Unquoted escape: keep it and the escaped character, even a quote.
        word += ch;
        pos++;
        ch = chars[pos]!;
      }
      word += ch;
      continue;
    }
    // IN_QUOTE
    if (ch === quote) phase = IN_WORD;
    // The escape is special except in single quotes.
    if (ch === '\\' && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = IN_WORD;
        continue;
      }
      word += ch;
      pos++;
      ch = chars[pos]!;
    }
    word += ch;
  }
  return words;
}

/**
 * Parse the arguments of ENV or LABEL into [key, value] pairs (buildkit parseNameVal + parseKvps):
 * `k=v k2="v 2"` or the legacy one-pair form `k value with spaces` (chosen when the first word has no `=`).
 *
 * Without `env`, keys and values come back RAW (quotes and escapes still in, no substitution) - what
 * docker's parser produces and hands to the dispatcher. With `env` (use `{}` for none), each key and value
 * is passed through {@link expandVariables} as docker does when it applies the instruction.
 *
 * Throws InvalidArgumentError with docker's messages (`ENV requires at least one argument`, ...).
 */
export function parseKeyValues(
  args: string,
  keyword: string,
  env?: string[] | Record<string, string>,
): [string, string][] {
  const kw = keyword.toUpperCase();
  const rest = trimSpace(args);
  const words = splitWords(rest);
  if (words.length === 0) fail(`${kw} requires at least one argument`);

  const pairs: [string, string][] = [];
  if (!words[0]!.includes('=')) {
    const m = TOKEN_WS.exec(rest);
    if (!m) fail(`${kw} must have two arguments`);
    pairs.push([rest.slice(0, m.index), rest.slice(m.index + m[0].length)]);
  } else {
    for (const word of words) {
      const eq = word.indexOf('=');
      if (eq < 0) fail(`Syntax error - can't find = in ${goQuote(word)}. Must be of the form: name=value`);
      pairs.push([word.slice(0, eq), word.slice(eq + 1)]);
    }
  }
  for (const [k] of pairs) if (k.length === 0) fail(`${kw} names can not be blank`);
  if (env === undefined) return pairs;
  const envMap = buildEnvMap(env);
  return pairs.map(([k, v]) => [processWord(k, envMap).result, processWord(v, envMap).result]);
}

// ---------------------------------------------------------------------------------------------------------
// Variable expansion (buildkit frontend/dockerfile/shell/lex.go)

class LexError extends Error {}

function buildEnvMap(env: string[] | Record<string, string>): Map<string, string> {
  const map = new Map<string, string>();
  if (Array.isArray(env)) {
    for (const e of env) {
      const i = e.indexOf('=');
      if (i < 0) map.set(e, '');
      else map.set(e.slice(0, i), e.slice(i + 1));
    }
  } else {
    for (const [k, v] of Object.entries(env)) map.set(k, v);
  }
  return map;
}

class Words {
  word = '';
  words: string[] = [];
  inWord = false;

  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length > 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  get(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);
const DIGIT_RE = /^\p{Nd}$/u;
const LETTER_RE = /^\p{L}$/u;

class ShellWord {
  private readonly chars: string[];
  private pos = 0;
  private rawEscapes = false;
  private readonly escape = '\\';

  constructor(
    word: string,
    private readonly env: Map<string, string>,
  ) {
    this.chars = Array.from(word);
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }
  private next(): string | undefined {
    return this.pos < this.chars.length ? this.chars[this.pos++] : undefined;
  }

  process(): { result: string; words: string[] } {
    return this.processStopOn(undefined, false);
  }

  private processStopOn(stop: string | undefined, rawEscapes: boolean): { result: string; words: string[] } {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      let result = '';
      const words = new Words();
      while (this.peek() !== undefined) {
        const ch = this.peek()!;
        if (stop !== undefined && ch === stop) {
          this.next();
          return { result, words: words.get() };
        }
        if (ch === '$' || ch === "'" || ch === '"') {
          const tmp =
            ch === '$' ? this.processDollar() : ch === "'" ? this.processSingleQuote() : this.processDoubleQuote();
          result += tmp;
          if (ch === '$') words.addString(tmp);
          else words.addRawString(tmp);
          continue;
        }
        let c = this.next()!;
        if (c === this.escape) {
          if (this.rawEscapes) {
            words.addRawChar(c);
            result += c;
          }
          const escaped = this.next();
          if (escaped === undefined) break; // escape at the end of the word is dropped
          c = escaped;
          words.addRawChar(c);
        } else {
          words.addChar(c);
        }
        result += c;
      }
      if (stop !== undefined) throw new LexError(`unexpected end of statement while looking for matching ${stop}`);
      return { result, words: words.get() };
    } finally {
      this.rawEscapes = saved;
    }
  }

  private processSingleQuote(): string {
    // Everything up to the next ' is literal; ' cannot be escaped.
    this.next();
    let result = '';
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new LexError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return result;
      result += ch;
    }
  }

  private processDoubleQuote(): string {
    // Literal except $ expansions; \ escapes only " $ and \ (other backslashes stay).
    this.next();
    let result = '';
    for (;;) {
      const p = this.peek();
      if (p === undefined) throw new LexError('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        this.next();
        return result;
      }
      if (p === '$') {
        result += this.processDollar();
        continue;
      }
      let ch = this.next()!;
      if (ch === this.escape) {
        if (this.rawEscapes) result += ch;
        const n = this.peek();
        if (n === undefined) continue; // reported as an unterminated quote
        if (n === '"' || n === '$' || n === this.escape) ch = this.next()!;
      }
      result += ch;
    }
  }

  private lookup(name: string): string | undefined {
    return this.env.get(name);
  }

  private processDollar(): string {
    this.next(); // $
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      return this.lookup(name) ?? '';
    }
    this.next(); // {
    const first = this.peek();
    if (first === undefined) throw new LexError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new LexError('syntax error: bad substitution');
    const name = this.processName();
    let ch = this.next();
    if (ch === undefined) throw new LexError("syntax error: missing '}'");
    let chs = ch;

    if (ch === '}') return this.lookup(name) ?? '';

    if (ch === ':' || ch === '+' || ch === '-' || ch === '?' || ch === '#' || ch === '%') {
      let nullIsUnset = false;
      if (ch === ':') {
        nullIsUnset = true;
        ch = this.next();
        if (ch === undefined) throw new LexError("syntax error: missing '}'");
        chs += ch;
      }
      let word: string;
      try {
        word = this.processStopOn('}', ch === '#' || ch === '%').result;
      } catch (e) {
        if (this.peek() === undefined) throw new LexError("syntax error: missing '}'");
        throw e;
      }
      const value = this.lookup(name);
      const set = value !== undefined;
      const empty = !set || (nullIsUnset && value === '');
      switch (ch) {
        case '-':
          return empty ? word : value!;
        case '+':
          return empty ? '' : word;
        case '?':
          if (!set) throw new LexError(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
          if (nullIsUnset && value === '') {
            throw new LexError(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
          }
          return value;
        case '%':
        case '#': {
          // %/# remove the shortest matching suffix/prefix, %%/## the longest.
          let pattern = word;
          let greedy = false;
          if (pattern.length > 0 && pattern[0] === ch) {
            greedy = true;
            pattern = pattern.slice(1);
          }
          return ch === '%' ? trimSuffix(pattern, value ?? '', greedy) : trimPrefix(pattern, value ?? '', greedy);
        }
        default:
          throw new LexError(`unsupported modifier (${chs}) in substitution`);
      }
    }

    if (ch === '/') {
      const replaceAll = this.peek() === '/';
      if (replaceAll) this.next();
      let pattern: string;
      let replacement: string;
      try {
        pattern = this.processStopOn('/', true).result;
      } catch (e) {
        if (this.peek() === undefined) throw new LexError("syntax error: missing '/' in ${}");
        throw e;
      }
      try {
        replacement = this.processStopOn('}', true).result;
      } catch (e) {
        if (this.peek() === undefined) throw new LexError("syntax error: missing '}'");
        throw e;
      }
      const value = this.lookup(name) ?? '';
      const re = shellPatternToRegex(pattern, true, false, replaceAll);
      return value.replace(re, () => replacement);
    }

    throw new LexError(`unsupported modifier (${chs}) in substitution`);
  }

  private processName(): string {
    // A name is letters, digits and _; a leading digit reads digits only; special parameters are one char.
    let name = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) break;
      if (name === '' && DIGIT_RE.test(ch)) {
        while (this.peek() !== undefined && DIGIT_RE.test(this.peek()!)) name += this.next();
        return name;
      }
      if (name === '' && SPECIAL_PARAMS.has(ch)) {
        this.next();
        return ch;
      }
      if (!LETTER_RE.test(ch) && !DIGIT_RE.test(ch) && ch !== '_') break;
      name += this.next();
    }
    return name;
  }
}

/** A shell wildcard pattern (`*`, `?`, `\` escapes; no brackets) as a regular expression. */
function shellPatternToRegex(pattern: string, greedy: boolean, anchored: boolean, global = false): RegExp {
  const chars = Array.from(pattern);
  let out = anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    let tok = chars[i]!;
    switch (tok) {
      case '*':
        out += greedy ? '.*' : '.*?';
        continue;
      case '?':
        out += '.';
        continue;
      case '\\': {
        const nextCh = chars[i + 1];
        // } and / need escaping inside ${}, but the escape is not part of the pattern.
        if (nextCh === '}' || nextCh === '/') continue;
        out += '\\';
        i++;
        tok = chars[i] ?? '';
        if (tok !== '*' && tok !== '?' && tok !== '\\') {
          throw new LexError(`invalid pattern (${pattern}) in substitution: invalid escape '\\${tok}'`);
        }
        break;
      }
      case '[':
      case ']':
      case '{':
      case '}':
      case '.':
      case '+':
      case '(':
      case ')':
      case '|':
      case '^':
      case '$':
        out += '\\';
        break;
    }
    out += tok;
  }
  return new RegExp(out, global ? 'gu' : 'u');
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const m = shellPatternToRegex(pattern, greedy, true).exec(value);
  return m ? value.slice(m.index + m[0].length) : value;
}

/** Reverse a pattern, keeping `\x` escapes in order. */
function reversePattern(pattern: string): string {
  const chars = Array.from(pattern);
  const out: string[] = new Array<string>(chars.length);
  const last = chars.length - 1;
  for (let i = 0; i <= last; ) {
    const tok = chars[i]!;
    const outIdx = last - i;
    if (tok === '\\' && i !== last) {
      out[outIdx - 1] = tok;
      out[outIdx] = chars[i + 1]!;
      i += 2;
    } else {
      out[outIdx] = tok;
      i++;
    }
  }
  return out.join('');
}

function reverseString(s: string): string {
  return Array.from(s).reverse().join('');
}

function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  // Regular expressions cannot find the shortest rightmost match: reverse both and trim a prefix.
  return reverseString(trimPrefix(reversePattern(pattern), reverseString(value), greedy));
}

function processWord(word: string, env: Map<string, string>): { result: string; words: string[] } {
  try {
    return new ShellWord(word, env).process();
  } catch (e) {
    if (e instanceof LexError) throw new InvalidArgumentError(`failed to process ${goQuote(word)}: ${e.message}`);
    throw e;
  }
}

/**
 * Dockerfile variable substitution for one word (buildkit shell.Lex ProcessWord): `$VAR`, `${VAR}`,
 * `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?msg}`, `${VAR#pat}`,
 * `${VAR%pat}` (and `##`/`%%`), `${VAR/pat/repl}`; single and double quotes are removed (nothing expands
 * inside single quotes) and `\` escapes the next character (`\$` is a literal `$`). Unset variables expand
 * to ''. Whitespace is kept. Throws InvalidArgumentError on syntax errors (`failed to process "...": ...`).
 */
export function expandVariables(s: string, env: string[] | Record<string, string>): string {
  return processWord(s, buildEnvMap(env)).result;
}

/**
 * Like {@link expandVariables}, then split into words on unquoted whitespace, including whitespace that
 * came from a variable's value (buildkit ProcessWords; what EXPOSE uses).
 */
export function expandWords(s: string, env: string[] | Record<string, string>): string[] {
  return processWord(s, buildEnvMap(env)).words;
}

// ---------------------------------------------------------------------------------------------------------
// Dockerfile text → instruction lines

/**
 * The instruction lines of a Dockerfile fragment: blank and comment lines dropped, `\` line continuations
 * joined (buildkit parser.Parse, default escape token).
 */
function instructionLines(text: string): string[] {
  const raw = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const continuation = /\\[ \t]*$/;
  const isComment = (l: string) => /^\p{White_Space}*#/u.test(l);
  const out: string[] = [];
  let i = 0;
  while (i < raw.length) {
    let token = raw[i++]!.replace(/^\p{White_Space}+/u, '');
    if (token.startsWith('#')) token = '';
    let line = token;
    let endOfLine = !continuation.test(line);
    if (!endOfLine) line = line.replace(continuation, '');
    if (endOfLine && line === '') continue;
    while (!endOfLine && i < raw.length) {
      const next = raw[i++]!;
      if (isComment(next)) continue;
      if (trimSpace(next) === '') continue;
      endOfLine = !continuation.test(next);
      line += endOfLine ? next : next.replace(continuation, '');
    }
    out.push(line);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Instructions

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

function parseNode(line: string): Node {
  const p = parseInstruction(line);
  const cmd = p.keyword.toLowerCase();
  const node: Node = { cmd, flags: p.flags, list: [], pairs: [], json: false, original: line };
  const args = p.args;
  switch (cmd) {
    case 'cmd':
    case 'entrypoint':
    case 'run':
    case 'shell':
      Object.assign(node, maybeJSON(args));
      break;
    case 'add':
    case 'copy':
    case 'volume':
      Object.assign(node, maybeJSONToList(args));
      break;
    case 'env':
    case 'label':
      if (splitWords(args).length > 0) node.pairs = parseKeyValues(args, cmd.toUpperCase());
      break;
    case 'arg':
      node.list = splitWords(args);
      break;
    case 'expose':
    case 'from':
      node.list = args === '' ? [] : args.split(TOKEN_WS);
      break;
    case 'maintainer':
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
    case 'onbuild': {
      if (args === '') break;
      const child = parseNode(args);
      node.list = [child.cmd, ...child.list, ...child.pairs.flat()];
      break;
    }
    default:
      break; // unknown instructions parse to nothing; they are rejected later
  }
  return node;
}

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

/** buildkit instructions.ParseCommand for the instructions allowed in changes. */
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

/**
 * Apply `--change` values (each one Dockerfile instruction) to an image config, the way
 * `docker commit --change` / `docker import --change` do. Returns a new object; `config` is not modified.
 *
 * Allowed: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR
 * (keywords case-insensitive). Anything else is refused with docker's `<keyword> is not a valid change
 * command`. All errors are InvalidArgumentError. As in docker, every change is parsed and checked before
 * any is applied, and variables in ENV, LABEL, EXPOSE, USER, WORKDIR, VOLUME and STOPSIGNAL are expanded
 * from the config's Env as it stands when that instruction is applied (plus `opts.buildArgs`, the builder's
 * ARG values in scope, which the config's Env overrides).
 */
export function applyChanges(
  config: ContainerConfig,
  changes: string[],
  opts: { buildArgs?: Record<string, string> } = {},
): ContainerConfig {
  const out = structuredClone(config ?? {}) as ContainerConfig;
  if (changes.length === 0) return out;

  const lines = instructionLines(changes.join('\n'));
  if (lines.length === 0) fail('file with no instructions');
  const nodes = lines.map(parseNode);
  for (const node of nodes) {
    if (!VALID_CHANGE_COMMANDS.has(node.cmd)) fail(`${node.cmd} is not a valid change command`);
  }
  const commands = nodes.map(toCommand);

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
