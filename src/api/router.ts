// Routes in docker's notation, and matching a request's path against them.
import type { Engine } from '../engine.js';
import type { Request } from './http.js';

export type Handler = (r: Request, engine: Engine) => Promise<void>;

export interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

/**
 * A route from docker's notation: `{name}` is one path segment or more ('.*' in moby's routers, so image names
 * with slashes reach the handler whole).
 */
export function route(method: string, template: string, handler: Handler): Route {
  const re = template.replace(/[.+?^$()|[\]\\]/g, '\\$&').replace(/\{[a-z]+\}/g, '(.+)');
  return { method, pattern: new RegExp(`^${re}/?$`), handler };
}

/** The first route for this method and path, with its `{…}` values; a known path with another method is none (as dockerd). */
export function match(table: Route[], method: string, urlPath: string): { route: Route; params: string[] } | undefined {
  for (const r of table) {
    if (r.method !== method) continue;
    const m = r.pattern.exec(urlPath);
    if (m) return { route: r, params: m.slice(1) };
  }
  return undefined;
}
