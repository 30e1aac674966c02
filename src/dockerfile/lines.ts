// Dockerfile text → instruction lines (buildkit frontend/dockerfile/parser parser.go): parser directives at the
// top, comments, line continuations with the escape character, heredocs for RUN, COPY and ADD. The builder's
// Dockerfiles and `--change` values (config.ts) both go through here.
//
// Known limitation: `# escape=\`` changes the line continuation character (and the heredoc/line handling here)
// but words are still lexed with `\` as the escape, which only matters for Windows-style paths.
import { PlyError } from '../errors.js';
import { parseInstruction } from './instruction.js';
import { expandVariables, splitWords } from './shell.js';

/** A Dockerfile error: message as buildkit words it, with the line it is about. */
export class DockerfileParseError extends PlyError {
  override exitCode = 1;
  constructor(
    readonly reason: string,
    readonly line?: number,
  ) {
    super(line !== undefined ? `dockerfile parse error on line ${line}: ${reason}` : `dockerfile parse error: ${reason}`);
  }
}

export interface Heredoc {
  /** The word after `<<` with its quotes removed (EOF). */
  name: string;
  /** The lines up to the terminator, each with its newline; leading tabs are NOT yet removed for `<<-`. */
  content: string;
  /** False when the word was quoted (`<<"EOF"`, `<<'EOF'`): no variable expansion in the content. */
  expand: boolean;
  /** `<<-EOF`: leading tabs are stripped from the content lines and the terminator. */
  chomp: boolean;
  /** The file descriptor before `<<` (`3<<EOF`), 0 when none. */
  fd: number;
}

/** One instruction as the parser sees it (buildkit parser.Node plus the split done by newNodeFromLine). */
export interface Instruction {
  /** Upper-case keyword: RUN, COPY, ... */
  keyword: string;
  /** The instruction's text with continuation lines joined (what `Step N/M :` shows). */
  original: string;
  /** Builder flags (`--from=x`), `--flag value` joined into `--flag=value`. */
  flags: string[];
  /** The arguments after the flags, trimmed. */
  args: string;
  /** The arguments as a JSON string array (exec form), when they are one. */
  json?: string[];
  heredocs: Heredoc[];
  /** 1-based first and last line. */
  line: number;
  endLine: number;
}

export interface ParsedLines {
  directives: Record<string, string>;
  escape: string;
  instructions: Instruction[];
  /** Lines that were empty continuation lines (buildkit warns about them). */
  warnings: string[];
}

const DIRECTIVE_RE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;
const ALLOWED_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const HEREDOC_RE = /^(\d*)<<(-?)([^<]*)$/;
const HEREDOC_KEYWORDS = new Set(['RUN', 'COPY', 'ADD']);

function trimLeadingWhitespace(s: string): string {
  return s.replace(/^[ \t]+/, '');
}

function trimNewline(s: string): string {
  return s.replace(/[\r\n]+$/, '');
}

function isComment(s: string): boolean {
  return trimLeadingWhitespace(trimNewline(s)).startsWith('#');
}

function quoteCount(s: string): number {
  let n = 0;
  for (const c of s) if (c === '"' || c === "'") n++;
  return n;
}

/**
 * A heredoc word (`<<EOF`, `<<-"EOF"`, `3<<EOF`), or undefined when `src` is not exactly one (buildkit
 * ParseHeredoc). The name is the word with quotes removed; quoting any part of it turns expansion off.
 */
export function parseHeredocWord(src: string): Omit<Heredoc, 'content'> | undefined {
  const m = HEREDOC_RE.exec(src);
  if (!m) return undefined;
  const rest = m[3]!;
  if (rest === '') return undefined;
  const raw = splitWords(rest);
  if (raw.length !== 1) return undefined;
  let name: string;
  try {
    name = expandVariables(raw[0]!, {});
  } catch {
    return undefined;
  }
  return { name, expand: quoteCount(name) === quoteCount(raw[0]!), chomp: m[2] === '-', fd: m[1] ? Number(m[1]) : 0 };
}

/** `<<-` content: leading tabs removed from every line (buildkit ChompHeredocContent). */
export function chompHeredocContent(s: string): string {
  return s.replace(/^\t+/gm, '');
}

