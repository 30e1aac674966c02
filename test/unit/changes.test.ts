import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { applyChanges } from '../../src/dockerfile/config.js';
import { parseBuilderFlags, parseInstruction } from '../../src/dockerfile/instruction.js';
import { expandVariables, expandWords, parseKeyValues, splitWords } from '../../src/dockerfile/shell.js';
import { InvalidArgumentError } from '../../src/errors.js';
import type { ContainerConfig } from '../../src/oci/types.js';

function rejects(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

describe('parseInstruction', () => {
  it('upper-cases the keyword and trims the arguments', () => {
    assert.deepEqual(parseInstruction('  cmd   echo  hi  '), { keyword: 'CMD', args: 'echo  hi', flags: [] });
  });

  it('sets json only for a JSON array of strings', () => {
    assert.deepEqual(parseInstruction('CMD ["a", "b c"]').json, ['a', 'b c']);
    assert.equal(parseInstruction('CMD [1, 2]').json, undefined);
    assert.equal(parseInstruction('CMD [not json').json, undefined);
    assert.equal(parseInstruction('CMD echo ["a"]').json, undefined);
  });

  it('extracts leading builder flags, joining `--flag value`', () => {
    const p = parseInstruction('HEALTHCHECK --interval=5s --retries 3 CMD ["true"]');
    assert.deepEqual(p.flags, ['--interval=5s', '--retries=3']);
    assert.equal(p.args, 'CMD ["true"]');
    assert.deepEqual(parseInstruction('CMD run --help').flags, []);
  });

  it('handles a keyword with no arguments', () => {
    assert.deepEqual(parseInstruction('ENV'), { keyword: 'ENV', args: '', flags: [] });
  });
});

describe('splitWords', () => {
  it('splits on unquoted whitespace and keeps quotes and escapes in the words', () => {
    assert.deepEqual(splitWords(`a "b c" d\\ e 'f g'`), ['a', '"b c"', 'd\\ e', "'f g'"]);
  });

  it('keeps an empty quoted word and drops a trailing escape', () => {
    assert.deepEqual(splitWords(`k="" x\\`), ['k=""', 'x']);
    assert.deepEqual(splitWords('   '), []);
  });
});

describe('parseKeyValues', () => {
  it('parses key=value pairs, raw by default', () => {
    assert.deepEqual(parseKeyValues('k=v k2="v 2" k3=a\\ b', 'ENV'), [
      ['k', 'v'],
      ['k2', '"v 2"'],
      ['k3', 'a\\ b'],
    ]);
  });

  it('processes quotes, escapes and variables when given an env', () => {
    assert.deepEqual(parseKeyValues(`k=$X k2="v 2" k3='$X' k4=a\\ b`, 'LABEL', { X: '1' }), [
      ['k', '1'],
      ['k2', 'v 2'],
      ['k3', '$X'],
      ['k4', 'a b'],
    ]);
  });

  it('parses the legacy `KEY value with spaces` form', () => {
    assert.deepEqual(parseKeyValues('MY_VAR  hello   world', 'ENV'), [['MY_VAR', 'hello   world']]);
  });

  it('rejects malformed pairs with docker messages', () => {
    rejects(() => parseKeyValues('', 'ENV'), 'ENV requires at least one argument');
    rejects(() => parseKeyValues('onlykey', 'LABEL'), 'LABEL must have two arguments');
    rejects(
      () => parseKeyValues('a=1 b', 'ENV'),
      `Syntax error - can't find = in "b". Must be of the form: name=value`,
    );
    rejects(() => parseKeyValues('=x', 'ENV'), 'ENV names can not be blank');
  });
});

describe('expandVariables', () => {
  const env = ['HOME=/root', 'EMPTY=', 'P=a/b/c.tar.gz'];

  it('expands $VAR and ${VAR}, unset variables to empty', () => {
    assert.equal(expandVariables('$HOME/x ${HOME}y $NOPE.', env), '/root/x /rooty .');
  });

  it('supports :- - :+ + defaults and alternatives', () => {
    assert.equal(expandVariables('${NOPE:-d1} ${EMPTY:-d2} ${EMPTY-d3} ${HOME:-d4}', env), 'd1 d2  /root');
    assert.equal(expandVariables('[${HOME:+alt}] [${EMPTY:+alt}] [${EMPTY+alt}] [${NOPE+alt}]', env), '[alt] [] [alt] []');
  });

  it('supports ${VAR:?msg}', () => {
    assert.equal(expandVariables('${HOME:?}', env), '/root');
    rejects(() => expandVariables('${NOPE:?must be set}', env), 'failed to process "${NOPE:?must be set}": NOPE: must be set');
    rejects(() => expandVariables('${EMPTY:?}', env), /EMPTY: is not allowed to be empty/);
  });

  it('supports # ## % %% prefix/suffix removal and / replacement', () => {
    assert.equal(expandVariables('${P#*/} ${P##*/} ${P%.*} ${P%%.*}', env), 'b/c.tar.gz c.tar.gz a/b/c.tar a/b/c');
    assert.equal(expandVariables('${P/\\//-} ${P//\\//-}', env), 'a-b/c.tar.gz a-b-c.tar.gz');
  });

  it('handles quotes and escapes like the Dockerfile', () => {
    assert.equal(expandVariables(`'$HOME' "$HOME" \\$HOME "a\\"b" 'c\\d'`, env), `$HOME /root $HOME a"b c\\d`);
    assert.equal(expandVariables('a\\ b\\\\c', env), 'a b\\c');
    assert.equal(expandVariables('cost: $5 $', env), 'cost:  $');
  });

  it('accepts a Record env', () => {
    assert.equal(expandVariables('${A}-${B:-b}', { A: 'a' }), 'a-b');
  });

  it('reports syntax errors', () => {
    rejects(() => expandVariables('${A', {}), `failed to process "\${A": syntax error: missing '}'`);
    rejects(() => expandVariables('${}', {}), /bad substitution/);
    rejects(() => expandVariables('"open', {}), /matching double-quote/);
    rejects(() => expandVariables("'open", {}), /matching single-quote/);
  });

  it('expandWords splits the expansion into words', () => {
    assert.deepEqual(expandWords('$PORTS 9000 "a b"', { PORTS: '80  443' }), ['80', '443', '9000', 'a b']);
  });
});

describe('parseBuilderFlags', () => {
  it('validates flags against a spec', () => {
    assert.deepEqual([...parseBuilderFlags(['--from=a', '--link'], { from: 'string', link: 'bool' })], [
      ['from', 'a'],
      ['link', 'true'],
    ]);
    rejects(() => parseBuilderFlags(['--nope=1']), 'Unknown flag: nope');
    rejects(() => parseBuilderFlags(['--from'], { from: 'string' }), 'Missing a value on flag: from');
    rejects(() => parseBuilderFlags(['--a=1', '--a=2'], { a: 'string' }), 'Duplicate flag specified: a');
  });
});

describe('applyChanges', () => {
  it('returns a new object and never mutates the input', () => {
    const base: ContainerConfig = { Env: ['A=1'], Labels: { x: 'y' }, Cmd: ['sh'], ExposedPorts: { '22/tcp': {} } };
    const snapshot = structuredClone(base);
    const out = applyChanges(base, ['ENV A=2', 'LABEL z=w', 'EXPOSE 80', 'CMD ["bash"]']);
    assert.deepEqual(base, snapshot);
    assert.notEqual(out, base);
    assert.deepEqual(out.Env, ['A=2']);
    assert.deepEqual(applyChanges(base, []), base);
    assert.notEqual(applyChanges(base, []), base);
  });

  describe('CMD / ENTRYPOINT', () => {
    it('keeps the JSON exec form as is', () => {
      assert.deepEqual(applyChanges({}, ['CMD ["nginx", "-g", "daemon off;"]']).Cmd, ['nginx', '-g', 'daemon off;']);
    });

    it('wraps the shell form in /bin/sh -c without expanding variables', () => {
      assert.deepEqual(applyChanges({ Env: ['X=1'] }, ['CMD echo "$X"  done']).Cmd, ['/bin/sh', '-c', 'echo "$X"  done']);
    });

    it("uses the config's Shell for the shell form", () => {
      const out = applyChanges({ Shell: ['/bin/bash', '-lc'] }, ['ENTRYPOINT exec app']);
      assert.deepEqual(out.Entrypoint, ['/bin/bash', '-lc', 'exec app']);
    });

    it('treats invalid JSON as shell form and rejects non-string arrays', () => {
      assert.deepEqual(applyChanges({}, ['CMD [oops']).Cmd, ['/bin/sh', '-c', '[oops']);
      rejects(() => applyChanges({}, ['CMD ["a", 1]']), 'when using JSON array syntax, arrays must be comprised of strings only');
    });

    it('ENTRYPOINT clears a CMD inherited from the base config', () => {
      const out = applyChanges({ Cmd: ['bash'], ArgsEscaped: true }, ['ENTRYPOINT ["/entry"]']);
      assert.deepEqual(out.Entrypoint, ['/entry']);
      assert.equal(out.Cmd, null);
      assert.equal(out.ArgsEscaped, undefined);
    });

    it('ENTRYPOINT keeps a CMD set by an earlier change, in either order', () => {
      assert.deepEqual(applyChanges({ Cmd: ['bash'] }, ['CMD ["-x"]', 'ENTRYPOINT ["/e"]']).Cmd, ['-x']);
      assert.deepEqual(applyChanges({ Cmd: ['bash'] }, ['ENTRYPOINT ["/e"]', 'CMD ["-y"]']).Cmd, ['-y']);
    });

    it('empty CMD / ENTRYPOINT give empty arrays', () => {
      assert.deepEqual(applyChanges({ Cmd: ['x'] }, ['CMD []']).Cmd, []);
      assert.deepEqual(applyChanges({ Cmd: ['x'] }, ['CMD']).Cmd, []);
      const out = applyChanges({ Cmd: ['x'], Entrypoint: ['y'] }, ['ENTRYPOINT []']);
      assert.deepEqual(out.Entrypoint, []);
      assert.equal(out.Cmd, null);
    });

    it('rejects unknown flags', () => {
      rejects(() => applyChanges({}, ['CMD --foo bar']), 'Unknown flag: foo');
    });
  });

  describe('ENV', () => {
    it('adds new variables and replaces an existing key in place', () => {
      const out = applyChanges({ Env: ['PATH=/usr/bin', 'A=1', 'B=2'] }, ['ENV A=10 C=3']);
      assert.deepEqual(out.Env, ['PATH=/usr/bin', 'A=10', 'B=2', 'C=3']);
    });

    it('processes quotes and backslash escapes', () => {
      const out = applyChanges({}, [`ENV A="v 2" B='x y' C=a\\ b D="q\\"q" E=`]);
      assert.deepEqual(out.Env, ['A=v 2', 'B=x y', 'C=a b', 'D=q"q', 'E=']);
    });

    it('supports the legacy `ENV key value with spaces` form', () => {
      assert.deepEqual(applyChanges({}, ['ENV GREETING hello   big "wide" world']).Env, ['GREETING=hello   big wide world']);
    });

    it('substitutes from the current Env; pairs of one ENV see the env before it', () => {
      const out = applyChanges({ Env: ['PATH=/bin', 'V=old'] }, [
        'ENV PATH=/opt/bin:$PATH V=new W=$V',
        'ENV X=${V}-${NOPE:-dflt} Y=${V:+set} Z=\\$V',
      ]);
      assert.deepEqual(out.Env, ['PATH=/opt/bin:/bin', 'V=new', 'W=old', 'X=new-dflt', 'Y=set', 'Z=$V']);
    });

    it('errors like docker', () => {
      rejects(() => applyChanges({}, ['ENV']), 'ENV requires at least one argument');
      rejects(() => applyChanges({}, ['ENV novalue']), 'ENV must have two arguments');
      rejects(() => applyChanges({}, ['ENV A="unterminated']), /^failed to process "\\"unterminated": unexpected end/);
    });
  });

  describe('LABEL', () => {
    it('sets labels with quotes, substitution and the legacy form', () => {
      const out = applyChanges({ Env: ['VER=1.2'], Labels: { keep: 'me', version: '0' } }, [
        'LABEL version=$VER "com.example.desc"="a b" empty=""',
        'label maintainer Jane Doe',
      ]);
      assert.deepEqual(out.Labels, { keep: 'me', version: '1.2', 'com.example.desc': 'a b', empty: '', maintainer: 'Jane Doe' });
    });

    it('requires arguments', () => {
      rejects(() => applyChanges({}, ['LABEL']), 'LABEL requires at least one argument');
    });
  });

  describe('EXPOSE', () => {
    it('accepts ports, protocols and ranges', () => {
      const out = applyChanges({ ExposedPorts: { '22/tcp': {} } }, ['EXPOSE 80 53/udp 8000-8002 443/TCP 9/sctp']);
      assert.deepEqual(Object.keys(out.ExposedPorts!).sort(), [
        '22/tcp', '443/tcp', '53/udp', '80/tcp', '8000/tcp', '8001/tcp', '8002/tcp', '9/sctp',
      ]);
      assert.deepEqual(out.ExposedPorts!['80/tcp'], {});
    });

    it('expands variables into several ports', () => {
      const out = applyChanges({ Env: ['PORTS=80 443'] }, ['EXPOSE $PORTS ${EXTRA:-9000}/udp']);
      assert.deepEqual(Object.keys(out.ExposedPorts!).sort(), ['443/tcp', '80/tcp', '9000/udp']);
    });

    it('rejects bad ports', () => {
      rejects(() => applyChanges({}, ['EXPOSE']), 'EXPOSE requires at least one argument');
      rejects(() => applyChanges({}, ['EXPOSE 80/xyz']), 'invalid proto: xyz');
      rejects(() => applyChanges({}, ['EXPOSE abc']), 'invalid containerPort: abc');
      rejects(() => applyChanges({}, ['EXPOSE 70000']), 'invalid containerPort: 70000');
      rejects(() => applyChanges({}, ['EXPOSE 90-80']), 'invalid containerPort: 90-80');
    });
  });

  describe('USER / WORKDIR / STOPSIGNAL', () => {
    it('USER sets the user with substitution and quotes', () => {
      assert.equal(applyChanges({ Env: ['U=app'] }, ['USER ${U}:"staff"']).User, 'app:staff');
      rejects(() => applyChanges({}, ['USER']), 'USER requires exactly one argument');
    });

    it('WORKDIR resolves relative paths against the current WorkingDir and cleans', () => {
      assert.equal(applyChanges({}, ['WORKDIR app']).WorkingDir, '/app');
      assert.equal(applyChanges({ WorkingDir: '/srv' }, ['WORKDIR app/./x/../y']).WorkingDir, '/srv/app/y');
      assert.equal(applyChanges({ WorkingDir: '/srv' }, ['WORKDIR /opt//tool/']).WorkingDir, '/opt/tool');
      assert.equal(applyChanges({}, ['WORKDIR sub/']).WorkingDir, '/sub');
      assert.equal(applyChanges({ Env: ['D=/data'] }, ['WORKDIR $D', 'WORKDIR "sub dir"']).WorkingDir, '/data/sub dir');
    });

    it('WORKDIR errors', () => {
      rejects(() => applyChanges({}, ['WORKDIR']), 'WORKDIR requires exactly one argument');
      rejects(() => applyChanges({}, ['WORKDIR $NOPE']), 'cannot normalize nothing');
    });

    it('STOPSIGNAL accepts names and numbers and rejects unknown signals', () => {
      assert.equal(applyChanges({}, ['STOPSIGNAL SIGQUIT']).StopSignal, 'SIGQUIT');
      assert.equal(applyChanges({}, ['STOPSIGNAL 9']).StopSignal, '9');
      assert.equal(applyChanges({ Env: ['S=term'] }, ['stopsignal $S']).StopSignal, 'term');
      assert.equal(applyChanges({}, ['STOPSIGNAL SIGRTMIN+3']).StopSignal, 'SIGRTMIN+3');
      rejects(() => applyChanges({}, ['STOPSIGNAL SIGNOPE']), 'invalid signal: SIGNOPE');
      rejects(() => applyChanges({}, ['STOPSIGNAL 0']), 'invalid signal: 0');
    });
  });

  describe('VOLUME', () => {
    it('accepts the space-separated and JSON forms, with substitution', () => {
      const out = applyChanges({ Env: ['D=/data'], Volumes: { '/old': {} } }, ['VOLUME /a /b', 'VOLUME ["$D", "/with space"]']);
      assert.deepEqual(out.Volumes, { '/old': {}, '/a': {}, '/b': {}, '/data': {}, '/with space': {} });
    });

    it('rejects empty volumes', () => {
      rejects(() => applyChanges({}, ['VOLUME']), 'VOLUME requires at least one argument');
      rejects(() => applyChanges({}, ['VOLUME [""]']), 'VOLUME specified can not be an empty string');
      rejects(() => applyChanges({}, ['VOLUME $NOPE']), 'VOLUME specified can not be an empty string');
    });
  });

  describe('ONBUILD', () => {
    it('appends the trigger text with the keyword upper-cased and no substitution', () => {
      const out = applyChanges({ OnBuild: ['RUN a'] }, ['ONBUILD run echo $HOME', 'onbuild COPY . /src']);
      assert.deepEqual(out.OnBuild, ['RUN a', 'RUN echo $HOME', 'COPY . /src']);
    });

    it('rejects chaining and forbidden triggers', () => {
      rejects(() => applyChanges({}, ['ONBUILD']), 'ONBUILD requires at least one argument');
      rejects(() => applyChanges({}, ['ONBUILD ONBUILD RUN x']), "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      rejects(() => applyChanges({}, ['ONBUILD FROM alpine']), "FROM isn't allowed as an ONBUILD trigger");
    });
  });

  describe('HEALTHCHECK', () => {
    it('parses CMD shell and exec forms with options (durations in ns)', () => {
      const out = applyChanges({}, ['HEALTHCHECK --interval=30s --timeout 1m30s --retries=3 CMD curl -f http://localhost/ || exit 1']);
      assert.deepEqual(out.Healthcheck, {
        Test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'],
        Interval: 30e9,
        Timeout: 90e9,
        Retries: 3,
      });
      assert.deepEqual(applyChanges({}, ['HEALTHCHECK CMD ["/bin/check", "-q"]']).Healthcheck, { Test: ['CMD', '/bin/check', '-q'] });
      assert.deepEqual(applyChanges({}, ['healthcheck none']).Healthcheck, { Test: ['NONE'] });
    });

    it('errors like docker', () => {
      rejects(() => applyChanges({}, ['HEALTHCHECK']), 'HEALTHCHECK requires at least one argument');
      rejects(() => applyChanges({}, ['HEALTHCHECK RUN x']), 'Unknown type "RUN" in HEALTHCHECK (try CMD)');
      rejects(() => applyChanges({}, ['HEALTHCHECK CMD']), 'Missing command after HEALTHCHECK CMD');
      rejects(() => applyChanges({}, ['HEALTHCHECK --interval=10us CMD x']), 'Interval "interval" cannot be less than 1ms');
      rejects(() => applyChanges({}, ['HEALTHCHECK --bogus=1 CMD x']), 'Unknown flag: bogus');
    });
  });

  describe('refused and malformed changes', () => {
    it('refuses instructions docker does not allow, with its message', () => {
      rejects(() => applyChanges({}, ['RUN apt-get update']), 'run is not a valid change command');
      rejects(() => applyChanges({}, ['FROM alpine']), 'from is not a valid change command');
      rejects(() => applyChanges({}, ['COPY a /b']), 'copy is not a valid change command');
      rejects(() => applyChanges({}, ['Shell ["/bin/bash", "-c"]']), 'shell is not a valid change command');
      rejects(() => applyChanges({}, ['FROBNICATE x']), 'frobnicate is not a valid change command');
    });

    it('checks every change before applying any', () => {
      rejects(() => applyChanges({}, ['ENV A=1', 'USER bob', 'RUN x']), 'run is not a valid change command');
      rejects(() => applyChanges({}, ['EXPOSE 99999', 'USER']), 'USER requires exactly one argument');
    });

    it('rejects changes with no instruction at all', () => {
      rejects(() => applyChanges({}, ['']), 'file with no instructions');
      rejects(() => applyChanges({}, ['   ', '# just a comment']), 'file with no instructions');
    });

    it('keywords are case-insensitive; blank and comment lines are skipped', () => {
      const out = applyChanges({}, ['  eNv A=1', '', '# comment', 'Workdir /w']);
      assert.deepEqual(out, { Env: ['A=1'], WorkingDir: '/w' });
    });

    it('joins a trailing-backslash continuation like a Dockerfile', () => {
      assert.deepEqual(applyChanges({}, ['ENV A=1 \\', '  B=2']).Env, ['A=1', 'B=2']);
    });

    it('errors are InvalidArgumentError with exit code 1 (docker: the daemon refuses the change)', () => {
      try {
        applyChanges({}, ['RUN x']);
        assert.fail('expected an error');
      } catch (err) {
        assert.ok(err instanceof InvalidArgumentError);
        assert.equal(err.exitCode, 1);
      }
    });
  });
});
