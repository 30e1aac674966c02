// Loads ahead what commands otherwise load on their critical path (a warm worker of the service calls this
// before it waits for a command): the engine's lazily loaded modules and the native addons.
import { createRequire } from 'node:module';

export async function preload(): Promise<void> {
  await Promise.all([
    import('../engine.js'),
    import('../container/create.js'),
    import('../container/logs.js'),
    import('../container/commit.js'),
    // require, not import(): bin/ply.cjs runs the bundle from a V8 code cache, where import() has no loader.
    Promise.resolve().then(() => {
      const Database = createRequire(import.meta.url)('better-sqlite3') as typeof import('better-sqlite3');
      new Database(':memory:').close();
    }),
    import('../native/index.js').then((m) => m.nativeConstants()),
  ]);
}
