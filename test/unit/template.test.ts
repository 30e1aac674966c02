import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { TemplateError, compileTemplate, deriveHeader, renderTable, tabwrite, tabwriteText } from '../../src/gotemplate/template.js';

const data = {
  ID: 'sha256:abcdef0123456789',
  Repository: 'alpine',
  Tag: '3.19',
  Size: 1234,
  Ratio: 1.5,
  Names: ['web', 'db'],
  Labels: { zeta: '1', alpha: '2' },
  Config: { Env: ['A=1', 'B=2'], Cmd: null, Labels: { 'com.example': 'yes' } },
  Running: true,
  Zero: 0,
  Empty: '',
  Created: new Date('2024-01-02T03:04:05Z'),
  Label(key: string) {
    return `label:${key}`;
  },
  Short() {
    return 'abcdef012345';
  },
};

const render = (format: string, d: unknown = data) => compileTemplate(format)(d);

function throwsTemplate(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TemplateError, 'a TemplateError');
    assert.match(e.message, /^template parsing error: /);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('fields and printing', () => {
  it('prints fields, nested fields and methods', () => {
    assert.equal(render('{{.Repository}}:{{.Tag}}'), 'alpine:3.19');
    assert.equal(render('{{.Config.Env}}'), '[A=1 B=2]');
    assert.equal(render('{{.Short}}'), 'abcdef012345');
    assert.equal(render('{{.Label "com.x"}}'), 'label:com.x');
    assert.equal(render('{{.Config.Labels.missing}}'), '<no value>');
  });
  it("prints values the way Go's fmt does", () => {
    assert.equal(render('{{.Size}} {{.Ratio}} {{.Running}} {{.Zero}}'), '1234 1.5 true 0');
    assert.equal(render('{{.Labels}}'), 'map[alpha:2 zeta:1]');
    assert.equal(render('{{.Missing}}'), '<no value>');
    assert.equal(render('{{.Config.Cmd}}'), '<nil>');
    assert.equal(render('{{.}}', { a: [1, 'x', { k: null }], b: new Map([[2, 'two'], [1, 'one']]) }), 'map[a:[1 x map[k:<nil>]] b:map[1:one 2:two]]');
    assert.match(render('{{.Created}}'), /^2024-01-0[12] \d\d:\d\d:05 [-+]\d{4} \S+$/); // time.Time.String(), local zone
    assert.equal(render('{{"lit"}} {{`raw`}} {{3}} {{1.5}} {{true}} {{\'a\'}} {{print nil}}'), 'lit raw 3 1.5 true 97 <nil>');
  });
  it("unescapes docker's \\t and \\n before parsing", () => {
    assert.equal(render('{{.Repository}}\\t{{.Tag}}\\n'), 'alpine\t3.19\n');
    assert.equal(compileTemplate('a\\tb', { unescape: false })({}), 'a\\tb');
  });
});

describe('functions', () => {
  it('json in both call and pipeline form', () => {
    assert.equal(render('{{json .Names}}'), '["web","db"]');
    assert.equal(render('{{.Names | json}}'), '["web","db"]');
    assert.equal(render('{{json .Config.Labels}}'), '{"com.example":"yes"}');
    assert.equal(render('{{json .Missing}}'), 'null');
    assert.equal(render('{{json .Created}}'), '"2024-01-02T03:04:05Z"');
    assert.equal(render('{{json "a<b>&c"}}'), '"a<b>&c"'); // no HTML escaping, as docker
    assert.equal(render('{{json .}}', { b: 1, a: { c: [true, null] } }), '{"b":1,"a":{"c":[true,null]}}');
  });
  it("docker's string functions", () => {
    assert.equal(render('{{join .Names ", "}}'), 'web, db');
    assert.equal(render('{{lower "ABC"}} {{upper .Repository}} {{title "hello wide-world"}}'), 'abc ALPINE Hello Wide-World');
    assert.equal(render('{{split "a,b,c" ","}}'), '[a b c]');
    assert.equal(render('{{index (split "a,b,c" ",") 1}}'), 'b');
    assert.equal(render('{{truncate .Repository 3}}|{{truncate "ab" 5}}'), 'alp|ab');
    assert.equal(render('[{{pad .Tag 2 1}}][{{pad "" 2 2}}]'), '[  3.19 ][]');
  });
  it("Go's builtins", () => {
    assert.equal(render('{{println .Tag}}'), '3.19\n');
    assert.equal(render('{{print 1 2 "a" "b" 3}}'), '1 2ab3');
    assert.equal(render('{{len .Names}} {{len .Labels}} {{len "héllo"}}'), '2 2 6');
    assert.equal(render('{{index .Labels "zeta"}}|{{index .Names 1}}|{{index .Config.Labels "nope"}}'), '1|db|');
    assert.equal(render('{{printf "%-6s|%05d|%.2f|%q|%x|%v" "ab" 42 3.14159 "hi" 255 .Names}}'), 'ab    |00042|3.14|"hi"|ff|[web db]');
    assert.equal(render('{{printf "%d %s" "x"}}'), '%!d(string=x) %!s(MISSING)');
    assert.equal(render('{{and 1 0}} {{or 0 "x"}} {{not .Running}} {{eq .Tag "1" "3.19"}} {{ne 1 2}} {{lt 1 2}} {{ge "a" "b"}}'), '0 x false true true true false');
    assert.equal(render('{{slice "hello" 1 3}} {{slice .Names 1}}'), 'el [db]');
    assert.equal(render('{{html "<a&b>"}} {{urlquery "a b&c"}}'), '&lt;a&amp;b&gt; a+b%26c');
  });
});

