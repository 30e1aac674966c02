// .dockerignore reading and matching (moby/patternmatcher's cases), Go's filepath.Match for COPY wildcards,
// and the build context's source resolution and checksum.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { cleanPath, globMatch, hasWildcards, PatternMatcher, readIgnorePatterns } from '../../src/builder/ignore.js';
import { SourceTree, loadIgnoreRules } from '../../src/builder/context.js';
import { tempDir } from '../helpers.js';

const matches = (pattern: string, file: string) => new PatternMatcher([pattern]).matches(file);

describe('.dockerignore patterns (patternmatcher)', () => {
  // [pattern, path, excluded] — from moby/patternmatcher's own tests.
  const cases: [string, string, boolean][] = [
    ['**', 'file', true],
    ['**', 'dir/file', true],
    ['**/', 'file', true],
    ['**/**', 'dir/file', true],
    ['dir/**', 'dir/file', true],
    ['dir/**', 'dir/dir2/file', true],
    ['**/dir', 'dir', true],
    ['**/dir', 'dir/file', true],
    ['**/dir2/*', 'dir/dir2/file', true],
    ['**/dir2/**', 'dir/dir2/dir3/file', true],
    ['**file', 'file', true],
    ['**file', 'dir/dir/file', true],
    ['**/file', 'dir/dir/file', true],
    ['**/file*', 'dir/dir/file.txt', true],
    ['**/file*.txt', 'dir/dir/file.txt', true],
    ['**/**/*.txt', 'dir/dir/file.txt', true],
    ['**/**/*.txt2', 'dir/dir/file.txt', false],
    ['**/*.txt', 'file.txt', true],
    ['a**/*.txt', 'a/dir/dir/file.txt', true],
    ['a/*.txt', 'a/dir/file.txt', false],
    ['a/*.txt', 'a/file.txt', true],
    ['a/*.txt**', 'a/file.txt', true],
    ['a[b-d]e', 'ae', false],
    ['a[b-d]e', 'ace', true],
    ['a[^b-d]e', 'aze', true],
    ['.*', '.foo', true],
    ['.*', 'foo', false],
    ['abc.def', 'abcdef', false],
    ['abc.def', 'abc.def', true],
    ['abc?def', 'abcZdef', true],
    ['abc?def', 'abcdef', false],
    ['a\\\\', 'a\\', true],
    ['**/foo/bar', 'foo/bar', true],
    ['**/foo/bar', 'dir/dir2/foo/bar', true],
    ['abc/**', 'abc', false],
    ['abc/**', 'abc/def/ghi', true],
    ['**/.foo', '.foo', true],
    ['**/.foo', 'bar.foo', false],
    ['a(b)c/def', 'a(b)c/def', true],
    ['a(b)c/def', 'a(b)c/xyz', false],
    ['a.|)$(}+{bc', 'a.|)$(}+{bc', true],
    ['dist/*.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', true],
    // A pattern matching a directory excludes what is inside it.
    ['node_modules', 'node_modules/x/y.js', true],
    ['*.md', 'docs/a.md', false],
  ];
  for (const [pattern, file, want] of cases) {
    it(`${pattern} ${want ? 'matches' : 'does not match'} ${file}`, () => assert.equal(matches(pattern, file), want));
  }

  it('the last matching pattern wins: ! brings files back', () => {
    const m = new PatternMatcher(['*.txt', '!keep.txt']);
    assert.equal(m.matches('a.txt'), true);
    assert.equal(m.matches('keep.txt'), false);
    assert.equal(m.exclusions, true);
  });

  it('an exception inside an excluded directory', () => {
    const m = new PatternMatcher(['dir', '!dir/keep']);
    assert.equal(m.matches('dir/other'), true);
    assert.equal(m.matches('dir/keep'), false);
    assert.equal(m.matches('dir'), true);
  });

  it('a later exclusion overrides an earlier exception', () => {
    const m = new PatternMatcher(['!a.txt', '*.txt']);
    assert.equal(m.matches('a.txt'), true);
  });

  it('refuses "!" alone and malformed patterns', () => {
    assert.throws(() => new PatternMatcher(['!']), /illegal exclusion pattern/);
    assert.throws(() => new PatternMatcher(['a[']), /syntax error in pattern/);
  });
});

describe('reading .dockerignore', () => {
  it('skips comments and blank lines, trims, cleans and drops a leading /', () => {
    assert.deepEqual(readIgnorePatterns('# comment\n\n  /foo/  \n./bar/../baz\n! /keep\n**/*.log\n/\n'), ['foo', 'baz', '!keep', '**/*.log', '/']);
  });

  it('a # after the start of a line is part of the pattern; a BOM is dropped', () => {
    assert.deepEqual(readIgnorePatterns('\ufeffa#b\n #c'), ['a#b', '#c']);
  });

  it('cleanPath is Go’s path.Clean', () => {
    assert.equal(cleanPath('a//b/./c/..'), 'a/b');
    assert.equal(cleanPath('../a'), '../a');
    assert.equal(cleanPath('/../a/'), '/a');
    assert.equal(cleanPath(''), '.');
  });
});

