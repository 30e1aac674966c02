// An OCI image layout directory (image-spec image-layout.md: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`) as
// a transport, read and written in place (skopeo's `oci:DIR:REF`): the build cache's type=local lives in one.
// Entries of index.json are named by their org.opencontainers.image.ref.name annotation. Blobs are written to a
// temporary file while hashed and renamed into place only when their digest is right.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isDigest } from '../digest/digest.js';
import { DigestMismatchError, InvalidArchiveError, NotFoundError } from '../errors.js';
import { MediaType, type Descriptor, type Digest, type Index } from '../oci/types.js';
import { ANNOTATION_REF_NAME, blobPath, OCI_INDEX_FILE, OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE } from './oci-layout.js';
import type { BlobReadOptions, ImageDestination, ImageSource, LayerCompressionRequest, ManifestBlob } from './types.js';

function readIndex(dir: string): Index {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, OCI_INDEX_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${dir}: not an OCI layout (no index.json)`);
    throw e;
  }
  try {
    const index = JSON.parse(text) as Index;
    if (!Array.isArray(index.manifests)) throw new Error('no manifests');
    return index;
  } catch (e) {
    throw new InvalidArchiveError(`${dir}/index.json: ${(e as Error).message}`);
  }
}

function blobFile(dir: string, d: Digest): string {
  if (!isDigest(d)) throw new InvalidArchiveError(`invalid digest ${String(d)}`);
  return path.join(dir, blobPath(d));
}

export function ociDirSource(dir: string): ImageSource {
  return {
    description: `oci ${dir}`,
    async getManifest(ref: string): Promise<ManifestBlob> {
      const index = readIndex(dir);
      let desc: Descriptor | undefined;
      if (isDigest(ref)) desc = index.manifests.find((m) => m.digest === ref) ?? { mediaType: '', digest: ref, size: -1 };
      else if (ref === '') {
        if (index.manifests.length !== 1) throw new NotFoundError(`${dir}: ${index.manifests.length} images in the layout: name one`);
        desc = index.manifests[0];
      } else desc = index.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === ref);
      if (!desc) throw new NotFoundError(`${dir}: no image named ${ref}`);
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(blobFile(dir, desc.digest));
      } catch {
        throw new NotFoundError(`${dir}: manifest ${desc.digest} not found`);
      }
      let mediaType = desc.mediaType;
      if (!mediaType) {
        try {
          const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown };
          mediaType = doc.mediaType ?? (doc.manifests ? MediaType.OciIndex : MediaType.OciManifest);
        } catch {
          throw new InvalidArchiveError(`${dir}: manifest ${desc.digest} is not JSON`);
        }
      }
      return { bytes, mediaType, digest: desc.digest };
    },
    async getBlob(desc: Descriptor, opts?: BlobReadOptions): Promise<AsyncIterable<Buffer>> {
      const file = blobFile(dir, desc.digest);
      if (!fs.existsSync(file)) throw new NotFoundError(`${dir}: blob ${desc.digest} not found`);
      return fs.createReadStream(file, { start: opts?.offset ?? 0, highWaterMark: 1 << 20, signal: opts?.signal });
    },
  };
}

/** Writes images into `dir` (made when missing); `layerCompression`: layers compressed on the way (as a push). */
export function ociDirDestination(dir: string, opts: { layerCompression?: LayerCompressionRequest } = {}): ImageDestination {
  const ready = () => {
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    if (!fs.existsSync(path.join(dir, OCI_LAYOUT_FILE))) fs.writeFileSync(path.join(dir, OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT);
  };
  /** Streams `data` into a temporary file while hashing it; returns the file, digest and size. */
  const spool = async (data: AsyncIterable<Buffer>): Promise<{ tmp: string; digest: Digest; size: number }> => {
    ready();
    const tmp = path.join(dir, 'blobs', `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const h = createHash('sha256');
    let size = 0;
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      for await (const chunk of data) {
        h.update(chunk);
        size += chunk.length;
        for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off);
      }
      fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    return { tmp, digest: `sha256:${h.digest('hex')}`, size };
  };
  const place = (tmp: string, d: Digest) => {
    const to = blobFile(dir, d);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.renameSync(tmp, to);
  };
  return {
    description: `oci ${dir}`,
    ...(opts.layerCompression ? { layerCompression: opts.layerCompression } : {}),
    async hasBlob(desc: Descriptor): Promise<boolean> {
      const st = fs.statSync(blobFile(dir, desc.digest), { throwIfNoEntry: false });
      return st !== undefined && (desc.size < 0 || st.size === desc.size);
    },
    async putBlob(desc: Descriptor, data: AsyncIterable<Buffer>): Promise<void> {
      const got = await spool(data);
      try {
        if (got.size !== desc.size) throw new DigestMismatchError(`${desc.size} bytes`, `${got.size} bytes`, 'size');
        if (got.digest !== desc.digest) throw new DigestMismatchError(desc.digest, got.digest, 'blob');
        place(got.tmp, desc.digest);
      } finally {
        fs.rmSync(got.tmp, { force: true });
      }
    },
    async putNewBlob(data: AsyncIterable<Buffer>): Promise<{ digest: Digest; size: number }> {
      const got = await spool(data);
      try {
        place(got.tmp, got.digest);
      } finally {
        fs.rmSync(got.tmp, { force: true });
      }
      return { digest: got.digest, size: got.size };
    },
    async putManifest(m: ManifestBlob, tag?: string): Promise<void> {
      const got = `sha256:${createHash('sha256').update(m.bytes).digest('hex')}`;
      if (got !== m.digest) throw new DigestMismatchError(m.digest, got, 'manifest');
      ready();
      const file = blobFile(dir, m.digest);
      if (!fs.existsSync(file)) {
        const tmp = `${file}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, m.bytes);
        fs.renameSync(tmp, file);
      }
      if (tag === undefined) return;
      // index.json: this name now points here (another entry of the same name is replaced).
      let index: Index;
      try {
        index = readIndex(dir);
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
        index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
      }
      index.manifests = index.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] !== tag);
      index.manifests.push({ mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, annotations: { [ANNOTATION_REF_NAME]: tag } });
      const tmp = path.join(dir, `${OCI_INDEX_FILE}.${process.pid}.tmp`);
      fs.writeFileSync(tmp, JSON.stringify(index));
      fs.renameSync(tmp, path.join(dir, OCI_INDEX_FILE));
    },
  };
}
