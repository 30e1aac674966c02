// The shape of src/ (scripts/check-imports.mjs): no import cycles, nothing below the engine imports it, and the
// CLI reaches the rest only through the engine's surface, errors and presentation helpers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

test('src/ has no import cycles and no upward imports', () => {
  const r = spawnSync(process.execPath, ['scripts/check-imports.mjs'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /no cycles, no upward imports/);
});
