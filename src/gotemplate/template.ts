// A Go text/template implementation for docker's `--format` flag.
//
// It follows text/template's lexer, parser and executor closely (actions, pipelines, variables,
// if/else if/with/else with/range/break/continue, define/template/block, comments and trim
// markers) together with the functions docker adds (json, split, join, title, lower, upper, pad,
// truncate) and Go's builtins (and, or, not, len, index, slice, print, printf, println, eq, ne,
// lt, le, gt, ge, html, js, urlquery, call). Values print the way Go's fmt prints them.
//
// Data is plain JS: objects and Maps behave as Go maps (a missing key prints "<no value>",
// iteration is in sorted key order), arrays as slices, and a function-valued member is a
// method: `{{.Label "x"}}` calls it with the arguments. Every error thrown starts with
// "template parsing error: ", which is how the docker CLI reports both parse and execution errors.
//
// renderTable() is docker's formatter.Context: the 'table' prefix, the `\t`/`\n` unescaping,
// a header row and tabwriter alignment (minwidth 10, padding 3, padchar ' ').

import { PlyError } from '../errors.js';
import { formatFixed, formatG, goNumber, goTimeString, rfc3339Nano } from './gofmt.js';

/** A malformed template or a failure while executing one (message starts with 'template parsing error: '). */
export class TemplateError extends PlyError {
  override exitCode = 1;
}

const PREFIX = 'template parsing error: ';

// ---------------------------------------------------------------------------------------------
// Lexer (text/template/parse/lex.go)

type TokType =
  | 'text'
  | 'left'
  | 'right'
  | 'space'
  | 'ident'
  | 'keyword'
  | 'field'
  | 'var'
  | 'dot'
  | 'string'
  | 'raw'
  | 'charconst'
  | 'number'
  | 'bool'
  | 'nil'
  | 'pipe'
  | 'lparen'
  | 'rparen'
  | 'declare'
  | 'assign'
  | 'char'
  | 'eof'
  | 'error';

interface Tok {
  t: TokType;
  v: string;
  pos: number;
  line: number;
}

const KEYWORDS = new Set(['block', 'break', 'continue', 'define', 'else', 'end', 'if', 'range', 'template', 'with']);

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
const isAlnum = (c: string | undefined): boolean => c !== undefined && c !== '' && /^[\p{L}\p{Nd}_]$/u.test(c);

function lex(input: string): Tok[] {
  const toks: Tok[] = [];
  const lineAt = (p: number): number => {
    let n = 1;
    for (let i = 0; i < p && i < input.length; i++) if (input.charCodeAt(i) === 10) n++;
    return n;
  };
  const emit = (t: TokType, v: string, pos: number): void => {
    toks.push({ t, v, pos, line: lineAt(pos) });
  };
  const fail = (msg: string, pos: number): Tok[] => {
    emit('error', msg, pos);
    return toks;
  };
  const atRightDelim = (p: number): { delim: boolean; trim: boolean } => {
    if (isSpace(input[p]) && input[p + 1] === '-' && input.startsWith('}}', p + 2)) return { delim: true, trim: true };
    if (input.startsWith('}}', p)) return { delim: true, trim: false };
    return { delim: false, trim: false };
  };
  const skipSpaces = (p: number): number => {
    while (p < input.length && isSpace(input[p])) p++;
    return p;
  };
  const atTerminator = (p: number): boolean => {
    const c = input[p];
    if (c === undefined || isSpace(c)) return true;
    if ('.,|:()'.includes(c)) return true;
    return input.startsWith('}}', p);
  };

  let pos = 0;
  for (;;) {
    // ---- text
    const x = input.indexOf('{{', pos);
    if (x < 0) {
      if (pos < input.length) emit('text', input.slice(pos), pos);
      emit('eof', '', input.length);
      return toks;
    }
    const leftTrim = input[x + 2] === '-' && isSpace(input[x + 3]);
    let textEnd = x;
    if (leftTrim) while (textEnd > pos && isSpace(input[textEnd - 1])) textEnd--;
    if (textEnd > pos) emit('text', input.slice(pos, textEnd), pos);
    let p = x + 2;
    const afterMarker = leftTrim ? 2 : 0;
    // ---- comment
    if (input.startsWith('/*', p + afterMarker)) {
      p += afterMarker + 2;
      const end = input.indexOf('*/', p);
      if (end < 0) return fail('unclosed comment', x);
      p = end + 2;
      const rd = atRightDelim(p);
      if (!rd.delim) return fail('comment ends before closing delimiter', x);
      p += (rd.trim ? 2 : 0) + 2;
      if (rd.trim) p = skipSpaces(p);
      pos = p;
      continue;
    }
    emit('left', '{{', x);
    p += afterMarker;
    // ---- inside action
    let parenDepth = 0;
    for (;;) {
      const rd = atRightDelim(p);
      if (rd.delim) {
        if (parenDepth !== 0) return fail('unclosed left paren', p);
        if (rd.trim) p += 2;
        emit('right', '}}', p);
        p += 2;
        if (rd.trim) p = skipSpaces(p);
        break;
      }
      const start = p;
      const c = input[p];
      if (c === undefined) return fail('unclosed action', p);
      if (isSpace(c)) {
        let n = 0;
        while (isSpace(input[p])) {
          p++;
          n++;
        }
        // A space followed by "-}}" belongs to the closing delimiter.
        if (input[p] === '-' && input.startsWith('}}', p + 1)) {
          p--;
          if (n === 1) continue;
        }
        emit('space', input.slice(start, p), start);
        continue;
      }
      p++;
      switch (true) {
        case c === '=':
          emit('assign', '=', start);
          continue;
        case c === ':':
          if (input[p] !== '=') return fail('expected :=', start);
          p++;
          emit('declare', ':=', start);
          continue;
        case c === '|':
          emit('pipe', '|', start);
          continue;
        case c === '"': {
          for (;;) {
            const d = input[p++];
            if (d === '\\') {
              const e = input[p++];
              if (e !== undefined && e !== '\n') continue;
              return fail('unterminated quoted string', start);
            }
            if (d === undefined || d === '\n') return fail('unterminated quoted string', start);
            if (d === '"') break;
          }
          emit('string', input.slice(start, p), start);
          continue;
        }
        case c === '`': {
          const end = input.indexOf('`', p);
          if (end < 0) return fail('unterminated raw quoted string', start);
          p = end + 1;
          emit('raw', input.slice(start, p), start);
          continue;
        }
        case c === '\'': {
          for (;;) {
            const d = input[p++];
            if (d === '\\') {
              const e = input[p++];
              if (e !== undefined && e !== '\n') continue;
              return fail('unterminated character constant', start);
            }
            if (d === undefined || d === '\n') return fail('unterminated character constant', start);
            if (d === '\'') break;
          }
          emit('charconst', input.slice(start, p), start);
          continue;
        }
        case c === '$' || (c === '.' && !(input[p]! >= '0' && input[p]! <= '9')): {
          const typ: TokType = c === '$' ? 'var' : 'field';
          if (atTerminator(p)) {
            emit(c === '$' ? 'var' : 'dot', c, start);
            continue;
          }
          while (isAlnum(input[p])) p++;
          if (!atTerminator(p)) return fail(`bad character ${goRuneDesc(input.codePointAt(p)!)}`, p);
          emit(typ, input.slice(start, p), start);
          continue;
        }
        case c === '.' || c === '+' || c === '-' || (c >= '0' && c <= '9'): {
          p = start;
          if (input[p] === '+' || input[p] === '-') p++;
          let digits = '0123456789_';
          if (input[p] === '0') {
            p++;
            const q = input[p];
            if (q === 'x' || q === 'X') {
              p++;
              digits = '0123456789abcdefABCDEF_';
            } else if (q === 'o' || q === 'O') {
              p++;
              digits = '01234567_';
            } else if (q === 'b' || q === 'B') {
              p++;
              digits = '01_';
            }
          }
          const run = (set: string) => {
            while (p < input.length && set.includes(input[p]!)) p++;
          };
          run(digits);
          if (input[p] === '.') {
            p++;
            run(digits);
          }
          if (digits.length === 11 && (input[p] === 'e' || input[p] === 'E')) {
            p++;
            if (input[p] === '+' || input[p] === '-') p++;
            run('0123456789_');
          }
          if (digits.length === 23 && (input[p] === 'p' || input[p] === 'P')) {
            p++;
            if (input[p] === '+' || input[p] === '-') p++;
            run('0123456789_');
          }
          if (input[p] === 'i') p++;
          if (isAlnum(input[p])) return fail(`bad number syntax: ${goQuote(input.slice(start, p + 1))}`, start);
          emit('number', input.slice(start, p), start);
          continue;
        }
        case isAlnum(c): {
          while (isAlnum(input[p])) p++;
          const word = input.slice(start, p);
          if (!atTerminator(p)) return fail(`bad character ${goRuneDesc(input.codePointAt(p)!)}`, p);
          if (KEYWORDS.has(word)) emit('keyword', word, start);
          else if (word === 'true' || word === 'false') emit('bool', word, start);
          else if (word === 'nil') emit('nil', word, start);
          else emit('ident', word, start);
          continue;
        }
        case c === '(':
          emit('lparen', '(', start);
          parenDepth++;
          continue;
        case c === ')':
          parenDepth--;
          if (parenDepth < 0) return fail('unexpected right paren', start);
          emit('rparen', ')', start);
          continue;
        default: {
          const cp = input.codePointAt(start)!;
          if (cp < 0x7f && cp >= 0x20) {
            emit('char', c, start);
            continue;
          }
          return fail(`unrecognized character in action: ${goRuneDesc(cp)}`, start);
        }
      }
    }
    pos = p;
  }
}

