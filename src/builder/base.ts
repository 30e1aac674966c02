// A stage's base when it is not an earlier stage: scratch (an empty image for the target platform) or an image,
// the local one when it suits the platform asked for (and --pull is not given), else pulled.
import type { Lease } from '../content/lease.js';
import type { ImageRecord, ImageStore } from '../image/store.js';
import { writeImage } from '../image/write.js';
import { formatPlatform } from '../oci/platform.js';
import type { ImageConfig, Platform } from '../oci/types.js';
import { BuildError } from './errors.js';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** FROM scratch: an image with no layers, docker's default PATH and `/` as its working directory. */
export async function scratchImage(images: ImageStore, lease: Lease, platform: Platform): Promise<{ image: ImageRecord; config: ImageConfig }> {
  const config: ImageConfig = {
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config: { Env: [DEFAULT_PATH], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
  return { image: await writeImage(images, lease, { config, layers: [] }), config };
}

/** FROM <image> (and COPY --from=<image>): `pull` always asks the registry, as --pull does. */
export async function baseImage(images: ImageStore, name: string, platform: Platform | undefined, pull: boolean): Promise<ImageRecord> {
  if (!pull) {
    const local = images.lookup(name);
    if (local && platform) {
      // FROM --platform: the local image only if it is for that platform, else the registry's variant.
      const c = images.config(local);
      if (c.os === platform.os && c.architecture === platform.architecture && (!platform.variant || !c.variant || c.variant === platform.variant)) return local;
    } else if (local) return local;
  }
  const { pullImage } = await import('../transport/distribution.js');
  try {
    const res = await pullImage(images, name, { platform: platform ? formatPlatform(platform) : undefined });
    return res.image;
  } catch (e) {
    throw new BuildError(`failed to resolve base image ${name}: ${(e as Error).message}`);
  }
}
