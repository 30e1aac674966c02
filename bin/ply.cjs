#!/usr/bin/env node
// ply's command line in Node (bin/ply runs it, directly or when no service answers). Runs dist/ply.cjs (the
// bundled CLI, `npm run build`) through a V8 code cache kept per command in dist/.cache, so a short command
// spends its time on its work rather than on loading modules. Falls back to the unbundled dist/cli/main.js when
// the bundle is missing or older than a `tsc` build. With PLY_SERVICE_WORKER=FD it is a warm worker of
// `ply system service` (src/service/worker.ts) waiting on the socket FD for a command instead.
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const argv = process.argv.slice(2);
const workerFd = process.env.PLY_SERVICE_WORKER;
delete process.env.PLY_SERVICE_WORKER;
const bundle = path.join(dist, 'ply.cjs');

function bundleIsCurrent() {
  try {
    return fs.statSync(bundle).mtimeMs >= fs.statSync(path.join(dist, 'cli', 'main.js')).mtimeMs;
  } catch {
    return false;
  }
}

if (!bundleIsCurrent()) {
  import(path.join(dist, 'cli', 'main.js')).then((m) => (workerFd ? m.serviceWorker(Number(workerFd), __filename) : m.main(argv)));
} else {
  const vm = require('node:vm');
  const Module = require('node:module');
  const command = workerFd ? 'service-worker' : (argv.find((a) => !a.startsWith('-')) ?? 'help').replace(/[^a-z]/g, '');
  const cacheFile = path.join(dist, '.cache', `${command || 'other'}.v8`);
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(fs.readFileSync(bundle, 'utf8')), {
    filename: bundle,
    cachedData,
    importModuleDynamically: vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (cachedData === undefined || script.cachedDataRejected) {
    // Written once the command has run, so the cache holds the functions it compiled.
    process.once('beforeExit', () => {
      try {
        fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
        fs.writeFileSync(`${cacheFile}.${process.pid}`, script.createCachedData());
        fs.renameSync(`${cacheFile}.${process.pid}`, cacheFile);
      } catch {
        // a read-only install runs without a cache
      }
    });
  }
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, Module.createRequire(bundle), mod, bundle, dist);
  if (workerFd) mod.exports.serviceWorker(Number(workerFd), __filename);
  else mod.exports.main(argv);
}