describe('control structures', () => {
  it('range over slices, maps and integers', () => {
    assert.equal(render('{{range .Names}}[{{.}}]{{end}}'), '[web][db]');
    assert.equal(render('{{range $i, $n := .Names}}{{if $i}}, {{end}}{{$i}}={{$n}}{{end}}'), '0=web, 1=db');
    assert.equal(render('{{range $k, $v := .Labels}}{{$k}}:{{$v}};{{end}}'), 'alpha:2;zeta:1;');
    assert.equal(render('{{range $v := .Names}}{{$v}}{{end}}'), 'webdb');
    assert.equal(render('{{range 3}}{{.}}{{end}}'), '012');
    assert.equal(render('{{range .Missing}}x{{else}}none{{end}}'), 'none');
    assert.equal(render('{{range .Names}}{{if eq . "db"}}{{break}}{{end}}{{.}}{{end}}'), 'web');
    assert.equal(render('{{range .Names}}{{if eq . "web"}}{{continue}}{{end}}{{.}}{{end}}'), 'db');
  });
  it('if / else if / else, with, variables, trim markers, comments', () => {
    assert.equal(render('{{if .Running}}up{{else}}down{{end}}'), 'up');
    assert.equal(render('{{if .Zero}}a{{else if .Empty}}b{{else}}c{{end}}'), 'c');
    assert.equal(render('{{if and .Running (gt .Size 1000)}}big{{end}}'), 'big');
    assert.equal(render('{{with .Config}}{{.Env}}{{end}}'), '[A=1 B=2]');
    assert.equal(render('{{with .Missing}}x{{else with .Tag}}{{.}}{{end}}'), '3.19');
    assert.equal(render('{{$x := .Tag}}{{$x}}{{$x = "w"}} {{$x}} {{$.Repository}}'), '3.19 w alpine');
    assert.equal(render('a  {{- " b " -}}  c {{/* note */}}d'), 'a b c d');
    assert.equal(render('{{define "t"}}<{{.}}>{{end}}{{template "t" .Tag}}'), '<3.19>');
  });
});