function goRuneDesc(cp: number): string {
  const hex = cp.toString(16).toUpperCase().padStart(4, '0');
  return `U+${hex} '${String.fromCodePoint(cp)}'`;
}

// ---------------------------------------------------------------------------------------------
// Parse tree

type ArgNode =
  | { k: 'field'; pos: number; idents: string[] }
  | { k: 'var'; pos: number; name: string; idents: string[] }
  | { k: 'chain'; pos: number; node: ArgNode; idents: string[] }
  | { k: 'dot'; pos: number }
  | { k: 'nil'; pos: number }
  | { k: 'bool'; pos: number; value: boolean }
  | { k: 'number'; pos: number; value: number; text: string }
  | { k: 'string'; pos: number; value: string; quoted: string }
  | { k: 'ident'; pos: number; name: string }
  | { k: 'pipe'; pos: number; pipe: PipeNode };

interface CmdNode {
  k: 'cmd';
  pos: number;
  args: ArgNode[];
}

interface PipeNode {
  k: 'pipeline';
  pos: number;
  decl: string[];
  isAssign: boolean;
  cmds: CmdNode[];
}

type Node =
  | { k: 'text'; pos: number; text: string }
  | { k: 'action'; pos: number; pipe: PipeNode }
  | ControlNode
  | { k: 'break' | 'continue'; pos: number }
  | { k: 'template'; pos: number; name: string; pipe: PipeNode | null };

interface ControlNode {
  k: 'if' | 'with' | 'range';
  pos: number;
  pipe: PipeNode;
  list: Node[];
  elseList: Node[] | null;
}

/** {{end}} and {{else}} while parsing. */
interface Marker {
  k: 'end' | 'else';
  chained?: boolean;
  pos: number;
}
const isMarker = (n: Node | Marker): n is Marker => n.k === 'end' || n.k === 'else';

type AnyNode = Node | ArgNode | CmdNode | PipeNode;

function argString(a: ArgNode): string {
  switch (a.k) {
    case 'field':
      return '.' + a.idents.join('.');
    case 'var':
      return [a.name, ...a.idents].join('.');
    case 'chain': {
      const s = a.node.k === 'pipe' ? `(${pipeString(a.node.pipe)})` : argString(a.node);
      return s + a.idents.map((i) => '.' + i).join('');
    }
    case 'dot':
      return '.';
    case 'nil':
      return 'nil';
    case 'bool':
      return String(a.value);
    case 'number':
      return a.text;
    case 'string':
      return a.quoted;
    case 'ident':
      return a.name;
    case 'pipe':
      return pipeString(a.pipe);
  }
}

function cmdString(c: CmdNode): string {
  return c.args.map((a) => (a.k === 'pipe' ? `(${pipeString(a.pipe)})` : argString(a))).join(' ');
}

function pipeString(p: PipeNode): string {
  const decl = p.decl.length > 0 ? p.decl.join(', ') + ' := ' : '';
  return decl + p.cmds.map(cmdString).join(' | ');
}

function nodeString(n: AnyNode): string {
  switch (n.k) {
    case 'cmd':
      return cmdString(n);
    case 'pipeline':
      return pipeString(n);
    case 'text':
      return n.text;
    case 'action':
      return `{{${pipeString(n.pipe)}}}`;
    case 'if':
    case 'with':
    case 'range':
      return `{{${n.k} ${pipeString(n.pipe)}}}`;
    case 'break':
    case 'continue':
      return `{{${n.k}}}`;
    case 'template':
      return `{{template ${goQuote(n.name)}${n.pipe ? ' ' + pipeString(n.pipe) : ''}}}`;
    default:
      return argString(n);
  }
}

// ---------------------------------------------------------------------------------------------
// Parser (text/template/parse/parse.go)

class ParseError extends Error {}

class Parser {
  private i = 0;
  private last: Tok;
  private vars: string[] = ['$'];
  private rangeDepth = 0;
  readonly defs = new Map<string, Node[]>();

  constructor(
    private readonly toks: Tok[],
    private readonly hasFunc: (name: string) => boolean,
  ) {
    this.last = toks[0]!;
  }

  private errorf(msg: string): never {
    throw new ParseError(`template: :${this.last.line}: ${msg}`);
  }

  private next(): Tok {
    const t = this.toks[this.i] ?? this.toks[this.toks.length - 1]!;
    if (this.i < this.toks.length) this.i++;
    this.last = t;
    if (t.t === 'error') this.errorf(t.v);
    return t;
  }
  private backup(n = 1): void {
    this.i -= n;
  }
  private peek(): Tok {
    const t = this.next();
    this.backup();
    return t;
  }
  private nextNonSpace(): Tok {
    let t: Tok;
    do t = this.next();
    while (t.t === 'space');
    return t;
  }
  private peekNonSpace(): Tok {
    const start = this.i;
    const t = this.nextNonSpace();
    this.i = start;
    return t;
  }
  private expect(t: TokType, context: string): Tok {
    const tok = this.nextNonSpace();
    if (tok.t !== t) this.unexpected(tok, context);
    return tok;
  }
  private unexpected(tok: Tok, context: string): never {
    this.errorf(`unexpected ${tokDesc(tok)} in ${context}`);
  }

  parse(): Node[] {
    const list: Node[] = [];
    while (this.peek().t !== 'eof') {
      if (this.peek().t === 'left') {
        const save = this.i;
        this.next();
        const kw = this.nextNonSpace();
        if (kw.t === 'keyword' && kw.v === 'define') {
          this.parseDefinition();
          continue;
        }
        this.i = save;
      }
      const n = this.textOrAction();
      if (isMarker(n)) this.errorf(`unexpected {{${n.k}}}`);
      list.push(n);
    }
    return list;
  }

  private parseDefinition(): void {
    const nameTok = this.nextNonSpace();
    if (nameTok.t !== 'string' && nameTok.t !== 'raw') this.unexpected(nameTok, 'define clause');
    const name = this.unquote(nameTok);
    this.expect('right', 'define clause');
    const saved = this.vars;
    this.vars = ['$'];
    const [list, end] = this.itemList();
    if (end.k !== 'end') this.errorf(`unexpected ${end.k === 'else' ? '{{else}}' : 'token'} in define clause`);
    this.vars = saved;
    this.defs.set(name, list);
  }

  private itemList(): [Node[], Marker] {
    const list: Node[] = [];
    while (this.peekNonSpace().t !== 'eof') {
      const n = this.textOrAction();
      if (isMarker(n)) return [list, n];
      list.push(n);
    }
    this.errorf('unexpected EOF');
  }

  private textOrAction(): Node | Marker {
    const tok = this.nextNonSpace();
    switch (tok.t) {
      case 'text':
        return { k: 'text', pos: tok.pos, text: tok.v };
      case 'left':
        return this.action();
      default:
        this.unexpected(tok, 'input');
    }
  }

  private action(): Node | Marker {
    const tok = this.nextNonSpace();
    if (tok.t === 'keyword') {
      switch (tok.v) {
        case 'block':
          return this.blockControl();
        case 'break':
        case 'continue': {
          const t = this.nextNonSpace();
          if (t.t !== 'right') this.unexpected(t, `{{${tok.v}}}`);
          if (this.rangeDepth === 0) this.errorf(`{{${tok.v}}} outside {{range}}`);
          return { k: tok.v, pos: tok.pos };
        }
        case 'else': {
          const peek = this.peekNonSpace();
          if (peek.t === 'keyword' && (peek.v === 'if' || peek.v === 'with')) return { k: 'else', chained: true, pos: tok.pos };
          this.expect('right', 'else');
          return { k: 'else', pos: tok.pos };
        }
        case 'end':
          this.expect('right', 'end');
          return { k: 'end', pos: tok.pos };
        case 'if':
        case 'with':
        case 'range':
          return this.control(tok.v, tok.pos);
        case 'template':
          return this.templateControl(tok.pos);
      }
    }
    this.backup();
    const pos = this.peekNonSpace().pos;
    const pipe = this.pipeline('command', 'right');
    return { k: 'action', pos, pipe };
  }

  private control(context: 'if' | 'with' | 'range', pos: number): Node {
    const savedVars = this.vars.length;
    const pipe = this.pipeline(context, 'right');
    if (context === 'range') this.rangeDepth++;
    let [list, next] = this.itemList();
    if (context === 'range') this.rangeDepth--;
    let elseList: Node[] | null = null;
    if (next.k === 'else') {
      const peek = this.peekNonSpace();
      if (next.chained && context !== 'range' && peek.t === 'keyword' && peek.v === context) {
        const t = this.nextNonSpace();
        elseList = [this.control(context, t.pos)];
      } else {
        if (next.chained) this.errorf(`unexpected ${tokDesc(this.peekNonSpace())} in else`);
        [elseList, next] = this.itemList();
        if (next.k !== 'end') this.errorf('expected end; found {{else}}');
      }
    }
    this.vars.length = savedVars;
    return { k: context, pos, pipe, list, elseList };
  }

  private templateControl(pos: number): Node {
    const tok = this.nextNonSpace();
    if (tok.t !== 'string' && tok.t !== 'raw') this.unexpected(tok, 'template clause');
    const name = this.unquote(tok);
    let pipe: PipeNode | null = null;
    if (this.nextNonSpace().t !== 'right') {
      this.backup();
      pipe = this.pipeline('template clause', 'right');
    }
    return { k: 'template', pos, name, pipe };
  }

