// End-to-end: container networking through bin/ply and the real runc: network modes, the default bridge,
// user networks with DNS, published ports, and that nothing is left behind.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { busyboxTar, ply, plyOk, tempDir } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
});

test('--network none: a namespace of its own with only lo; host: the host\'s; unknown: docker\'s error, 125', () => {
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', 'bb', 'ls', '/sys/class/net']), 'lo\n');
  assert.equal(plyOk(root, ['run', '--rm', '--net', 'none', 'bb', 'ls', '/sys/class/net']), 'lo\n');
  const hostLinks = plyOk(root, ['run', '--rm', '--network', 'host', 'bb', 'ls', '/sys/class/net']).trim().split('\n');
  assert.deepEqual(hostLinks.sort(), [...fs.readdirSync('/sys/class/net')].sort());
  const bad = ply(root, ['run', '--rm', '--network', 'no-such-net', 'bb', 'true']);
  assert.equal(bad.code, 125);
  assert.equal(bad.stderr, 'Error: network no-such-net not found\n');
  assert.equal(ply(root, ['ps', '-aq']).stdout, '', 'a refused run leaves no container');
});
