// .dockerignore files and path patterns, as docker reads and matches them (moby/patternmatcher and its
// ignorefile.ReadAll), plus Go's filepath.Match for COPY/ADD wildcards.

import { InvalidArgumentError } from '../errors.js';

/** Go's path.Clean: one slash between components, no '.', '..' folded where it can be, '' → '.'. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(c);
  }
  const s = out.join('/');
  if (rooted) return `/${s}`;
  return s === '' ? '.' : s;
}

/**
 * The patterns of a .dockerignore file (ignorefile.ReadAll): `#` comment lines and blank lines skipped, each
 * pattern trimmed and cleaned, a leading '/' dropped (patterns are relative to the context), `!` kept in front.
 */
export function readIgnorePatterns(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let pattern = lines[i]!;
    if (i === 0 && pattern.startsWith('\ufeff')) pattern = pattern.slice(1);
    if (pattern.startsWith('#')) continue;
    pattern = pattern.trim();
    if (pattern === '') continue;
    const invert = pattern[0] === '!';
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern[0] === '/') pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

const REGEXP_ESCAPE = new Set(['.', '+', '(', ')', '|', '{', '}', '$']);

class Pattern {
  readonly matchType: MatchType;
  private readonly regexp?: RegExp;

  constructor(
    readonly cleaned: string,
    readonly exclusion: boolean,
  ) {
    // patternmatcher Pattern.compile, with '/' as the separator.
    let re = '^';
    let type: MatchType = 'exact';
    const chars = Array.from(cleaned);
    for (let i = 0; i < chars.length; i++) {
      const start = i;
      const ch = chars[i]!;
      if (ch === '*') {
        if (chars[i + 1] === '*') {
          i++;
          if (chars[i + 1] === '/') i++;
          if (i + 1 >= chars.length) {
            if (type === 'exact') type = 'prefix';
            else {
              re += '.*';
              type = 'regexp';
            }
          } else {
            re += '(.*/)?';
            type = 'regexp';
          }
          // A leading "**" makes a suffix match, unless later wildcards turn the pattern into a regexp again.
          if (start === 0) type = 'suffix';
        } else {
          re += '[^/]*';
          type = 'regexp';
        }
      } else if (ch === '?') {
        re += '[^/]';
        type = 'regexp';
      } else if (REGEXP_ESCAPE.has(ch)) {
        re += `\\${ch}`;
      } else if (ch === '\\') {
        if (i + 1 < chars.length) {
          re += `\\${chars[++i]!}`;
          type = 'regexp';
        } else {
          re += '\\\\';
        }
      } else if (ch === '[' || ch === ']') {
        re += ch;
        type = 'regexp';
      } else {
        re += ch;
      }
    }
    this.matchType = type;
    if (type === 'regexp') {
      try {
        this.regexp = new RegExp(`${re}$`, 's');
      } catch {
        throw new InvalidArgumentError(`syntax error in pattern: ${cleaned}`);
      }
    }
  }

  match(path: string): boolean {
    switch (this.matchType) {
      case 'exact':
        return path === this.cleaned;
      case 'prefix':
        return path.startsWith(this.cleaned.slice(0, -2));
      case 'suffix': {
        const suffix = this.cleaned.slice(2);
        if (path.endsWith(suffix)) return true;
        return suffix[0] === '/' && path === suffix.slice(1);
      }
      case 'regexp':
        return this.regexp!.test(path);
    }
  }
}

/** moby/patternmatcher: ordered include/exclude patterns; the last pattern that matches a path decides. */
export class PatternMatcher {
  private readonly patterns: Pattern[] = [];
  /** Whether any `!` pattern exists: excluded directories must then still be searched. */
  readonly exclusions: boolean = false;

