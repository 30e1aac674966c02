// The Dockerfile shell lexer: word splitting, key=value pairs, and variable expansion with quotes and escapes
// (buildkit frontend/dockerfile/parser line_parsers.go and frontend/dockerfile/shell/lex.go).
import { InvalidArgumentError } from '../errors.js';
import { fail, goQuote, isSpace, TOKEN_WS, trimSpace } from './instruction.js';

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

/** `KEY=VALUE` lines (or a record) as the map the lexer looks variables up in. */
export function buildEnvMap(env: string[] | Record<string, string>): Map<string, string> {
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

/** Expands one word: its value and the words it splits into (unquoted expansions split on whitespace). */
export function processWord(word: string, env: Map<string, string>): { result: string; words: string[] } {
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