  private blockControl(): Node {
    const tok = this.nextNonSpace();
    if (tok.t !== 'string' && tok.t !== 'raw') this.unexpected(tok, 'block clause');
    const name = this.unquote(tok);
    const pipe = this.pipeline('block clause', 'right');
    const saved = this.vars;
    this.vars = ['$'];
    const [list, end] = this.itemList();
    if (end.k !== 'end') this.errorf('unexpected {{else}} in block clause');
    this.vars = saved;
    this.defs.set(name, list);
    return { k: 'template', pos: tok.pos, name, pipe };
  }

  private pipeline(context: string, end: 'right' | 'rparen'): PipeNode {
    const start = this.peekNonSpace();
    const pipe: PipeNode = { k: 'pipeline', pos: start.pos, decl: [], isAssign: false, cmds: [] };
    decls: for (;;) {
      const v = this.peekNonSpace();
      if (v.t !== 'var') break;
      this.nextNonSpace();
      const next = this.peekNonSpace();
      if (next.t === 'assign' || next.t === 'declare') {
        pipe.isAssign = next.t === 'assign';
        this.nextNonSpace();
        pipe.decl.push(v.v);
        if (!pipe.isAssign) this.vars.push(v.v);
        else this.useVar(v.v);
        break;
      } else if (next.t === 'char' && next.v === ',') {
        this.nextNonSpace();
        pipe.decl.push(v.v);
        this.vars.push(v.v);
        if (context === 'range' && pipe.decl.length < 2) {
          const p = this.peekNonSpace();
          if (p.t === 'var' || p.t === 'right' || p.t === 'rparen') continue decls;
          this.errorf('range can only initialize variables');
        }
        this.errorf(`too many declarations in ${context}`);
      }
      this.backup(1); // not a declaration: the variable starts the first command
      break;
    }
    for (;;) {
      const tok = this.nextNonSpace();
      if (tok.t === end) {
        if (pipe.cmds.length === 0) this.errorf(`missing value for ${context}`);
        pipe.cmds.slice(1).forEach((c, i) => {
          const k = c.args[0]!.k;
          if (k === 'bool' || k === 'dot' || k === 'nil' || k === 'number' || k === 'string') {
            this.errorf(`non executable command in pipeline stage ${i + 2}`);
          }
        });
        return pipe;
      }
      switch (tok.t) {
        case 'bool':
        case 'charconst':
        case 'dot':
        case 'field':
        case 'ident':
        case 'number':
        case 'nil':
        case 'raw':
        case 'string':
        case 'var':
        case 'lparen':
          this.backup();
          pipe.cmds.push(this.command());
          break;
        default:
          this.unexpected(tok, context);
      }
    }
  }

  private command(): CmdNode {
    const cmd: CmdNode = { k: 'cmd', pos: this.peekNonSpace().pos, args: [] };
    for (;;) {
      this.peekNonSpace();
      const operand = this.operand();
      if (operand) cmd.args.push(operand);
      const tok = this.next();
      if (tok.t === 'space') continue;
      if (tok.t === 'right' || tok.t === 'rparen') this.backup();
      else if (tok.t !== 'pipe') this.unexpected(tok, 'operand');
      break;
    }
    if (cmd.args.length === 0) this.errorf('empty command');
    return cmd;
  }

  private operand(): ArgNode | null {
    let node = this.term();
    if (!node) return null;
    if (this.peek().t === 'field') {
      const idents: string[] = [];
      const pos = this.peek().pos;
      while (this.peek().t === 'field') idents.push(this.next().v.slice(1));
      switch (node.k) {
        case 'field':
          node = { k: 'field', pos: node.pos, idents: [...node.idents, ...idents] };
          break;
        case 'var':
          node = { k: 'var', pos: node.pos, name: node.name, idents: [...node.idents, ...idents] };
          break;
        case 'bool':
        case 'string':
        case 'number':
        case 'nil':
        case 'dot':
          this.errorf(`unexpected . after term ${goQuote(argString(node))}`);
        // falls through (unreachable)
        default:
          node = { k: 'chain', pos, node, idents };
      }
    }
    return node;
  }

  private term(): ArgNode | null {
    const tok = this.nextNonSpace();
    switch (tok.t) {
      case 'ident':
        if (!this.hasFunc(tok.v)) this.errorf(`function ${goQuote(tok.v)} not defined`);
        return { k: 'ident', pos: tok.pos, name: tok.v };
      case 'dot':
        return { k: 'dot', pos: tok.pos };
      case 'nil':
        return { k: 'nil', pos: tok.pos };
      case 'var':
        this.useVar(tok.v);
        return { k: 'var', pos: tok.pos, name: tok.v, idents: [] };
      case 'field':
        return { k: 'field', pos: tok.pos, idents: [tok.v.slice(1)] };
      case 'bool':
        return { k: 'bool', pos: tok.pos, value: tok.v === 'true' };
      case 'charconst':
      case 'number':
        return { k: 'number', pos: tok.pos, value: this.number(tok), text: tok.v };
      case 'lparen': {
        const pipe = this.pipeline('parenthesized pipeline', 'rparen');
        return { k: 'pipe', pos: tok.pos, pipe };
      }
      case 'string':
      case 'raw':
        return { k: 'string', pos: tok.pos, value: this.unquote(tok), quoted: tok.v };
    }
    this.backup();
    return null;
  }

  private useVar(name: string): void {
    const base = name.split('.')[0]!;
    if (!this.vars.includes(base)) this.errorf(`undefined variable ${goQuote(base)}`);
  }

  private number(tok: Tok): number {
    if (tok.t === 'charconst') {
      const s = unquoteGo(tok.v.slice(1, -1), '\'');
      const cps = s === null ? [] : Array.from(s);
      if (cps.length !== 1) this.errorf(`malformed character constant: ${tok.v}`);
      return cps[0]!.codePointAt(0)!;
    }
    const n = parseGoNumber(tok.v);
    if (n === null) this.errorf(`illegal number syntax: ${goQuote(tok.v)}`);
    return n;
  }

  private unquote(tok: Tok): string {
    if (tok.t === 'raw') return tok.v.slice(1, -1).replace(/\r/g, '');
    const s = unquoteGo(tok.v.slice(1, -1), '"');
    if (s === null) this.errorf('invalid syntax');
    return s;
  }
}

function tokDesc(t: Tok): string {
  if (t.t === 'eof') return 'EOF';
  if (t.t === 'error') return t.v;
  if (t.t === 'keyword') return `<${t.v}>`;
  if (t.v.length > 10) return `${goQuote(t.v.slice(0, 10))}...`;
  return goQuote(t.v);
}

function parseGoNumber(text: string): number | null {
  let s = text.replace(/_/g, '');
  if (s.endsWith('i')) return null; // complex numbers are not supported
  let sign = 1;
  if (s[0] === '+' || s[0] === '-') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  let v: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) v = parseInt(s.slice(2), 16);
  else if (/^0[oO][0-7]+$/.test(s)) v = parseInt(s.slice(2), 8);
  else if (/^0[bB][01]+$/.test(s)) v = parseInt(s.slice(2), 2);
  else if (/^0[0-7]+$/.test(s)) v = parseInt(s.slice(1), 8);
  else if (/^(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) v = Number(s);
  else if (/^0[xX]([0-9a-fA-F]*\.?[0-9a-fA-F]*)[pP][-+]?\d+$/.test(s)) {
    const m = /^0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)[pP]([-+]?\d+)$/.exec(s)!;
    const mant = parseInt((m[1] || '0') + (m[2] || ''), 16) / 16 ** (m[2] ?? '').length;
    v = mant * 2 ** Number(m[3]);
  } else return null;
  return Number.isNaN(v) ? null : sign * v;
}

