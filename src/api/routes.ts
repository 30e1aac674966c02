// The route table: docker's paths (moby's routers), each handled in its verb group's file.
import type { Route } from './router.js';
import { containerRoutes } from './containers.js';
import { imageRoutes } from './images.js';
import { systemRoutes } from './system.js';
import { volumeAndNetworkRoutes } from './volumes.js';

export function routes(): Route[] {
  return [...systemRoutes(), ...containerRoutes(), ...imageRoutes(), ...volumeAndNetworkRoutes()];
}