/** The heredocs a RUN/COPY/ADD line announces, in order (buildkit heredocsFromLine). */
function heredocsFromLine(line: string): Omit<Heredoc, 'content'>[] {
  const out: Omit<Heredoc, 'content'>[] = [];
  for (const word of splitWords(line)) {
    const h = parseHeredocWord(word);
    if (h) out.push(h);
  }
  return out;
}

/**
 * Splits a Dockerfile into instructions (buildkit parser.Parse): parser directives at the top, comments, line
 * continuations with the escape character (comment and empty lines inside a continuation are skipped), heredocs
 * for RUN, COPY and ADD. Does not check the instructions themselves.
 */
export function parseLines(text: string): ParsedLines {
  const src = text.startsWith('\ufeff') ? text.slice(1) : text;
  const lines = src.split('\n');
  // A final newline does not start another (empty) line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const directives: Record<string, string> = {};
  let escape = '\\';
  let directivesDone = false;
  let continuation = /\\[ \t]*$/;
  const warnings: string[] = [];

  const parseDirective = (raw: string, lineNo: number) => {
    if (directivesDone) return;
    const m = DIRECTIVE_RE.exec(raw);
    const key = m?.[1]!.toLowerCase();
    if (!m || !ALLOWED_DIRECTIVES.has(key!)) {
      directivesDone = true;
      return;
    }
    if (Object.hasOwn(directives, key!)) throw new DockerfileParseError(`only one ${key} parser directive can be used`, lineNo);
    const value = m[2]!;
    if (key === 'escape') {
      if (value !== '`' && value !== '\\') throw new DockerfileParseError(`invalid escape token '${value}' does not match \` or \\`, lineNo);
      escape = value;
      continuation = value === '`' ? /`[ \t]*$/ : /\\[ \t]*$/;
    }
    directives[key!] = value;
  };
  /** buildkit processLine: newline trimmed, optionally left-trimmed, comments become empty. */
  const processLine = (raw: string, lineNo: number, stripLeft: boolean): string => {
    let token = trimNewline(raw);
    if (stripLeft) token = trimLeadingWhitespace(token);
    parseDirective(token, lineNo);
    return isComment(token) ? '' : token;
  };
  const trimContinuation = (s: string): [string, boolean] => (continuation.test(s) ? [s.replace(continuation, ''), false] : [s, true]);

  const instructions: Instruction[] = [];
  let i = 0;
  while (i < lines.length) {
    const startLine = i + 1;
    const first = processLine(lines[i]!, startLine, true);
    i++;
    let [text, endOfLine] = trimContinuation(first);
    if (endOfLine && text === '') continue;
    let hadEmptyContinuation = false;
    while (!endOfLine && i < lines.length) {
      const raw = lines[i]!;
      const processed = processLine(raw, i + 1, false);
      i++;
      if (isComment(raw)) continue;
      if (trimLeadingWhitespace(trimNewline(processed)) === '') {
        hadEmptyContinuation = true;
        continue;
      }
      const [cont, eol] = trimContinuation(processed);
      text += cont;
      endOfLine = eol;
    }
    if (hadEmptyContinuation) warnings.push(`empty continuation line found in instruction starting on line ${startLine}`);
    let parsed: ReturnType<typeof parseInstruction>;
    try {
      parsed = parseInstruction(text);
    } catch (e) {
      throw new DockerfileParseError((e as Error).message, startLine);
    }
    const instruction: Instruction = {
      keyword: parsed.keyword,
      original: text.trim(),
      flags: parsed.flags,
      args: parsed.args,
      ...(parsed.json ? { json: parsed.json } : {}),
      heredocs: [],
      line: startLine,
      endLine: i,
    };
    if (HEREDOC_KEYWORDS.has(parsed.keyword) && text.includes('<<')) {
      for (const h of heredocsFromLine(text)) {
        let content = '';
        let terminated = false;
        while (i < lines.length) {
          const raw = lines[i]!;
          i++;
          let candidate = trimNewline(raw);
          if (h.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === h.name) {
            terminated = true;
            break;
          }
          content += `${raw}\n`;
        }
        if (!terminated) throw new DockerfileParseError('unterminated heredoc', startLine);
        instruction.heredocs.push({ ...h, content });
      }
      instruction.endLine = i;
    }
    instructions.push(instruction);
  }
  return { directives, escape, instructions, warnings };
}