/** strconv.Unquote for the body of a "…" or '…' literal; null when the syntax is invalid. */
function unquoteGo(body: string, quote: '"' | '\''): string | null {
  let out = '';
  for (let i = 0; i < body.length; ) {
    const c = body[i]!;
    if (c === '\n') return null;
    if (c === quote) return null;
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      out += String.fromCodePoint(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const e = body[i + 1];
    i += 2;
    switch (e) {
      case 'a':
        out += '\x07';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case '\\':
        out += '\\';
        break;
      case '"':
      case '\'':
        if (e !== quote) return null;
        out += e;
        break;
      case 'x':
      case 'u':
      case 'U': {
        const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        const hex = body.slice(i, i + n);
        if (hex.length !== n || !/^[0-9a-fA-F]+$/.test(hex)) return null;
        const v = parseInt(hex, 16);
        i += n;
        if (e === 'x') {
          // a byte; bytes >= 0x80 would make invalid UTF-8 in Go, map them to U+FFFD
          out += v < 0x80 ? String.fromCharCode(v) : '\ufffd';
        } else {
          if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) return null;
          out += String.fromCodePoint(v);
        }
        break;
      }
      default: {
        if (e !== undefined && e >= '0' && e <= '7') {
          const oct = body.slice(i - 1, i + 2);
          if (!/^[0-7]{3}$/.test(oct)) return null;
          const v = parseInt(oct, 8);
          if (v > 255) return null;
          i += 2;
          out += v < 0x80 ? String.fromCharCode(v) : '\ufffd';
          break;
        }
        return null;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Values: Go type names, truthiness, printing, JSON

/** Fields of a 'table' header: each field name maps to its header text. */
class HeaderContext {
  constructor(private readonly headers: Record<string, string>) {}
  get(name: string): string {
    return Object.prototype.hasOwnProperty.call(this.headers, name) ? this.headers[name]! : deriveHeader(name);
  }
}

/** 'CreatedSince' → 'CREATED SINCE', 'ID' → 'ID', 'IPAddress' → 'IP ADDRESS'. */
export function deriveHeader(field: string): string {
  return field
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toUpperCase();
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function goTypeName(v: unknown): string {
  if (v === undefined || v === null) return '<nil>';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'number':
      return Number.isInteger(v) ? 'int' : 'float64';
    case 'bigint':
      return 'int64';
    case 'boolean':
      return 'bool';
    case 'function':
      return 'func(...) interface {}';
  }
  if (Array.isArray(v)) return v.length > 0 && v.every((x) => typeof x === 'string') ? '[]string' : '[]interface {}';
  if (v instanceof Uint8Array) return '[]uint8';
  if (v instanceof Date) return 'time.Time';
  if (v instanceof Map || isPlainObject(v)) return 'map[string]interface {}';
  const ctor = (v as object).constructor?.name;
  return ctor ? `*${ctor}` : 'struct';
}

function isTrue(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  switch (typeof v) {
    case 'boolean':
      return v;
    case 'number':
      return v !== 0;
    case 'bigint':
      return v !== 0n;
    case 'string':
      return v.length > 0;
    case 'function':
      return true;
  }
  if (Array.isArray(v) || v instanceof Uint8Array) return v.length > 0;
  if (v instanceof Map || v instanceof Set) return v.size > 0;
  if (isPlainObject(v)) return Object.keys(v).length > 0;
  return true;
}

function compareKeys(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** Entries of a map-like value in Go's order (sorted keys), skipping methods. */
function mapEntries(v: Map<unknown, unknown> | Record<string, unknown>): Array<[unknown, unknown]> {
  const entries: Array<[unknown, unknown]> =
    v instanceof Map ? [...v.entries()] : Object.keys(v).map((k) => [k, (v as Record<string, unknown>)[k]]);
  return entries.filter(([, x]) => typeof x !== 'function').sort((a, b) => compareKeys(a[0], b[0]));
}

function hasCustomToString(v: object): boolean {
  const ts = (v as { toString?: unknown }).toString;
  return typeof ts === 'function' && ts !== Object.prototype.toString && ts !== Array.prototype.toString;
}

/** fmt's %v. depth > 0 inside slices and maps. */
function formatValue(v: unknown, depth = 0): string {
  if (v === undefined) return depth === 0 ? '<no value>' : '<nil>';
  if (v === null) return '<nil>';
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      return goNumber(v);
    case 'bigint':
    case 'boolean':
      return String(v);
    case 'symbol':
      return v.toString();
    case 'function':
      return '<func>';
  }
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? '<invalid time>' : goTimeString(v);
  if (Array.isArray(v) || v instanceof Uint8Array) {
    return '[' + Array.from(v as ArrayLike<unknown>, (x) => formatValue(x, depth + 1)).join(' ') + ']';
  }
  if (v instanceof Set) return '[' + [...v].map((x) => formatValue(x, depth + 1)).join(' ') + ']';
  if (v instanceof Map || isPlainObject(v)) {
    return (
      'map[' +
      mapEntries(v as Map<unknown, unknown>)
        .map(([k, x]) => `${formatValue(k, depth + 1)}:${formatValue(x, depth + 1)}`)
        .join(' ') +
      ']'
    );
  }
  if (v instanceof Error) return v.message;
  if (hasCustomToString(v)) return String(v);
  const fields = Object.values(v as object).filter((x) => typeof x !== 'function');
  return '{' + fields.map((x) => formatValue(x, depth + 1)).join(' ') + '}';
}

function jsonString(s: string): string {
  return JSON.stringify(s).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/**
 * encoding/json as docker's `json` function uses it (HTML escaping off). Throws on NaN/Inf.
 * Plain objects keep their key order (Go structs) unless asMap, when they are Go maps: sorted keys,
 * and zero-argument methods are called and included (docker's marshalMap of a list context).
 */
function goJson(v: unknown, asMap = false, seen: Set<object> = new Set()): string {
  if (v === undefined || v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return jsonString(v);
    case 'number':
      if (!Number.isFinite(v)) throw new Error(`json: unsupported value: ${formatG(v)}`);
      return JSON.stringify(v);
    case 'bigint':
      return v.toString();
    case 'boolean':
      return String(v);
    case 'function':
    case 'symbol':
      throw new Error(`json: unsupported type: ${goTypeName(v)}`);
  }
  const obj = v as object;
  if (seen.has(obj)) throw new Error('json: unsupported value: encountered a cycle');
  seen.add(obj);
  try {
    if (obj instanceof Date) return jsonString(rfc3339Nano(obj));
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return goJson(toJSON.call(obj), asMap, seen);
    if (obj instanceof Uint8Array) return jsonString(Buffer.from(obj).toString('base64'));
    if (Array.isArray(obj) || obj instanceof Set) return '[' + [...obj].map((x) => goJson(x, asMap, seen)).join(',') + ']';
    if (obj instanceof Map) {
      const parts = mapEntries(obj).map(([k, x]) => `${jsonString(String(k))}:${goJson(x, asMap, seen)}`);
      return '{' + parts.join(',') + '}';
    }
    const parts: string[] = [];
    const keys = asMap && isPlainObject(obj) ? Object.keys(obj).sort(compareKeys) : Object.keys(obj);
    for (const k of keys) {
      let x = (obj as Record<string, unknown>)[k];
      if (typeof x === 'function') {
        if (!asMap || x.length !== 0) continue;
        x = (x as () => unknown).call(obj);
      }
      if (x === undefined) continue;
      parts.push(`${jsonString(k)}:${goJson(x, asMap, seen)}`);
    }
    return '{' + parts.join(',') + '}';
  } finally {
    seen.delete(obj);
  }
}

// ---------------------------------------------------------------------------------------------
// fmt: Sprint, Sprintln, Sprintf

function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case '\\':
        out += '\\\\';
        continue;
      case '\x07':
        out += '\\a';
        continue;
      case '\b':
        out += '\\b';
        continue;
      case '\f':
        out += '\\f';
        continue;
      case '\n':
        out += '\\n';
        continue;
      case '\r':
        out += '\\r';
        continue;
      case '\t':
        out += '\\t';
        continue;
      case '\v':
        out += '\\v';
        continue;
    }
    if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if ((cp >= 0x80 && cp < 0xa0) || cp === 0xad || cp === 0x2028 || cp === 0x2029 || (cp >= 0xd800 && cp < 0xe000)) {
      out += '\\u' + cp.toString(16).padStart(4, '0');
    } else out += ch;
  }
  return out + '"';
}

function sprint(args: unknown[]): string {
  let out = '';
  args.forEach((a, i) => {
    const isStr = typeof a === 'string';
    if (i > 0 && !isStr && typeof args[i - 1] !== 'string') out += ' ';
    out += formatValue(a, 1);
  });
  return out;
}

function sprintln(args: unknown[]): string {
  return args.map((a) => formatValue(a, 1)).join(' ') + '\n';
}

function badVerb(verb: string, arg: unknown): string {
  if (arg === undefined || arg === null) return `%!${verb}(<nil>)`;
  return `%!${verb}(${goTypeName(arg)}=${formatValue(arg, 1)})`;
}

function utf8Bytes(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

function sprintf(format: string, args: unknown[]): string {
  let out = '';
  let argi = 0;
  let i = 0;
  while (i < format.length) {
    const pct = format.indexOf('%', i);
    if (pct < 0) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, pct);
    i = pct + 1;
    let minus = false;
    let plus = false;
    let sharp = false;
    let space = false;
    let zero = false;
    for (; i < format.length; i++) {
      const c = format[i];
      if (c === '-') minus = true;
      else if (c === '+') plus = true;
      else if (c === '#') sharp = true;
      else if (c === ' ') space = true;
      else if (c === '0') zero = !minus;
      else break;
    }
    const readNum = (): number | undefined => {
      if (format[i] === '*') {
        i++;
        const a = args[argi++];
        if (typeof a === 'number' && Number.isInteger(a)) return a;
        out += '%!(BADWIDTH)';
        return undefined;
      }
      const m = /^\d+/.exec(format.slice(i));
      if (!m) return undefined;
      i += m[0].length;
      return Number(m[0]);
    };
    let width = readNum();
    if (width !== undefined && width < 0) {
      minus = true;
      width = -width;
    }
    let prec: number | undefined;
    if (format[i] === '.') {
      i++;
      prec = readNum() ?? 0;
    }
    if (i >= format.length) {
      out += '%!(NOVERB)';
      break;
    }
    const verbCp = format.codePointAt(i)!;
    const verb = String.fromCodePoint(verbCp);
    i += verb.length;
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (argi >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const arg = args[argi++];
    let s: string;
    let numeric = false;
    const signed = (n: number, body: string): string => (n < 0 || Object.is(n, -0) ? '-' : plus ? '+' : space ? ' ' : '') + body;
    switch (verb) {
      case 'v':
        s = sharp && typeof arg === 'string' ? goQuote(arg) : formatValue(arg, 1);
        if (typeof arg === 'number') {
          numeric = true;
          if (plus && arg >= 0) s = '+' + s;
        }
        break;
      case 's':
        if (typeof arg === 'string') s = arg;
        else if (arg instanceof Error) s = arg.message;
        else if (Array.isArray(arg) && arg.every((x) => typeof x === 'string')) s = formatValue(arg, 1);
        else if (typeof arg === 'object' && arg !== null && hasCustomToString(arg)) s = String(arg);
        else {
          s = badVerb(verb, arg);
          break;
        }
        if (prec !== undefined) s = Array.from(s).slice(0, prec).join('');
        break;
      case 'q':
        if (typeof arg === 'string') s = sharp && !arg.includes('`') ? '`' + arg + '`' : goQuote(arg);
        else if (typeof arg === 'number' && Number.isInteger(arg)) s = "'" + goQuote(String.fromCodePoint(arg)).slice(1, -1).replace(/\\"/g, '"') + "'";
        else s = badVerb(verb, arg);
        break;
      case 't':
        s = typeof arg === 'boolean' ? String(arg) : badVerb(verb, arg);
        break;
      case 'd':
      case 'b':
      case 'o':
      case 'O':
      case 'x':
      case 'X':
      case 'c':
      case 'U': {
        if ((verb === 'x' || verb === 'X') && typeof arg === 'string') {
          let bytes = utf8Bytes(arg);
          if (prec !== undefined) bytes = bytes.slice(0, prec);
          s = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(space ? ' ' : '');
          if (sharp) s = (space ? Array.from(bytes, (b) => '0x' + b.toString(16).padStart(2, '0')).join(' ') : '0x' + s);
          if (verb === 'X') s = s.toUpperCase();
          break;
        }
        if ((verb === 'x' || verb === 'X') && typeof arg === 'number' && !Number.isInteger(arg)) {
          s = badVerb(verb, arg);
          break;
        }
        if (typeof arg !== 'number' && typeof arg !== 'bigint') {
          s = badVerb(verb, arg);
          break;
        }
        if (typeof arg === 'number' && !Number.isInteger(arg)) {
          s = badVerb(verb, arg);
          break;
        }
        const n = BigInt(arg);
        const abs = n < 0n ? -n : n;
        if (verb === 'c') {
          s = String.fromCodePoint(Number(abs));
          break;
        }
        if (verb === 'U') {
          s = 'U+' + abs.toString(16).toUpperCase().padStart(4, '0');
          break;
        }
        numeric = true;
        const radix = verb === 'd' ? 10 : verb === 'b' ? 2 : verb === 'o' || verb === 'O' ? 8 : 16;
        let digits = abs.toString(radix);
        if (verb === 'X') digits = digits.toUpperCase();
        if (prec !== undefined) digits = digits.padStart(prec, '0');
        let prefix = '';
        if (verb === 'O') prefix = '0o';
        else if (sharp) prefix = verb === 'x' ? '0x' : verb === 'X' ? '0X' : verb === 'o' ? '0' : verb === 'b' ? '0b' : '';
        const sign = n < 0n ? '-' : plus ? '+' : space ? ' ' : '';
        if (zero && !minus && width !== undefined && prec === undefined) {
          digits = digits.padStart(width - sign.length - prefix.length, '0');
        }
        s = sign + prefix + digits;
        width = zero && prec === undefined ? undefined : width;
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (typeof arg !== 'number') {
          s = badVerb(verb, arg);
          break;
        }
        numeric = true;
        const lower = verb.toLowerCase();
        let body: string;
        if (lower === 'g') body = formatG(Math.abs(arg), prec ?? -1);
        else body = formatFixed(Math.abs(arg), prec ?? 6, lower === 'e' ? 'e' : 'f');
        if (verb === 'E' || verb === 'G') body = body.toUpperCase();
        s = Number.isNaN(arg) ? (plus ? '+NaN' : space ? ' NaN' : 'NaN') : signed(arg, body.replace(/^[-+]/, ''));
        if (zero && !minus && width !== undefined && Number.isFinite(arg)) {
          const sign = /^[-+ ]/.test(s) ? s[0]! : '';
          s = sign + s.slice(sign.length).padStart(width - sign.length, '0');
          width = undefined;
        }
        break;
      }
      case 'T':
        s = goTypeName(arg);
        break;
      default:
        s = `%!${verb}(${goTypeName(arg)}=${formatValue(arg, 1)})`;
    }
    if (width !== undefined) {
      const len = Array.from(s).length;
      if (len < width) {
        const padChar = zero && !minus && numeric ? '0' : ' ';
        s = minus ? s + ' '.repeat(width - len) : padChar.repeat(width - len) + s;
      }
    }
    out += s;
  }
  if (argi < args.length) {
    out += '%!(EXTRA ' + args.slice(argi).map((a) => `${goTypeName(a)}=${formatValue(a, 1)}`).join(', ') + ')';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Functions

type ParamType = 'any' | 'value' | 'string' | 'int' | 'bool' | 'strings';

interface FuncDef {
  params: ParamType[];
  variadic?: ParamType;
  fn: (...args: any[]) => unknown;
  lazy?: 'and' | 'or';
}

function evalArgsString(args: unknown[]): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(args);
}

function goLen(v: unknown): number {
  if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
  if (Array.isArray(v) || v instanceof Uint8Array) return v.length;
  if (v instanceof Map || v instanceof Set) return v.size;
  if (isPlainObject(v)) return Object.keys(v).length;
  if (v === undefined || v === null) throw new Error('len of nil pointer');
  throw new Error(`len of type ${goTypeName(v)}`);
}

function zeroLike(values: unknown[]): unknown {
  if (values.length === 0) return '';
  const t = (x: unknown) => (Array.isArray(x) ? 'array' : x === null ? 'null' : typeof x);
  const kind = t(values[0]);
  if (!values.every((x) => t(x) === kind)) return null;
  switch (kind) {
    case 'string':
      return '';
    case 'number':
      return 0;
    case 'boolean':
      return false;
    case 'array':
      return [];
    default:
      return null;
  }
}

function indexArg(v: unknown, cap: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`cannot index slice/array with type ${goTypeName(v)}`);
  if (v < 0 || v >= cap) throw new Error(`index out of range: ${v}`);
  return v;
}

function goIndex(item: unknown, ...indexes: unknown[]): unknown {
  let v = item;
  for (const ix of indexes) {
    if (v === undefined || v === null) throw new Error('index of untyped nil');
    if (typeof v === 'string') {
      const bytes = utf8Bytes(v);
      v = bytes[indexArg(ix, bytes.length)];
    } else if (Array.isArray(v) || v instanceof Uint8Array) {
      v = v[indexArg(ix, v.length)];
    } else if (v instanceof Map) {
      v = v.has(ix) ? v.get(ix) : zeroLike([...v.values()]);
    } else if (isPlainObject(v)) {
      if (typeof ix !== 'string') throw new Error(`value has type ${goTypeName(ix)}; should be string`);
      v = Object.prototype.hasOwnProperty.call(v, ix) ? v[ix] : zeroLike(Object.values(v));
    } else {
      throw new Error(`can't index item of type ${goTypeName(v)}`);
    }
  }
  return v;
}

function goSlice(item: unknown, ...indexes: unknown[]): unknown {
  if (item === undefined || item === null) throw new Error('slice of untyped nil');
  if (indexes.length > 3) throw new Error(`too many slice indexes: ${indexes.length}`);
  let len: number;
  let get: (a: number, b: number) => unknown;
  if (typeof item === 'string') {
    const bytes = utf8Bytes(item);
    len = bytes.length;
    if (indexes.length === 3) throw new Error('cannot 3-index slice a string');
    get = (a, b) => Buffer.from(bytes.subarray(a, b)).toString('utf8');
  } else if (Array.isArray(item)) {
    len = item.length;
    get = (a, b) => item.slice(a, b);
  } else {
    throw new Error(`can't slice item of type ${goTypeName(item)}`);
  }
  const idx = [0, len];
  indexes.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x)) throw new Error(`cannot index slice/array with type ${goTypeName(x)}`);
    if (x < 0 || x > len) throw new Error(`index out of range: ${x}`);
    idx[i] = x;
  });
  if (idx[0]! > idx[1]!) throw new Error(`invalid slice index: ${idx[0]} > ${idx[1]}`);
  return get(idx[0]!, idx[1]!);
}