describe('errors', () => {
  it('parse errors start with "template parsing error:" like docker', () => {
    throwsTemplate(() => compileTemplate('{{.ID'), /template: :1: unclosed action$/);
    throwsTemplate(() => compileTemplate('{{foo .ID}}'), /function "foo" not defined/);
    throwsTemplate(() => compileTemplate('{{if .X}}x'), /unexpected EOF/);
    throwsTemplate(() => compileTemplate('x{{end}}'), /unexpected \{\{end\}\}/);
    throwsTemplate(() => compileTemplate('{{"abc}}'), /unterminated quoted string/);
    throwsTemplate(() => compileTemplate('{{$y}}'), /undefined variable "\$y"/);
    throwsTemplate(() => compileTemplate('\n{{break}}'), /template: :2: \{\{break\}\} outside \{\{range\}\}/);
    // docker's \n unescaping happens before parsing, so "\n" in a string literal breaks it, as in docker
    throwsTemplate(() => compileTemplate('{{join .Names "\\n"}}'), /unterminated quoted string/);
  });
  it('execution errors carry the position and the failing node (a field chain: its last field, as Go; docker 28: :1:5)', () => {
    throwsTemplate(() => render('{{.ID.Foo}}'), /template: :1:5: executing "" at <\.ID\.Foo>: can't evaluate field Foo in type string/);
    throwsTemplate(() => render('{{index .Names 5}}'), /error calling index: index out of range: 5/);
    throwsTemplate(() => render('{{truncate .Repository "x"}}'), /expected integer; found "x"/);
    throwsTemplate(() => render('{{join .Labels ","}}'), /wrong type for value; expected \[\]string/);
    throwsTemplate(() => render('{{len}}'), /wrong number of args for len: want 1 got 0/);
    throwsTemplate(() => render('{{nil | print}}'), /nil is not a command/);
    throwsTemplate(
      () => compileTemplate('{{.Nope}}', { strict: true, typeName: '*formatter.ImageContext' })(data),
      /can't evaluate field Nope in type \*formatter\.ImageContext/,
    );
  });
});

describe('tabwriter', () => {
  it('pads columns to max width + 3, at least 10, last cell unpadded', () => {
    assert.equal(tabwrite([['a', 'bb', 'c'], ['dddddddddddddd', 'e', 'f']]), 'a                bb        c\ndddddddddddddd   e         f\n');
    assert.equal(tabwrite([['x', 'y']], { minWidth: 0, padding: 1 }), 'x y\n');
    assert.equal(tabwrite([]), '');
  });
  it('a line with fewer cells ends a column block', () => {
    assert.equal(tabwriteText('aaaaaaaaaaaa\tb\nc\nd\te\n'), 'aaaaaaaaaaaa   b\nc\nd         e\n');
  });
});

describe('renderTable', () => {
  const rows = [
    { ID: 'abcdef012345', Repository: 'alpine', Tag: 'latest', CreatedSince: '2 weeks ago', Size: '7.8MB' },
    { ID: '0123456789ab', Repository: 'docker.io/library/ubuntu', Tag: '22.04', CreatedSince: '3 months ago', Size: '77.9MB' },
  ];
  const headers = { ID: 'IMAGE ID', Repository: 'REPOSITORY', CreatedSince: 'CREATED' };
  it('prints a header and aligned rows for table formats', () => {
    assert.equal(
      renderTable('table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}', rows, headers),
      [
        'REPOSITORY                 TAG       IMAGE ID       CREATED        SIZE',
        'alpine                     latest    abcdef012345   2 weeks ago    7.8MB',
        'docker.io/library/ubuntu   22.04     0123456789ab   3 months ago   77.9MB',
        '',
      ].join('\n'),
    );
  });
  it('header mode passes docker functions through and derives unknown headers', () => {
    assert.equal(renderTable('table {{upper .ID}}\\t{{.LocalVolumes}}', [], headers), 'IMAGE ID   LOCAL VOLUMES\n');
    assert.equal(renderTable('table {{.ID}}', [], headers), 'IMAGE ID\n');
    assert.equal(deriveHeader('CreatedSince'), 'CREATED SINCE');
    assert.equal(deriveHeader('IPAddress'), 'IP ADDRESS');
  });
  it('plain and json formats print one line per row', () => {
    assert.equal(renderTable('{{.Repository}}:{{.Tag}}', rows, headers), 'alpine:latest\ndocker.io/library/ubuntu:22.04\n');
    assert.equal(renderTable('  {{.ID}}\\t{{.Tag}}  ', rows.slice(0, 1), headers), 'abcdef012345\tlatest\n');
    // list contexts marshal as Go maps: sorted keys, zero-argument methods included
    assert.equal(renderTable('json', rows.slice(0, 1), headers), '{"CreatedSince":"2 weeks ago","ID":"abcdef012345","Repository":"alpine","Size":"7.8MB","Tag":"latest"}\n');
    const withMethods = { Names: 'web', ID: () => 'abc', Label: (k: string) => k };
    assert.equal(renderTable('{{json .}}', [withMethods], headers), '{"ID":"abc","Names":"web"}\n');
    assert.equal(renderTable('{{.ID}}', [], headers), '');
  });
});
