// ply as a library: the Engine and everything its verbs take and return. The CLI, the Docker Engine API server
// and TypeScript programs all use this surface; nothing below it imports it.
export { Engine, type EngineOptions } from './engine/engine.js';
export { VERSION, API_VERSION, MIN_API_VERSION, versionInfo, serverVersion } from './engine/version.js';
export type * from './engine/types.js';
export { Filters, type FilterInput } from './engine/filters.js';
export type { ImageService, ImportOptions, PullOptions, PullResult, PushOptions, PushResult, PullPolicy, ListImagesOptions, LoadResult, LoadProgress, PendingSave } from './engine/images.js';
export type { ContainerService, Container, CreateOptions, MountFields, Resources, RestartPolicy, ContainerStats, HealthConfig, ListContainersOptions, LogsOptions, CommitOptions, ExecCreateOptions, AttachSession } from './engine/containers.js';
export { parseTime } from './engine/filters.js';
export type { BuildService, BuildRequest, BuildResult, BuildLogger } from './engine/build.js';
export type { VolumeService } from './engine/volumes.js';
export type { NetworkService, CreateNetworkOptions } from './engine/networks.js';
export type { SystemService, SystemPruneResponse, Problem } from './engine/system.js';
export type { EventsOptions } from './engine/events.js';
export { defaultRoot, openStores, type Stores } from './stores.js';
export type { ImageRecord } from './image/store.js';
export type { ExecIO } from './container/exec.js';
export { checkLogin, login, logout, savedLogin, type Credentials } from './engine/auth.js';
export { DEFAULT_DETACH_KEYS, DetachKeys, parseDetachKeys } from './engine/detach.js';
export * from './errors.js';
