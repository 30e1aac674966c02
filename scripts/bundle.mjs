// Bundles the CLI and the container monitor into one CommonJS file each (dist/ply.cjs, dist/monitor.cjs).
// bin/ply runs the bundle with a V8 code cache: one file read and no compile instead of ~60 module loads,
// which is most of a short command's time. Native addons stay outside the bundle.
import { build } from 'esbuild';
import fs from 'node:fs';

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['better-sqlite3', 'zstd-napi', 'ply-native'],
  logLevel: 'warning',
  // import.meta.url has no CommonJS meaning: give each bundle its own file URL.
  define: { 'import.meta.url': '__plyBundleUrl', PLY_BUNDLED: 'true' },
  banner: { js: "const __plyBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
};

await build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/ply.cjs' });
await build({ ...common, entryPoints: ['src/container/monitor.ts'], outfile: 'dist/monitor.cjs' });
fs.rmSync('dist/.cache', { recursive: true, force: true });
