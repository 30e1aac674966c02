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

import { BUILTINS, DOCKER_FUNCS, HEADER_FUNCS, jsonOrEmpty, type FuncDef, type ParamType } from './funcs.js';
import { argString, lex, nodeString, ParseError, Parser, PREFIX, TemplateError, type AnyNode, type ArgNode, type CmdNode, type ControlNode, type Node, type PipeNode } from './parse.js';
import { HeaderContext, formatValue, goJson, goQuote, goTypeName, isPlainObject, isTrue, mapEntries, sprintf } from './values.js';

export { TemplateError };
export { deriveHeader, goQuote } from './values.js';

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
  /**
   * 'error': a key missing from a plain object is an execution error ("map has no entry for key"), except in the
   * objects `isMap` says are maps, as docker's inspect executes a template (its struct, then the raw JSON with
   * Go's missingkey=error).
   */
  missingKey?: 'error';
  isMap?: (obj: object) => boolean;
  /** Values whose `json` escapes <, > and & as \u003c… (Go's json.Marshal, which docker's list contexts use for `{{json .}}`). */
  jsonEscapeHtml?: (v: unknown) => boolean;
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
      // docker inspect: a missing field of a struct fails as Go's missingkey=error does; a map's prints <no value>.
      if (this.tmpl.opts.missingKey === 'error' && !this.tmpl.opts.isMap?.(obj)) this.errorf(`map has no entry for key ${goQuote(name)}`);
      return undefined;
    }
    // docker inspect reports a failure from its raw JSON (map[string]interface{}), where every value is an interface.
    this.errorf(`can't evaluate field ${name} in type ${this.tmpl.opts.missingKey === 'error' ? 'interface {}' : goTypeName(receiver)}`);
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

/** Go's json.Marshal escapes <, > and & (only ever inside strings in JSON text). */
function escapeHtmlJson(json: string): string {
  return json.replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}

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
    if (opts.jsonAsMap || opts.jsonEscapeHtml) {
      const asMap = !!opts.jsonAsMap;
      const escape = opts.jsonEscapeHtml ?? (() => false);
      this.funcs['json'] = { params: ['any'], fn: (v: unknown) => (escape(v) ? escapeHtmlJson(jsonOrEmpty(v, asMap)) : jsonOrEmpty(v, asMap)) };
    }
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
  // `{{json .}}` of a row is the row marshalling itself (Go's json.Marshal: HTML escaped); of a field, the json function's encoder (not).
  const rowSet = new Set(rows);
  const tmpl = new Template(body, { jsonAsMap: true, jsonEscapeHtml: (v) => rowSet.has(v), ...opts });
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