  constructor(patterns: string[]) {
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === '') continue;
      p = cleanPath(p);
      let exclusion = false;
      if (p[0] === '!') {
        if (p.length === 1) throw new InvalidArgumentError('illegal exclusion pattern: "!"');
        exclusion = true;
        p = p.slice(1);
        this.exclusions = true;
      }
      checkGlob(p);
      this.patterns.push(new Pattern(p, exclusion));
    }
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /**
   * Whether an exception (`!pattern`) could match something below the excluded directory `dir`: only then
   * does an excluded directory have to be searched (node_modules is not walked for a `!README.md`).
   */
  exceptionsMayMatchInside(dir: string): boolean {
    const parts = dir.split('/');
    for (const p of this.patterns) {
      if (!p.exclusion) continue;
      const pp = p.cleaned.split('/');
      let possible = true;
      for (let i = 0; i < parts.length; i++) {
        const c = pp[i];
        if (c === undefined) {
          possible = false;
          break;
        }
        if (c.includes('**')) break;
        let ok: boolean;
        try {
          ok = globMatch(c, parts[i]!);
        } catch {
          ok = true;
        }
        if (!ok) {
          possible = false;
          break;
        }
      }
      if (possible) return true;
    }
    return false;
  }

  /** MatchesOrParentMatches: whether `file` (relative, '/'-separated) or one of its parents is excluded. */
  matches(file: string): boolean {
    let matched = false;
    const parent = file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '.';
    const parentDirs = parent.split('/');
    for (const pattern of this.patterns) {
      if (pattern.exclusion !== matched) continue;
      let match = pattern.match(file);
      if (!match && parent !== '.') {
        for (let i = 0; i < parentDirs.length; i++) {
          if (pattern.match(parentDirs.slice(0, i + 1).join('/'))) {
            match = true;
            break;
          }
        }
      }
      if (match) matched = !pattern.exclusion;
    }
    return matched;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Go's filepath.Match

/** Whether a COPY source has wildcards (buildkit containsWildcards: `*`, `?`, `[`, with `\` escaping). */
export function hasWildcards(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\') i++;
    else if (ch === '*' || ch === '?' || ch === '[') return true;
  }
  return false;
}

/** Removes the `\` escapes of a path without wildcards. */
export function unescapeGlob(s: string): string {
  return s.replace(/\\(.)/gs, '$1');
}

/** A literal character in a (unicode-mode) regular expression; `-` only matters inside a class. */
function escapeRegExpChar(c: string, inClass = false): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) || (inClass && c === '-') ? `\\${c}` : c;
}

const globCache = new Map<string, RegExp>();

/** Go's filepath.Match pattern as a regular expression; throws on a malformed pattern (ErrBadPattern). */
export function globRegExp(pattern: string): RegExp {
  const cached = globCache.get(pattern);
  if (cached) return cached;
  const chars = Array.from(pattern);
  let re = '^';
  const bad = () => new InvalidArgumentError(`syntax error in pattern: ${pattern}`);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      if (i + 1 >= chars.length) throw bad();
      re += escapeRegExpChar(chars[++i]!);
    } else if (c === '[') {
      i++;
      let negated = false;
      if (chars[i] === '^') {
        negated = true;
        i++;
      }
      let body = '';
      let n = 0;
      for (;;) {
        if (i >= chars.length) throw bad();
        let lo = chars[i]!;
        if (lo === ']' && n > 0) break;
        if (lo === '\\') {
          i++;
          if (i >= chars.length) throw bad();
          lo = chars[i]!;
        } else if (lo === ']' || lo === '-') throw bad();
        body += escapeRegExpChar(lo, true);
        if (chars[i + 1] === '-') {
          i += 2;
          let hi = chars[i];
          if (hi === undefined) throw bad();
          if (hi === '\\') {
            i++;
            hi = chars[i];
            if (hi === undefined) throw bad();
          } else if (hi === ']' || hi === '-') throw bad();
          if (hi < lo) throw bad();
          body += `-${escapeRegExpChar(hi, true)}`;
        }
        i++;
        n++;
      }
      // A class never matches the separator.
      re += negated ? `[^/${body}]` : `(?!/)[${body}]`;
    } else re += escapeRegExpChar(c);
  }
  const r = new RegExp(`${re}$`, 'su');
  globCache.set(pattern, r);
  return r;
}

/** Go's filepath.Match. */
export function globMatch(pattern: string, name: string): boolean {
  return globRegExp(pattern).test(name);
}

/** Checks a pattern's syntax as patternmatcher.New does (filepath.Match(p, ".")). */
function checkGlob(p: string): void {
  for (const part of p.split('/')) {
    try {
      globRegExp(part);
    } catch {
      throw new InvalidArgumentError(`syntax error in pattern: ${p}`);
    }
  }
}
