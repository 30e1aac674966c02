// The Dockerfile parser: lines, directives, continuations, heredocs, exec/shell forms, instruction checks, stages.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { csvFields, parseRunMount, ramInBytes } from '../../src/dockerfile/mounts.js';
import { parseSecretFlag, parseSshFlag } from '../../src/builder/flags.js';
import { DockerfileParseError, parseDockerfile, parseHeredocWord, parseLines, parseTrigger, type ParsedCommand } from '../../src/dockerfile/parser.js';

function lines(text: string) {
  return parseLines(text).instructions;
}

function rejects(text: string, message: string | RegExp): void {
  assert.throws(
    () => parseDockerfile(text),
    (e: unknown) => {
      assert.ok(e instanceof DockerfileParseError, `expected DockerfileParseError, got ${String(e)}`);
      if (typeof message === 'string') assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
  );
}

function commands(text: string): ParsedCommand[] {
  const df = parseDockerfile(text);
  return df.stages.flatMap((s) => [s.from, ...s.commands]);
}

describe('Dockerfile lines', () => {
  it('skips comments and blank lines and records line numbers', () => {
    const ins = lines('# a comment\n\nFROM busybox\n  # indented comment\nRUN echo hi\n');
    assert.deepEqual(
      ins.map((i) => [i.keyword, i.args, i.line]),
      [
        ['FROM', 'busybox', 3],
        ['RUN', 'echo hi', 5],
      ],
    );
  });

  it('upper-cases keywords written in lower case', () => {
    assert.equal(lines('from busybox\nrun true')[1]!.keyword, 'RUN');
  });

  it('joins continuation lines, keeping the continuation line’s leading whitespace', () => {
    const [run] = lines('RUN a \\\n    && b \\\n  && c');
    assert.equal(run!.args, 'a     && b   && c');
    assert.equal(run!.line, 1);
    assert.equal(run!.endLine, 3);
  });

  it('skips comment lines and empty lines inside a continuation (and warns about the empty ones)', () => {
    const p = parseLines('RUN a \\\n# comment\n\n  b\nFROM x');
    assert.equal(p.instructions[0]!.args, 'a   b');
    assert.equal(p.instructions[1]!.line, 5);
    assert.equal(p.warnings.length, 1);
  });

  it('allows whitespace after the continuation backslash', () => {
    assert.equal(lines('RUN a \\   \n b')[0]!.args, 'a  b');
  });

  it('handles CRLF line endings and a byte-order mark', () => {
    const ins = lines('\ufeffFROM busybox\r\nRUN echo \\\r\n hi\r\n');
    assert.equal(ins[0]!.args, 'busybox');
    assert.equal(ins[1]!.args, 'echo  hi');
  });

  it('keeps the joined text as the original (what Step N/M shows)', () => {
    assert.equal(lines('  COPY  src/ \\\n ./src/')[0]!.original, 'COPY  src/  ./src/');
  });

  it('an instruction at the end of the file without a final continuation line is kept', () => {
    assert.equal(lines('RUN a \\')[0]!.args, 'a');
  });
});

describe('parser directives', () => {
  it('reads syntax and escape at the top', () => {
    const p = parseLines('# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n');
    assert.deepEqual(p.directives, { syntax: 'docker/dockerfile:1', escape: '`' });
    assert.equal(p.escape, '`');
  });

  it('the backtick escape makes ` the continuation character and \\ literal', () => {
    const ins = lines('# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo hi\nCOPY a\\ b');
    assert.equal(ins[1]!.args, 'dir c:\\   && echo hi');
    assert.equal(ins[2]!.args, 'a\\ b');
  });

  it('directives are only read before anything else: later ones are comments', () => {
    const p = parseLines('FROM x\n# escape=`\nRUN a `\n');
    assert.deepEqual(p.directives, {});
    assert.equal(p.instructions[1]!.args, 'a `');
  });

  it('a blank line ends the directives', () => {
    assert.deepEqual(parseLines('\n# escape=`\nFROM x').directives, {});
  });

  it('is case-insensitive in the directive name and tolerant of spaces', () => {
    assert.deepEqual(parseLines('#  ESCAPE = `\nFROM x').directives, { escape: '`' });
  });

  it('refuses a bad escape token and a repeated directive', () => {
    assert.throws(() => parseLines('# escape=x\nFROM a'), /invalid escape token 'x'/);
    assert.throws(() => parseLines('# escape=`\n# escape=\\\nFROM a'), /only one escape parser directive/);
  });
});

describe('heredocs', () => {
  it('reads a RUN heredoc up to its terminator', () => {
    const [, run, after] = lines('FROM x\nRUN <<EOF\necho a\necho b\nEOF\nCMD ["x"]');
    assert.deepEqual(run!.heredocs, [{ name: 'EOF', content: 'echo a\necho b\n', expand: true, chomp: false, fd: 0 }]);
    assert.equal(run!.endLine, 5);
    assert.equal(after!.line, 6);
  });

  it('<<- strips leading tabs from the terminator line', () => {
    const [run] = lines('RUN <<-EOT\n\techo a\n\tEOT\n');
    assert.equal(run!.heredocs[0]!.chomp, true);
    assert.equal(run!.heredocs[0]!.content, '\techo a\n');
  });

  it('a quoted name turns expansion off', () => {
    assert.equal(lines('RUN <<"EOF"\n$X\nEOF')[0]!.heredocs[0]!.expand, false);
    assert.equal(lines("RUN <<'EOF'\n$X\nEOF")[0]!.heredocs[0]!.expand, false);
    assert.equal(parseHeredocWord('<<EOF')!.expand, true);
  });

  it('reads several heredocs in order (COPY into a directory)', () => {
    const [cp] = lines('COPY <<one <<two /dst/\nfirst\none\nsecond\ntwo\n');
    assert.deepEqual(
      cp!.heredocs.map((h) => [h.name, h.content]),
      [
        ['one', 'first\n'],
        ['two', 'second\n'],
      ],
    );
  });

  it('heredocs are only read for RUN, COPY and ADD', () => {
    const ins = lines('CMD cat <<EOF\nFROM x');
    assert.equal(ins.length, 2);
    assert.deepEqual(ins[0]!.heredocs, []);
  });

  it('an unterminated heredoc is an error naming its line', () => {
    assert.throws(() => parseLines('FROM x\nRUN <<EOF\necho\n'), (e: unknown) => e instanceof DockerfileParseError && e.line === 2 && /unterminated heredoc/.test(e.message));
  });

  it('recognises heredoc words (with an fd, not with extra words)', () => {
    assert.deepEqual(parseHeredocWord('3<<EOF'), { name: 'EOF', expand: true, chomp: false, fd: 3 });
    assert.equal(parseHeredocWord('<<'), undefined);
    assert.equal(parseHeredocWord('x<<EOF'), undefined);
  });

  it('COPY <<EOF makes a source content; RUN keeps its files', () => {
    const [, cp, run] = commands('FROM x\nCOPY <<-EOF /etc/conf\n\tkey=$V\n\tEOF\nRUN <<EOF sh\necho\nEOF\n');
    assert.equal(cp!.kind, 'COPY');
    if (cp!.kind === 'COPY') {
      assert.deepEqual(cp.sources, []);
      assert.deepEqual(cp.contents, [{ path: 'EOF', data: 'key=$V\n', expand: true }]);
      assert.equal(cp.dest, '/etc/conf');
    }
    assert.equal(run!.kind, 'RUN');
    if (run!.kind === 'RUN') assert.equal(run.files.length, 1);
  });
});

describe('instructions', () => {
  it('exec form vs shell form', () => {
    const [, a, b, c] = commands('FROM x\nRUN ["echo", "a b"]\nRUN echo "a b"\nRUN [not json');
    assert.deepEqual(a!.kind === 'RUN' && [a.cmdLine, a.prependShell], [['echo', 'a b'], false]);
    assert.deepEqual(b!.kind === 'RUN' && [b.cmdLine, b.prependShell], [['echo "a b"'], true]);
    assert.deepEqual(c!.kind === 'RUN' && c.cmdLine, ['[not json']);
  });

  it('FROM with AS and --platform; stage names are lower-cased', () => {
    const df = parseDockerfile('FROM --platform=linux/amd64 golang:1.22 AS Build\nFROM build');
    assert.deepEqual(
      { base: df.stages[0]!.from.base, name: df.stages[0]!.name, platform: df.stages[0]!.from.platform },
      { base: 'golang:1.22', name: 'build', platform: 'linux/amd64' },
    );
    assert.equal(df.stages[1]!.from.base, 'build');
  });

  it('FROM needs one or three arguments and a valid stage name', () => {
    rejects('FROM a b', 'dockerfile parse error on line 1: FROM requires either one or three arguments');
    rejects('FROM a AS 1x', /invalid name for build stage/);
    rejects('FROM a AS x\nFROM b AS X', 'dockerfile parse error on line 2: duplicate stage name "x"');
  });

  it('ARG before FROM is a global arg; other instructions need a stage', () => {
    const df = parseDockerfile('ARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG}');
    assert.deepEqual(
      df.metaArgs.flatMap((a) => a.args),
      [{ key: 'BASE', value: 'busybox' }, { key: 'TAG' }],
    );
    rejects('RUN true\nFROM x', 'dockerfile parse error on line 1: no build stage in current context');
  });

  it('ARG keeps default values raw (quotes expanded later) and several per line', () => {
    const [, arg] = commands('FROM x\nARG A="a b" B=2 C');
    assert.deepEqual(arg!.kind === 'ARG' && arg.args, [{ key: 'A', value: '"a b"' }, { key: 'B', value: '2' }, { key: 'C' }]);
  });

  it('unknown instructions name themselves and their line', () => {
    rejects('FROM busybox\nRUN echo hi\nFORM x', /^dockerfile parse error on line 3: unknown instruction: FORM/);
    rejects('FROM busybox\nFOO bar', 'dockerfile parse error on line 2: unknown instruction: FOO');
  });

  it('COPY flags, JSON form and argument count', () => {
    const [, cp, cp2] = commands('FROM x\nCOPY --from=build --chown=app:app --chmod=644 --link a b /dst/\nCOPY ["with space", "/d st/"]');
    assert.ok(cp!.kind === 'COPY');
    if (cp!.kind === 'COPY') {
      assert.deepEqual([cp.from, cp.chown, cp.chmod, cp.link, cp.sources, cp.dest], ['build', 'app:app', '644', true, ['a', 'b'], '/dst/']);
    }
    if (cp2!.kind === 'COPY') assert.deepEqual([cp2.sources, cp2.dest], [['with space'], '/d st/']);
    rejects('FROM x\nCOPY onlyone', /COPY requires at least two arguments, but only one was provided/);
    rejects('FROM x\nCOPY --bogus a b', 'dockerfile parse error on line 2: Unknown flag: bogus');
    rejects('FROM x\nADD --from=x a b', 'dockerfile parse error on line 2: Unknown flag: from');
  });

  it('checks config instructions at parse time', () => {
    rejects('FROM x\nENV', 'dockerfile parse error on line 2: ENV requires at least one argument');
    rejects('FROM x\nEXPOSE 80/xyz', 'dockerfile parse error on line 2: invalid proto: xyz');
    rejects('FROM x\nSTOPSIGNAL SIGFOO', 'dockerfile parse error on line 2: invalid signal: SIGFOO');
    rejects('FROM x\nONBUILD FROM y', /FROM isn't allowed as an ONBUILD trigger/);
    rejects('FROM x\nHEALTHCHECK --interval=1 CMD true', /missing unit in duration/);
    // Expansion errors depend on the variables in scope: they are left for the build.
    assert.doesNotThrow(() => parseDockerfile('FROM x\nENV A=${B:?unset}'));
  });

  it('SHELL needs the JSON form', () => {
    const [, sh] = commands('FROM x\nSHELL ["/bin/bash", "-c"]');
    assert.deepEqual(sh!.kind === 'SHELL' && sh.shell, ['/bin/bash', '-c']);
    rejects('FROM x\nSHELL /bin/bash -c', 'dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form');
  });

  it('RUN flags: --network and --mount are accepted; --mount from= may not use variables', () => {
    const [, run] = commands('FROM x\nRUN --network=none echo');
    assert.equal(run!.kind === 'RUN' && run.network, 'none');
    rejects('FROM x\nRUN --mount=from=$STAGE_$X,target=/x true', /'from' doesn't support variable expansion/);
    rejects('FROM x\nRUN --network=bridge true', /unsupported network mode: bridge/);
  });

  it('an empty file and a file of comments have no instructions', () => {
    rejects('', 'dockerfile parse error: file with no instructions');
    rejects('# only a comment\n\n', 'dockerfile parse error: file with no instructions');
  });

  it('splits stages, keeping each stage’s commands', () => {
    const df = parseDockerfile('FROM a AS one\nRUN x\nRUN y\nFROM b\nCOPY --from=one /x /y');
    assert.deepEqual(
      df.stages.map((s) => [s.name, s.index, s.commands.map((c) => c.kind)]),
      [
        ['one', 0, ['RUN', 'RUN']],
        [undefined, 1, ['COPY']],
      ],
    );
  });

  it('ONBUILD triggers parse as instructions; FROM and ONBUILD are refused', () => {
    assert.equal(parseTrigger('RUN echo hi').kind, 'RUN');
    assert.throws(() => parseTrigger('FROM x'), /isn't allowed as an ONBUILD trigger/);
  });

  it('MAINTAINER and the config instructions are accepted', () => {
    const kinds = commands('FROM x\nMAINTAINER me\nCMD x\nENTRYPOINT ["y"]\nENV A=1\nLABEL a=b\nEXPOSE 80\nUSER app\nWORKDIR /w\nVOLUME /v\nSTOPSIGNAL SIGTERM\nHEALTHCHECK NONE\nONBUILD RUN x').map((c) => c.kind);
    assert.deepEqual(kinds, ['FROM', 'MAINTAINER', ...Array(11).fill('CONFIG')]);
  });
});

describe('RUN --mount specs (buildkit commands_runmount.go)', () => {
  const parse = (v: string) => parseRunMount(v, (w) => w.replace('$T', '/expanded'));

  it('defaults: bind, read-only; cache and tmpfs writable; keys and flags in any case', () => {
    assert.deepEqual(parse('target=/x'), { type: 'bind', readOnly: true, required: false, target: '/x' });
    assert.equal(parse('type=cache,target=/x').readOnly, false);
    assert.equal(parse('type=tmpfs,target=/x').readOnly, false);
    assert.equal(parse('type=bind,target=/x,rw').readOnly, false);
    assert.equal(parse('type=cache,target=/x,ro').readOnly, true);
    assert.equal(parse('type=bind,target=/x,readwrite=true').readOnly, false);
    assert.equal(parse('TYPE=Cache,Target=$T').target, '/expanded');
    assert.deepEqual(parse('type=cache,id=go,target=/root/.cache,sharing=LOCKED,uid=1000,gid=1000,mode=0700'), {
      type: 'cache', readOnly: false, required: false, id: 'go', target: '/root/.cache', sharing: 'locked', uid: 1000, gid: 1000, mode: 0o700,
    });
    assert.equal(parse('type=tmpfs,target=/t,size=64m').sizeLimit, 64 << 20);
    assert.deepEqual(parse('type=secret,id=tok,env=TOKEN,required'), { type: 'secret', readOnly: true, required: true, id: 'tok', env: 'TOKEN' });
  });

  it('refuses what buildkit refuses, with its messages', () => {
    const bad: [string, RegExp][] = [
      ['type=bind,target=/x,mode=0700', /mode not allowed for "bind" type mounts/],
      ['type=tmpfs,target=/x,uid=1', /uid not allowed for "tmpfs" type mounts/],
      ['type=bind,target=/x,required', /unexpected key 'required' for mount type 'bind'/],
      ['type=cache,target=/x,size=1m', /unexpected key 'size' for mount type 'cache'/],
      ['type=cache,target=/x,sharing=sometimes', /unsupported sharing value "sometimes"/],
      ['type=bind,target=/x,sharing=locked', /invalid cache sharing set for bind mount/],
      ['type=secret', /invalid secret mount. one of source, target required/],
      ['type=secret,id=a,source=b', /both source and id can't be set/],
      ['type=secret,id=a,from=x', /secret mount should not have a from/],
      ['type=ssh,source=x', /ssh does not support source/],
      ['type=cache,target=/x,mode=9', /invalid value 9 for mode/],
      ['type=bind,target=/x,ro=maybe', /invalid value for ro: maybe/],
      ['type=bind,target=/x,bogus=1', /unexpected key 'bogus' in 'bogus=1'/],
      ['type=bind,novalue', /invalid field 'novalue' must be a key=value pair/],
    ];
    for (const [v, re] of bad) assert.throws(() => parse(v), re, v);
  });

  it('CSV fields: quotes keep commas; sizes in docker units', () => {
    assert.deepEqual(csvFields('a=1,"b=2,3",c='), ['a=1', 'b=2,3', 'c=']);
    assert.deepEqual(csvFields('"x=""q"""'), ['x="q"']);
    assert.throws(() => csvFields('a="b'), /bare "/);
    assert.equal(ramInBytes('100'), 100);
    assert.equal(ramInBytes('1.5k'), 1536);
    assert.equal(ramInBytes('2GiB'), 2 * 1024 ** 3);
    assert.equal(ramInBytes('lots'), undefined);
  });

  it('--secret and --ssh flags as buildx reads them', () => {
    assert.deepEqual(parseSecretFlag('id=a,src=/f'), { id: 'a', file: '/f' });
    assert.deepEqual(parseSecretFlag('id=a,env=VAR'), { id: 'a', env: 'VAR' });
    assert.deepEqual(parseSecretFlag('type=env,id=a,src=VAR'), { id: 'a', env: 'VAR' });
    assert.deepEqual(parseSecretFlag('src=/run/keys/token'), { id: 'token', file: '/run/keys/token' });
    assert.throws(() => parseSecretFlag('id=a,type=vault'), /unsupported secret type "vault"/);
    assert.throws(() => parseSshFlag('default', {}), /SSH_AUTH_SOCK/);
    assert.throws(() => parseSshFlag('default=/etc/passwd', {}), /not an agent socket/);
  });
});