describe('filepath.Match (COPY wildcards)', () => {
  const cases: [string, string, boolean][] = [
    ['abc', 'abc', true],
    ['*', 'abc', true],
    ['a*', 'ab/c', false],
    ['a*/b', 'abc/b', true],
    ['a*b?c*x', 'abxbbxdbxebxczzx', true],
    ['a*b?c*x', 'abxbbxdbxebxczzy', false],
    ['ab[b-d]', 'abc', true],
    ['ab[^c]', 'abc', false],
    ['ab[^e-g]', 'abc', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'ab', false],
    ['a?b', 'a☺b', true],
    ['a[^a]b', 'a☺b', true],
    ['[a-ζ]*', 'α', true],
    ['a?b', 'a/b', false],
    ['[\\]a]', ']', true],
    ['[x\\-]', '-', true],
    ['[\\-x]', 'a', false],
    ['*.txt', '.hidden.txt', true],
  ];
  for (const [pattern, name, want] of cases) {
    it(`${pattern} ${want ? 'matches' : 'does not match'} ${name}`, () => assert.equal(globMatch(pattern, name), want));
  }

  it('malformed patterns are errors', () => {
    for (const p of ['[]a]', '[-]', '[x-]', '\\', '[a-b-c]', '[', 'a[']) assert.throws(() => globMatch(p, 'a'), /syntax error in pattern/, p);
  });

  it('knows which sources have wildcards', () => {
    assert.equal(hasWildcards('src/*.js'), true);
    assert.equal(hasWildcards('a\\*b'), false);
    assert.equal(hasWildcards('plain/path'), false);
  });
});

describe('build context sources', () => {
  function context(files: Record<string, string>, ignore?: string): SourceTree {
    const dir = tempDir('ply-ctx-');
    for (const [f, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.writeFileSync(path.join(dir, f), content);
    }
    if (ignore !== undefined) fs.writeFileSync(path.join(dir, '.dockerignore'), ignore);
    return new SourceTree(dir, loadIgnoreRules(dir));
  }
  const rels = (t: SourceTree, spec: string) => t.resolve(spec).matches.flatMap((m) => m.entries.map((e) => (m.isDir ? `${m.rel || '.'}:${e.rel}` : m.rel)));

  it('a directory source lists its contents, ignored paths left out, exceptions kept', () => {
    const t = context({ 'a.txt': '1', 'b.log': '2', 'sub/c.log': '3', 'sub/keep.log': '4', 'node_modules/x/y': '5' }, 'node_modules\n**/*.log\n!sub/keep.log\n');
    assert.deepEqual(rels(t, '.'), ['.:', '.:.dockerignore', '.:a.txt', '.:sub', '.:sub/keep.log']);
  });

  it('wildcards match per path component; an excluded file is not found', () => {
    const t = context({ 'src/a.js': '1', 'src/b.ts': '2', 'src/sub/c.js': '3', 'secret.txt': 'x' }, 'secret.txt');
    assert.deepEqual(rels(t, 'src/*.js'), ['src/a.js']);
    assert.throws(() => t.resolve('secret.txt'), /COPY failed: file not found in build context or excluded by \.dockerignore: stat secret\.txt: file does not exist/);
    assert.throws(() => t.resolve('*.nothing'), /COPY failed: no source files were specified/);
  });

  it('sources cannot leave the context', () => {
    const t = context({ 'a.txt': '1' });
    assert.deepEqual(rels(t, '../../a.txt'), ['a.txt']);
  });

  it('the checksum follows content and modes, not mtimes', () => {
    const t = context({ 'a.txt': 'one' });
    const sum = () => new SourceTree(t.root).checksum([new SourceTree(t.root).resolve('a.txt')]);
    const before = sum();
    fs.utimesSync(path.join(t.root, 'a.txt'), new Date(0), new Date(0));
    assert.equal(sum(), before, 'touch keeps the checksum');
    fs.chmodSync(path.join(t.root, 'a.txt'), 0o755);
    const afterChmod = sum();
    assert.notEqual(afterChmod, before);
    fs.writeFileSync(path.join(t.root, 'a.txt'), 'two');
    fs.chmodSync(path.join(t.root, 'a.txt'), 0o755);
    assert.notEqual(sum(), afterChmod);
  });
});

describe('excluded directories and exceptions', () => {
  it('an excluded directory is searched only when an exception could match inside it', () => {
    const m = new PatternMatcher(['node_modules', '*.md', '!README.md', 'build', '!build/keep/**']);
    assert.equal(m.exceptionsMayMatchInside('node_modules'), false);
    assert.equal(m.exceptionsMayMatchInside('build'), true);
    const deep = new PatternMatcher(['node_modules', '**/tmp', '!**/tmp/important']);
    assert.equal(deep.exceptionsMayMatchInside('node_modules'), true, '** may reach anywhere');
    assert.equal(deep.exceptionsMayMatchInside('a/b/tmp'), true);
  });
});