type Kind = 'bool' | 'int' | 'float' | 'string' | 'nil' | 'other';
function basicKind(v: unknown): Kind {
  if (v === undefined || v === null) return 'nil';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number' || typeof v === 'bigint') return Number.isInteger(Number(v)) ? 'int' : 'float';
  if (typeof v === 'string') return 'string';
  return 'other';
}

function goEq(a: unknown, ...rest: unknown[]): boolean {
  if (rest.length === 0) throw new Error('missing argument for comparison');
  const ka = basicKind(a);
  for (const b of rest) {
    const kb = basicKind(b);
    let truth: boolean;
    if (ka === 'nil' || kb === 'nil') truth = ka === kb;
    else if (ka === 'other' || kb === 'other') {
      if (Array.isArray(a) || Array.isArray(b) || isPlainObject(a) || isPlainObject(b) || a instanceof Map || b instanceof Map) {
        throw new Error('non-comparable types');
      }
      truth = a === b;
    } else {
      const numeric = (k: Kind) => k === 'int' || k === 'float';
      if (ka !== kb && !(numeric(ka) && numeric(kb))) throw new Error('incompatible types for comparison');
      truth = typeof a === typeof b ? a === b : Number(a) === Number(b);
    }
    if (truth) return true;
  }
  return false;
}

function goLt(a: unknown, b: unknown): boolean {
  const ka = basicKind(a);
  const kb = basicKind(b);
  const numeric = (k: Kind) => k === 'int' || k === 'float';
  if (ka === 'bool' || ka === 'nil' || ka === 'other' || kb === 'bool' || kb === 'nil' || kb === 'other') {
    throw new Error('invalid type for comparison');
  }
  if (ka !== kb && !(numeric(ka) && numeric(kb))) throw new Error('incompatible types for comparison');
  if (ka === 'string') return (a as string) < (b as string);
  return Number(a) < Number(b);
}

