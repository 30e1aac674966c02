// The Engine: one ply store opened, and the verbs every face calls (the CLI, the Docker Engine API server,
// TypeScript programs), grouped as docker groups them: images, containers, volumes, networks, builder, system.
//
//   const engine = Engine.open();                                   // $PLY_ROOT or /var/lib/ply
//   const { image } = await engine.images.ensure('busybox');        // pulled when missing
//   const { Id } = await engine.containers.create({ image: 'busybox', command: ['echo', 'hi'] });
//   await engine.containers.start(Id);
//   const { StatusCode } = await engine.containers.wait(Id);
//   for await (const line of await engine.containers.logs(Id)) process.stdout.write(line.log);
//   engine.close();
//
// Verbs take and return plain data in docker's shapes (src/engine/types.ts) and report progress as events; they
// never print. Modules that do heavy work (transports, the builder, layer writing) load on first use.
import { defaultRoot, openStores, type Stores } from '../stores.js';
import { BuildService } from './build.js';
import { ContainerService } from './containers.js';
import { ImageService } from './images.js';
import { NetworkService } from './networks.js';
import { SystemService } from './system.js';
import { VolumeService } from './volumes.js';

export interface EngineOptions {
  /** Store root; default $PLY_ROOT, else /var/lib/ply as root, else $XDG_DATA_HOME/ply. */
  root?: string;
}

export class Engine {
  readonly root: string;
  private imageVerbs?: ImageService;
  private containerVerbs?: ContainerService;
  private volumeVerbs?: VolumeService;
  private networkVerbs?: NetworkService;
  private buildVerbs?: BuildService;
  private systemVerbs?: SystemService;

  private constructor(
    /** The stores underneath, for programs that work below the verbs (and for tests). */
    readonly stores: Stores & { close(): void },
  ) {
    this.root = stores.root;
  }

  static open(opts: EngineOptions = {}): Engine {
    return new Engine(openStores(opts.root ?? defaultRoot()));
  }

  close(): void {
    this.stores.close();
  }

  get images(): ImageService {
    return (this.imageVerbs ??= new ImageService(this.stores));
  }

  get containers(): ContainerService {
    return (this.containerVerbs ??= new ContainerService(this.stores));
  }

  get volumes(): VolumeService {
    return (this.volumeVerbs ??= new VolumeService(this.stores));
  }

  get networks(): NetworkService {
    return (this.networkVerbs ??= new NetworkService(this.stores));
  }

  get builder(): BuildService {
    return (this.buildVerbs ??= new BuildService(this.stores));
  }

  get system(): SystemService {
    return (this.systemVerbs ??= new SystemService(this.stores, this));
  }
}
