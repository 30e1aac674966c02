// Go text/template's lexer and parser (text/template/parse: lex.go, parse.go): a format string → a parse tree.
import { PlyError } from '../errors.js';
import { goQuote } from './values.js';

/** A malformed template or a failure while executing one (message starts with 'template parsing error: '). */
export class TemplateError extends PlyError {
  override exitCode = 1;
  // docker's CLI prints a template's error as it is.
  override cliPrefix = '';
}

export const PREFIX = 'template parsing error: ';

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

export function lex(input: string): Tok[] {
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

export type ArgNode =
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

export interface CmdNode {
  k: 'cmd';
  pos: number;
  args: ArgNode[];
}

export interface PipeNode {
  k: 'pipeline';
  pos: number;
  decl: string[];
  isAssign: boolean;
  cmds: CmdNode[];
}

export type Node =
  | { k: 'text'; pos: number; text: string }
  | { k: 'action'; pos: number; pipe: PipeNode }
  | ControlNode
  | { k: 'break' | 'continue'; pos: number }
  | { k: 'template'; pos: number; name: string; pipe: PipeNode | null };

export interface ControlNode {
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

export type AnyNode = Node | ArgNode | CmdNode | PipeNode;

export function argString(a: ArgNode): string {
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

export function nodeString(n: AnyNode): string {
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

export class ParseError extends Error {}

export class Parser {
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
          node = { k: 'field', pos, idents: [...node.idents, ...idents] };
          break;
        case 'var':
          node = { k: 'var', pos, name: node.name, idents: [...node.idents, ...idents] };
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