function htmlEscape(s: string): string {
  return s.replace(/[&'<>"\0]/g, (c) =>
    c === '&' ? '&amp;' : c === '\'' ? '&#39;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&#34;' : '\ufffd',
  );
}

function jsEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '\\':
        out += '\\\\';
        break;
      case '\'':
        out += "\\'";
        break;
      case '"':
        out += '\\"';
        break;
      case '<':
        out += '\\u003C';
        break;
      case '>':
        out += '\\u003E';
        break;
      case '&':
        out += '\\u0026';
        break;
      case '=':
        out += '\\u003D';
        break;
      default:
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) out += '\\u' + cp.toString(16).toUpperCase().padStart(4, '0');
        else out += ch;
    }
  }
  return out;
}

function queryEscape(s: string): string {
  let out = '';
  for (const b of utf8Bytes(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** strings.Title: upper-case the first letter of each word. */
function goTitle(s: string): string {
  let prev = ' ';
  let out = '';
  for (const ch of s) {
    const sep = (() => {
      const cp = prev.codePointAt(0)!;
      if (cp <= 0x7f) return !/[0-9a-zA-Z_]/.test(prev);
      if (/[\p{L}\p{Nd}]/u.test(prev)) return false;
      return /\s/u.test(prev);
    })();
    out += sep ? ch.toUpperCase() : ch;
    prev = ch;
  }
  return out;
}

const BUILTINS: Record<string, FuncDef> = {
  and: { params: ['value'], variadic: 'value', fn: () => undefined, lazy: 'and' },
  or: { params: ['value'], variadic: 'value', fn: () => undefined, lazy: 'or' },
  not: { params: ['value'], fn: (v: unknown) => !isTrue(v) },
  len: { params: ['value'], fn: goLen },
  index: { params: ['value'], variadic: 'value', fn: goIndex },
  slice: { params: ['value'], variadic: 'value', fn: goSlice },
  print: { params: [], variadic: 'any', fn: (...a: unknown[]) => sprint(a) },
  println: { params: [], variadic: 'any', fn: (...a: unknown[]) => sprintln(a) },
  printf: { params: ['string'], variadic: 'any', fn: (f: string, ...a: unknown[]) => sprintf(f, a) },
  html: { params: [], variadic: 'any', fn: (...a: unknown[]) => htmlEscape(evalArgsString(a)) },
  js: { params: [], variadic: 'any', fn: (...a: unknown[]) => jsEscape(evalArgsString(a)) },
  urlquery: { params: [], variadic: 'any', fn: (...a: unknown[]) => queryEscape(evalArgsString(a)) },
  eq: { params: ['value'], variadic: 'value', fn: goEq },
  ne: { params: ['value', 'value'], fn: (a: unknown, b: unknown) => !goEq(a, b) },
  lt: { params: ['value', 'value'], fn: goLt },
  le: { params: ['value', 'value'], fn: (a: unknown, b: unknown) => goLt(a, b) || goEq(a, b) },
  gt: { params: ['value', 'value'], fn: (a: unknown, b: unknown) => !goLt(a, b) && !goEq(a, b) },
  ge: { params: ['value', 'value'], fn: (a: unknown, b: unknown) => !goLt(a, b) },
  call: {
    params: ['value'],
    variadic: 'value',
    fn: (f: unknown, ...a: unknown[]) => {
      if (typeof f !== 'function') throw new Error(`non-function of type ${goTypeName(f)}`);
      return f(...a);
    },
  },
};

function jsonOrEmpty(v: unknown, asMap: boolean): string {
  try {
    return goJson(v, asMap);
  } catch {
    return ''; // docker ignores the encoder's error and prints nothing
  }
}

/** The functions docker's CLI adds (cli/templates/templates.go). */
const DOCKER_FUNCS: Record<string, FuncDef> = {
  json: { params: ['any'], fn: (v: unknown) => jsonOrEmpty(v, false) },
  split: {
    params: ['string', 'string'],
    fn: (s: string, sep: string) => (sep === '' ? Array.from(s) : s.split(sep)),
  },
  join: { params: ['strings', 'string'], fn: (a: string[], sep: string) => a.join(sep) },
  title: { params: ['string'], fn: goTitle },
  lower: { params: ['string'], fn: (s: string) => s.toLowerCase() },
  upper: { params: ['string'], fn: (s: string) => s.toUpperCase() },
  pad: {
    params: ['string', 'int', 'int'],
    fn: (s: string, prefix: number, suffix: number) => (s === '' ? s : ' '.repeat(Math.max(prefix, 0)) + s + ' '.repeat(Math.max(suffix, 0))),
  },
  truncate: {
    params: ['string', 'int'],
    fn: (s: string, n: number) => {
      const bytes = utf8Bytes(s);
      if (bytes.length < n) return s;
      return Buffer.from(bytes.subarray(0, Math.max(n, 0))).toString('utf8');
    },
  },
};

/** docker's HeaderFunctions: while rendering a table header every docker function passes its first argument through. */
const HEADER_FUNCS: Record<string, FuncDef> = {
  json: { params: ['string'], fn: (v: string) => v },
  split: { params: ['string', 'string'], fn: (v: string) => v },
  join: { params: ['string', 'string'], fn: (v: string) => v },
  title: { params: ['string'], fn: (v: string) => v },
  lower: { params: ['string'], fn: (v: string) => v },
  upper: { params: ['string'], fn: (v: string) => v },
  pad: { params: ['string', 'int', 'int'], fn: (v: string) => v },
  truncate: { params: ['string', 'int'], fn: (v: string) => v },
};

// ---------------------------------------------------------------------------------------------
// Executor (text/template/exec.go)

class ExecError extends Error {}

const NO_FINAL: unique symbol = Symbol('missing');
type Final = unknown;

class BreakSignal {}
class ContinueSignal {}
const BREAK = new BreakSignal();
const CONTINUE = new ContinueSignal();

const MAX_DEPTH = 10000;

export interface TemplateOptions {
  /** Replace the two-character sequences `\t` and `\n` with tab and newline before parsing, as docker's formatter does (default true). */
  unescape?: boolean;
  /**
   * Treat plain objects as Go structs: a missing field is an execution error ("can't evaluate field X
   * in type T", docker's behaviour for `ps`/`images` contexts) instead of printing "<no value>"
   * (map semantics, docker's behaviour for `inspect`). Maps (JS Map) always use map semantics.
   */
  strict?: boolean;
  /** The type name used in strict-mode errors (default 'struct'). */
  typeName?: string;
  /** Extra functions callable from the template. */
  funcs?: Record<string, (...args: any[]) => unknown>;
  /**
   * `json` encodes plain objects as Go maps: sorted keys, zero-argument methods called and included,
   * as docker's list contexts marshal (`docker ps --format json`). renderTable turns it on by default;
   * otherwise key order is kept (struct order, as `docker inspect` prints).
   */
  jsonAsMap?: boolean;
}

class State {
  vars: Array<{ name: string; value: unknown }> = [];
  node: AnyNode | null = null;
  depth = 0;
  out = '';

  constructor(
    readonly tmpl: Template,
    readonly funcs: Record<string, FuncDef>,
  ) {}

  at(n: AnyNode): void {
    this.node = n;
  }

  errorf(msg: string): never {
    if (!this.node) throw new ExecError(`template: : ${msg}`);
    const src = this.tmpl.source;
    const pos = this.node.pos;
    const text = src.slice(0, pos);
    const nl = text.lastIndexOf('\n');
    const col = nl < 0 ? pos : pos - (nl + 1);
    const line = 1 + (text.match(/\n/g)?.length ?? 0);
    throw new ExecError(`template: :${line}:${col}: executing "" at <${nodeString(this.node)}>: ${msg}`);
  }

  mark(): number {
    return this.vars.length;
  }
  pop(mark: number): void {
    this.vars.length = mark;
  }
  push(name: string, value: unknown): void {
    this.vars.push({ name, value });
  }
  setVar(name: string, value: unknown): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i]!.name === name) {
        this.vars[i]!.value = value;
        return;
      }
    }
    this.errorf(`undefined variable: ${name}`);
  }
  setTopVar(n: number, value: unknown): void {
    this.vars[this.vars.length - n]!.value = value;
  }
  varValue(name: string): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--) if (this.vars[i]!.name === name) return this.vars[i]!.value;
    this.errorf(`undefined variable: ${name}`);
  }

  walkList(dot: unknown, list: Node[]): void {
    for (const n of list) this.walk(dot, n);
  }

  walk(dot: unknown, node: Node): void {
    this.at(node);
    switch (node.k) {
      case 'text':
        this.out += node.text;
        return;
      case 'action': {
        const val = this.evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.printValue(node, val);
        return;
      }
      case 'if':
      case 'with': {
        const mark = this.mark();
        const val = this.evalPipeline(dot, node.pipe);
        if (isTrue(val)) this.walkList(node.k === 'with' ? val : dot, node.list);
        else if (node.elseList) this.walkList(dot, node.elseList);
        this.pop(mark);
        return;
      }
      case 'range':
        this.walkRange(dot, node);
        return;
      case 'break':
        throw BREAK;
      case 'continue':
        throw CONTINUE;
      case 'template': {
        const list = this.tmpl.defs.get(node.name);
        if (!list) this.errorf(`no template ${goQuote(node.name)} associated with template ""`);
        const newDot = node.pipe ? this.evalPipeline(dot, node.pipe) : undefined;
        if (this.depth >= MAX_DEPTH) this.errorf(`exceeded maximum template depth (${MAX_DEPTH})`);
        const saved = this.vars;
        this.vars = [{ name: '$', value: newDot }];
        this.depth++;
        try {
          this.walkList(newDot, list);
        } finally {
          this.depth--;
          this.vars = saved;
        }
        return;
      }
    }
  }

  walkRange(dot: unknown, r: ControlNode): void {
    this.at(r);
    const mark = this.mark();
    const val = this.evalPipeline(dot, r.pipe);
    const decl = r.pipe.decl;
    const oneIteration = (index: unknown, elem: unknown): boolean => {
      if (decl.length > 0) {
        if (r.pipe.isAssign) {
          if (decl.length > 1) this.setVar(decl[0]!, index);
          else this.setVar(decl[0]!, elem);
        } else {
          this.setTopVar(1, elem);
        }
      }
      if (decl.length > 1) {
        if (r.pipe.isAssign) this.setVar(decl[1]!, elem);
        else this.setTopVar(2, index);
      }
      const m = this.mark();
      try {
        this.walkList(elem, r.list);
      } catch (e) {
        if (e === BREAK) return false;
        if (e !== CONTINUE) throw e;
      } finally {
        this.pop(m);
      }
      return true;
    };
    let ran = false;
    if (val === undefined || val === null) {
      // ranging over nil: nothing to do
    } else if (typeof val === 'number' || typeof val === 'bigint') {
      if (!Number.isInteger(Number(val))) this.errorf(`range can't iterate over ${formatValue(val)}`);
      if (decl.length > 1) this.errorf(`can't use ${formatValue(val)} to iterate over more than one variable`);
      for (let i = 0; i < Number(val); i++) {
        ran = true;
        if (!oneIteration(i, i)) break;
      }
    } else if (Array.isArray(val) || val instanceof Uint8Array) {
      for (let i = 0; i < val.length; i++) {
        ran = true;
        if (!oneIteration(i, val[i])) break;
      }
    } else if (val instanceof Map || isPlainObject(val)) {
      for (const [k, v] of mapEntries(val)) {
        ran = true;
        if (!oneIteration(k, v)) break;
      }
    } else if (typeof val === 'object' && typeof (val as Iterable<unknown>)[Symbol.iterator] === 'function') {
      let i = 0;
      for (const v of val as Iterable<unknown>) {
        ran = true;
        if (!oneIteration(i++, v)) break;
      }
    } else {
      this.errorf(`range can't iterate over ${formatValue(val)}`);
    }
    if (!ran && r.elseList) this.walkList(dot, r.elseList);
    this.pop(mark);
  }

  printValue(node: AnyNode, v: unknown): void {
    this.at(node);
    if (typeof v === 'function') this.errorf(`can't print ${nodeString(node)} of type ${goTypeName(v)}`);
    this.out += formatValue(v);
  }

  evalPipeline(dot: unknown, pipe: PipeNode): unknown {
    this.at(pipe);
    let value: unknown = NO_FINAL;
    for (const cmd of pipe.cmds) value = this.evalCommand(dot, cmd, value);
    if (value === NO_FINAL) value = undefined;
    for (const name of pipe.decl) {
      if (pipe.isAssign) this.setVar(name, value);
      else this.push(name, value);
    }
    return value;
  }

  notAFunction(args: ArgNode[], final: Final): void {
    if (args.length > 1 || final !== NO_FINAL) this.errorf(`can't give argument to non-function ${argString(args[0]!)}`);
  }

  evalCommand(dot: unknown, cmd: CmdNode, final: Final): unknown {
    const first = cmd.args[0]!;
    switch (first.k) {
      case 'field':
        this.at(first);
        return this.evalFieldChain(dot, dot, first, first.idents, cmd.args, final);
      case 'chain':
        return this.evalChainNode(dot, first, cmd.args, final);
      case 'ident':
        return this.evalFunction(dot, first, cmd, cmd.args, final);
      case 'pipe':
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first.pipe);
      case 'var':
        return this.evalVariableNode(dot, first, cmd.args, final);
    }
    this.at(first);
    this.notAFunction(cmd.args, final);
    switch (first.k) {
      case 'bool':
      case 'number':
      case 'string':
        return first.value;
      case 'dot':
        return dot;
      case 'nil':
        this.errorf('nil is not a command');
    }
  }

  evalChainNode(dot: unknown, chain: Extract<ArgNode, { k: 'chain' }>, args: ArgNode[], final: Final): unknown {
    this.at(chain);
    if (chain.node.k === 'nil') this.errorf(`indirection through explicit nil in ${argString(chain)}`);
    const pipe = this.evalArg(dot, 'value', chain.node);
    return this.evalFieldChain(dot, pipe, chain, chain.idents, args, final);
  }

  evalVariableNode(dot: unknown, v: Extract<ArgNode, { k: 'var' }>, args: ArgNode[], final: Final): unknown {
    this.at(v);
    const value = this.varValue(v.name);
    if (v.idents.length === 0) {
      this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(dot, value, v, v.idents, args, final);
  }

  evalFieldChain(dot: unknown, receiver: unknown, node: ArgNode, idents: string[], args: ArgNode[], final: Final): unknown {
    if (receiver instanceof HeaderContext) return receiver.get(idents[idents.length - 1]!);
    const n = idents.length;
    for (let i = 0; i < n - 1; i++) receiver = this.evalField(dot, idents[i]!, node, [], NO_FINAL, receiver);
    return this.evalField(dot, idents[n - 1]!, node, args, final, receiver);
  }

  evalField(dot: unknown, name: string, node: ArgNode, args: ArgNode[], final: Final, receiver: unknown): unknown {
    if (receiver === undefined || receiver === null) return undefined;
    if (receiver instanceof HeaderContext) return receiver.get(name);
    const hasArgs = args.length > 1 || final !== NO_FINAL;
    if (receiver instanceof Map) {
      if (hasArgs) this.errorf(`${name} is not a method but has arguments`);
      return receiver.has(name) ? receiver.get(name) : undefined;
    }
    const isObj = typeof receiver === 'object' || typeof receiver === 'function';
    if (isObj && !Array.isArray(receiver) && !(receiver instanceof Date) && !(receiver instanceof Uint8Array)) {
      const obj = receiver as Record<string, unknown>;
      if (hasMember(obj, name)) {
        const v = obj[name];
        if (typeof v === 'function') {
          const def: FuncDef = { params: [], variadic: 'value', fn: (...a: unknown[]) => (v as (...x: unknown[]) => unknown).apply(obj, a) };
          return this.evalCall(dot, def, node, name, args, final);
        }
        if (hasArgs) {
          this.errorf(isPlainObject(obj) ? `${name} is not a method but has arguments` : `${name} has arguments but cannot be invoked as field`);
        }
        return v;
      }
      if (hasArgs && isPlainObject(obj)) this.errorf(`${name} is not a method but has arguments`);
      if (this.tmpl.opts.strict && !(receiver instanceof Map)) {
        this.errorf(`can't evaluate field ${name} in type ${this.tmpl.opts.typeName ?? 'struct'}`);
      }
      return undefined;
    }
    this.errorf(`can't evaluate field ${name} in type ${goTypeName(receiver)}`);
  }

  evalFunction(dot: unknown, node: Extract<ArgNode, { k: 'ident' }>, cmd: AnyNode, args: ArgNode[], final: Final): unknown {
    this.at(node);
    const def = this.funcs[node.name];
    if (!def) this.errorf(`${goQuote(node.name)} is not a defined function`);
    return this.evalCall(dot, def, cmd, node.name, args, final);
  }

  evalCall(dot: unknown, def: FuncDef, node: AnyNode, name: string, args: ArgNode[], final: Final): unknown {
    const argNodes = args.slice(1);
    const numIn = argNodes.length + (final !== NO_FINAL ? 1 : 0);
    const fixed = def.params.length;
    if (def.variadic !== undefined) {
      if (numIn < fixed) this.errorf(`wrong number of args for ${name}: want at least ${fixed} got ${numIn}`);
    } else if (numIn !== fixed) {
      this.errorf(`wrong number of args for ${name}: want ${fixed} got ${numIn}`);
    }
    const typeAt = (i: number): ParamType => (i < fixed ? def.params[i]! : def.variadic!);
    if (def.lazy) {
      // and/or evaluate their arguments lazily and return the deciding one.
      const want = def.lazy === 'or';
      let v: unknown;
      for (let i = 0; i < numIn; i++) {
        v = i < argNodes.length ? this.evalArg(dot, 'value', argNodes[i]!) : final;
        if (isTrue(v) === want) return v;
      }
      return v;
    }
    const vals: unknown[] = argNodes.map((a, i) => this.evalArg(dot, typeAt(i), a));
    if (final !== NO_FINAL) {
      this.at(node);
      vals.push(this.validateType(final, typeAt(argNodes.length)));
    }
    try {
      return def.fn(...vals);
    } catch (e) {
      if (e instanceof ExecError || e === BREAK || e === CONTINUE) throw e;
      this.at(node);
      this.errorf(`error calling ${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  validateType(v: unknown, typ: ParamType): unknown {
    if (v === undefined) {
      if (typ === 'value') return undefined;
      if (typ === 'any') return null;
      this.errorf(`invalid value; expected ${goParamName(typ)}`);
    }
    const ok = (() => {
      switch (typ) {
        case 'any':
        case 'value':
          return true;
        case 'string':
          return typeof v === 'string';
        case 'int':
          return typeof v === 'number' ? Number.isInteger(v) : typeof v === 'bigint';
        case 'bool':
          return typeof v === 'boolean';
        case 'strings':
          return v === null || (Array.isArray(v) && v.every((x) => typeof x === 'string'));
      }
    })();
    if (!ok) this.errorf(`wrong type for value; expected ${goParamName(typ)}; got ${goTypeName(v)}`);
    if (typ === 'strings' && v === null) return [];
    if (typ === 'int' && typeof v === 'bigint') return Number(v);
    return v;
  }

  evalArg(dot: unknown, typ: ParamType, n: ArgNode): unknown {
    this.at(n);
    switch (n.k) {
      case 'dot':
        return this.validateType(dot, typ);
      case 'nil':
        if (typ === 'any' || typ === 'value' || typ === 'strings') return typ === 'strings' ? [] : null;
        this.errorf(`cannot assign nil to ${goParamName(typ)}`);
      // falls through (unreachable)
      case 'field':
        return this.validateType(this.evalFieldChain(dot, dot, n, n.idents, [n], NO_FINAL), typ);
      case 'var':
        return this.validateType(this.evalVariableNode(dot, n, [n], NO_FINAL), typ);
      case 'pipe':
        return this.validateType(this.evalPipeline(dot, n.pipe), typ);
      case 'ident':
        return this.validateType(this.evalFunction(dot, n, n, [n], NO_FINAL), typ);
      case 'chain':
        return this.validateType(this.evalChainNode(dot, n, [n], NO_FINAL), typ);
    }
    switch (typ) {
      case 'any':
      case 'value':
        return n.value;
      case 'string':
        if (n.k === 'string') return n.value;
        this.errorf(`expected string; found ${argString(n)}`);
      // falls through (unreachable)
      case 'int':
        if (n.k === 'number' && Number.isInteger(n.value)) return n.value;
        this.errorf(`expected integer; found ${argString(n)}`);
      // falls through (unreachable)
      case 'bool':
        if (n.k === 'bool') return n.value;
        this.errorf(`expected bool; found ${argString(n)}`);
      // falls through (unreachable)
      default:
        this.errorf(`can't handle ${argString(n)} for arg of type ${goParamName(typ)}`);
    }
  }
}

function goParamName(t: ParamType): string {
  switch (t) {
    case 'any':
      return 'interface {}';
    case 'value':
      return 'reflect.Value';
    case 'strings':
      return '[]string';
    default:
      return t;
  }
}

function hasMember(obj: object, name: string): boolean {
  if (Object.prototype.hasOwnProperty.call(obj, name)) return true;
  if (isPlainObject(obj)) return false;
  let p = Object.getPrototypeOf(obj);
  while (p && p !== Object.prototype && p !== Function.prototype) {
    if (Object.prototype.hasOwnProperty.call(p, name)) return name !== 'constructor';
    p = Object.getPrototypeOf(p);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Public API

/** docker's formatter pre-processing: the two-character sequences `\t` and `\n` become tab and newline. */
export function unescapeFormat(format: string): string {
  return format.replace(/\\[tn]/g, (m) => (m === '\\t' ? '\t' : '\n'));
}

/** A parsed template. Parse errors are thrown by the constructor. */
export class Template {
  readonly defs: Map<string, Node[]>;
  private readonly root: Node[];
  private readonly funcs: Record<string, FuncDef>;
  private readonly headerFuncs: Record<string, FuncDef>;

  constructor(
    readonly source: string,
    readonly opts: TemplateOptions = {},
  ) {
    const extra: Record<string, FuncDef> = {};
    for (const [k, fn] of Object.entries(opts.funcs ?? {})) extra[k] = { params: [], variadic: 'value', fn };
    this.funcs = { ...BUILTINS, ...DOCKER_FUNCS, ...extra };
    if (opts.jsonAsMap) this.funcs['json'] = { params: ['any'], fn: (v: unknown) => jsonOrEmpty(v, true) };
    this.headerFuncs = { ...this.funcs, ...HEADER_FUNCS };
    try {
      const parser = new Parser(lex(source), (name) => name in this.funcs);
      this.root = parser.parse();
      this.defs = parser.defs;
    } catch (e) {
      if (e instanceof ParseError) throw new TemplateError(PREFIX + e.message);
      throw e;
    }
  }

  /** Execute against data; throws TemplateError ('template parsing error: template: :1:2: executing …'). */
  execute(data: unknown): string {
    return this.run(data, this.funcs);
  }

  /** Execute in header mode: fields resolve to header names, docker's functions pass their argument through. */
  executeHeader(headers: Record<string, string>): string {
    return this.run(new HeaderContext(headers), this.headerFuncs);
  }

  private run(data: unknown, funcs: Record<string, FuncDef>): string {
    const s = new State(this, funcs);
    s.push('$', data);
    try {
      s.walkList(data, this.root);
    } catch (e) {
      if (e instanceof ExecError) throw new TemplateError(PREFIX + e.message);
      if (e instanceof RangeError && /call stack/i.test(e.message)) {
        throw new TemplateError(`${PREFIX}template: : exceeded maximum template depth`);
      }
      throw e;
    }
    return s.out;
  }
}

/**
 * Parse a docker `--format` template (after docker's `\t`/`\n` unescaping) and return a function
 * rendering it for one data value. Throws TemplateError at once for a malformed template, and from
 * the returned function for execution errors; both messages start with 'template parsing error:'.
 */
export function compileTemplate(format: string, opts: TemplateOptions = {}): (data: unknown) => string {
  const tmpl = new Template(opts.unescape === false ? format : unescapeFormat(format), opts);
  return (data: unknown) => tmpl.execute(data);
}

/** True when docker treats the format as a table format (it starts with 'table'). */
export function isTableFormat(format: string): boolean {
  return format.startsWith('table');
}

/**
 * docker's formatter.Context for a list command. 'json' means '{{json .}}'. A format starting with
 * 'table' prints a header row (each field's text from headers, else derived from the field name:
 * CreatedSince → 'CREATED SINCE') followed by one row per element, aligned like Go's
 * tabwriter.NewWriter(out, 10, 1, 3, ' ', 0). Any other format prints one rendered line per row,
 * each followed by '\n'. Surrounding spaces are trimmed and `\t`/`\n` unescaped, as docker does.
 */
export function renderTable(
  format: string,
  rows: unknown[],
  headers: Record<string, string> = {},
  opts: Omit<TemplateOptions, 'unescape'> = {},
): string {
  if (format === 'json') format = '{{json .}}';
  const table = isTableFormat(format);
  let body = table ? format.slice('table'.length) : format;
  body = unescapeFormat(body.replace(/^ +| +$/g, ''));
  const tmpl = new Template(body, { jsonAsMap: true, ...opts });
  let out = '';
  for (const row of rows) out += tmpl.execute(row) + '\n';
  if (!table) return out;
  const header = tmpl.executeHeader(headers) + '\n';
  return tabwriteText(header + out);
}

/** Go's text/tabwriter on already-split lines; returns the lines joined by '\n' (last one unterminated). */
function formatColumns(lines: string[][], minWidth: number, padding: number): string {
  const widths: number[] = [];
  const out: string[] = new Array<string>(lines.length);
  const runeLen = (s: string): number => {
    let n = 0;
    for (const _ of s) n++;
    return n;
  };
  const writeLines = (line0: number, line1: number): void => {
    for (let i = line0; i < line1; i++) {
      const cells = lines[i]!;
      let s = '';
      cells.forEach((c, j) => {
        s += c;
        if (j < widths.length) s += ' '.repeat(Math.max(widths[j]! - runeLen(c), 0));
      });
      out[i] = s;
    }
  };
  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    for (let t = line0; t < line1; t++) {
      if (column >= lines[t]!.length - 1) continue;
      // A cell in this column starts a column block.
      writeLines(line0, t);
      line0 = t;
      let width = minWidth;
      for (; t < line1; t++) {
        const line = lines[t]!;
        if (column >= line.length - 1) break;
        const w = runeLen(line[column]!) + padding;
        if (w > width) width = w;
      }
      widths.push(width);
      format(line0, t);
      widths.pop();
      line0 = t;
    }
    writeLines(line0, line1);
  };
  format(0, lines.length);
  return out.join('\n');
}

/** Align tab-separated text as docker's table output does (each '\n'-terminated line; trailing text after the last tab is not padded). */
export function tabwriteText(text: string, opts: { minWidth?: number; padding?: number } = {}): string {
  const lines = text.split('\n').map((l) => l.split('\t'));
  return formatColumns(lines, opts.minWidth ?? 10, opts.padding ?? 3);
}

/**
 * Align rows of cells like Go's tabwriter with docker's settings (minwidth 10, padding 3, ' '):
 * each column is as wide as its widest cell plus padding (at least minWidth); the last cell of a line
 * is not padded; a line with fewer cells ends the column blocks it lacks. Every line ends in '\n'.
 */
export function tabwrite(lines: string[][], opts: { minWidth?: number; padding?: number } = {}): string {
  if (lines.length === 0) return '';
  return formatColumns(lines, opts.minWidth ?? 10, opts.padding ?? 3) + '\n';
}

// Exposed for tests and for other formatters.
export { formatValue as goFormatValue, sprintf as goSprintf };

/** encoding/json of a value as the template `json` function prints it (see TemplateOptions.jsonAsMap). */
export function toGoJson(v: unknown, asMap = false): string {
  return goJson(v, asMap);
}
