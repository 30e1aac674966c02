// The bundled CLI (dist/ply.cjs, built by `npm run build`) runs from a V8 code cache (bin/ply.cjs), where a
// dynamic import() has no loader and throws ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING: the bundle must have none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO } from '../helpers.js';

test('the bundles contain no dynamic import() (they run from a code cache)', () => {
  for (const name of ['ply.cjs', 'monitor.cjs']) {
    const code = fs.readFileSync(path.join(REPO, 'dist', name), 'utf8');
    const found = [...code.matchAll(/\bimport\(\s*["'`]([^"'`]+)/g)].map((m) => m[1]);
    assert.deepEqual(found, [], `${name} has import() of ${found.join(', ')}: use createRequire instead`);
  }
});
