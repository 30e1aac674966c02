// End-to-end: a container that nests 3000 directories (deeper than PATH_MAX and than a recursive walk's stack)
// leaves the store usable: ps -s, system df, diff, rm and system check --repair finish on overlay and vfs,
// and what cannot be done (a layer whose names exceed PATH_MAX) fails in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, ply, plyOk, tempDir } from '../helpers.js';

/**
 * Nests `depth` directories "d" under `dir`, as a container's process would with mkdir d; cd d (done from here:
 * in a container a shell's cd at such depths costs minutes, its getcwd walking every level each time).
 */
function deepen(dir: string, depth: number): void {
  const flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY;
  let fd = fs.openSync(dir, flags);
  for (let i = 0; i < depth; i++) {
    fs.mkdirSync(`/proc/self/fd/${fd}/d`);
    const next = fs.openSync(`/proc/self/fd/${fd}/d`, flags);
    fs.closeSync(fd);
    fd = next;
  }
  fs.writeFileSync(`/proc/self/fd/${fd}/f`, 'bottom\n');
  fs.closeSync(fd);
}

function oneLine(r: { code: number; stderr: string }, what: string): void {
  assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: ${r.stderr.slice(0, 2000)}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |node:internal|Maximum call stack/, what);
}

test('3000-deep paths: ps -s, df, diff, rm and system check --repair finish on overlay and vfs', () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
  for (const driver of ['overlay', 'vfs']) {
    const env = { PLY_STORAGE_DRIVER: driver };
    const c = `deep-${driver}`;
    plyOk(root, ['run', '--network', 'none', '--name', c, 'bb', 'true'], { env });
    const id = plyOk(root, ['inspect', '--format', '{{.Id}}', c]).trim();
    deepen(path.join(root, 'containers', id, driver === 'vfs' ? 'merged' : 'upper'), 3000);
    assert.match(plyOk(root, ['ps', '-as', '--format', '{{.Names}} {{.Size}}']), new RegExp(`${c} \\S+`));
    plyOk(root, ['system', 'df']);
    const diff = ply(root, ['diff', c]);
    if (diff.code === 0) assert.match(diff.stdout, /^A \/d$/m);
    else oneLine(diff, `${driver} diff`);
    // A layer of this tree would hold names longer than PATH_MAX: refused in one line, or done.
    oneLine({ code: 0, stderr: ply(root, ['commit', c, `deep:${driver}`]).stderr || 'ok' }, `${driver} commit`);
    oneLine({ code: 0, stderr: ply(root, ['export', '-o', path.join(tempDir(), 'x.tar'), c]).stderr || 'ok' }, `${driver} export`);
    // The container starts again (vfs: its tree is reused as it is).
    plyOk(root, ['start', '-a', c], { env });
  }
  // A removed container's directory with the deep tree in it: check --repair removes it and finishes.
  const id = plyOk(root, ['inspect', '--format', '{{.Id}}', 'deep-vfs']).trim();
  const kept = path.join(tempDir(), 'kept');
  fs.renameSync(path.join(root, 'containers', id), kept);
  plyOk(root, ['rm', '-f', 'deep-vfs']);
  fs.renameSync(kept, path.join(root, 'containers', id));
  const check = ply(root, ['system', 'check', '--repair']);
  oneLine({ code: 0, stderr: check.stderr || 'ok' }, 'check --repair');
  assert.match(check.stdout, new RegExp(`container ${id}: directory of a removed container \\(repaired\\)`));
  assert.equal(fs.existsSync(path.join(root, 'containers', id)), false);
  const rm = ply(root, ['rm', 'deep-overlay']);
  assert.equal(rm.code, 0, rm.stderr.slice(0, 2000));
  assert.deepEqual(fs.readdirSync(path.join(root, 'containers')), []);
  assert.match(plyOk(root, ['system', 'check']), /no problems found|^note:/);
});
