// Parsing a pushed manifest: its media type, what it references (blobs, child manifests), its subject and the
// fields the referrers API reports. The bytes themselves are stored untouched.
import { isDigest } from '../digest/digest.js';
import { MediaType } from '../oci/types.js';
import { RegistryError } from '../oci/distribution-errors.js';

export interface ParsedManifest {
  mediaType: string;
  /** Blobs the manifest needs in the repository (config, distributable layers, blobs of an artifact manifest). */
  blobs: string[];
  /** Child manifests (an index's entries). */
  manifests: string[];
  subject?: string;
  artifactType?: string;
  configMediaType?: string;
  annotations?: Record<string, string>;
  isIndex: boolean;
}

const GENERIC_TYPES = new Set(['', 'application/json', 'application/octet-stream', 'text/plain', '*/*']);

export function baseMediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim();
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, { detail });
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
}

function descriptor(v: unknown, where: string): Descriptor {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid(`${where} is not a descriptor`);
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalid(`${where} has no mediaType`);
  if (typeof d.digest !== 'string' || !isDigest(d.digest)) {
    throw invalid(`${where} has an invalid or unsupported digest`, { detail: { digest: d.digest } });
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where} has an invalid size`);
  if (d.urls !== undefined && (!Array.isArray(d.urls) || d.urls.some((u) => typeof u !== 'string'))) {
    throw invalid(`${where} has invalid urls`);
  }
  if (d.annotations !== undefined && !isStringMap(d.annotations)) throw invalid(`${where} has invalid annotations`);
  return d as unknown as Descriptor;
}

function descriptors(v: unknown, where: string): Descriptor[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid(`${where} is not an array`);
  return v.map((d, i) => descriptor(d, `${where}[${i}]`));
}

function isStringMap(v: unknown): v is Record<string, string> {
  return !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** A layer the registry need not hold: non-distributable (foreign) layers, or ones fetched from their URLs. */
function isExternal(d: Descriptor): boolean {
  return (d.urls !== undefined && d.urls.length > 0) || d.mediaType.includes('nondistributable') || d.mediaType.includes('.foreign.');
}

export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw invalid(`manifest is not valid JSON: ${(e as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw invalid('manifest is not a JSON object');
  const m = doc as Record<string, unknown>;
  if (m.schemaVersion === 1) throw invalid('schema 1 manifests are not supported');
  if (m.schemaVersion !== undefined && m.schemaVersion !== 2) throw invalid(`unsupported schemaVersion ${String(m.schemaVersion)}`);
  if (m.mediaType !== undefined && typeof m.mediaType !== 'string') throw invalid('mediaType is not a string');
  if (m.artifactType !== undefined && typeof m.artifactType !== 'string') throw invalid('artifactType is not a string');
  if (m.annotations !== undefined && !isStringMap(m.annotations)) throw invalid('annotations must map strings to strings');

  const ct = baseMediaType(contentType);
  let mediaType: string;
  if (typeof m.mediaType === 'string' && m.mediaType !== '') {
    if (!GENERIC_TYPES.has(ct) && ct.toLowerCase() !== m.mediaType.toLowerCase()) {
      throw invalid(`Content-Type ${ct} does not match the manifest's mediaType ${m.mediaType}`);
    }
    mediaType = m.mediaType;
  } else if (!GENERIC_TYPES.has(ct)) {
    mediaType = ct;
  } else if (Array.isArray(m.manifests)) {
    mediaType = MediaType.OciIndex;
  } else if (m.config !== undefined) {
    mediaType = MediaType.OciManifest;
  } else {
    throw invalid('cannot tell the manifest media type: no Content-Type and no mediaType field');
  }
  if (mediaType.includes('distribution.manifest.v1')) throw invalid('schema 1 manifests are not supported');

  const isIndex = mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList || (m.config === undefined && Array.isArray(m.manifests));
  const isImage = mediaType === MediaType.OciManifest || mediaType === MediaType.DockerManifest;
  if ((isIndex || isImage) && m.schemaVersion !== 2) throw invalid('schemaVersion must be 2');

  const out: ParsedManifest = { mediaType, blobs: [], manifests: [], isIndex };
  if (isImage && m.config === undefined) throw invalid('image manifest has no config');
  if (isIndex && !Array.isArray(m.manifests)) throw invalid('index has no manifests list');
  if (m.config !== undefined) {
    const config = descriptor(m.config, 'config');
    out.blobs.push(config.digest);
    out.configMediaType = config.mediaType;
  }
  for (const layer of descriptors(m.layers, 'layers')) if (!isExternal(layer)) out.blobs.push(layer.digest);
  // The deprecated OCI artifact manifest lists its content as "blobs".
  for (const blob of descriptors(m.blobs, 'blobs')) if (!isExternal(blob)) out.blobs.push(blob.digest);
  for (const child of descriptors(m.manifests, 'manifests')) out.manifests.push(child.digest);
  if (m.subject !== undefined && m.subject !== null) out.subject = descriptor(m.subject, 'subject').digest;
  if (typeof m.artifactType === 'string' && m.artifactType !== '') out.artifactType = m.artifactType;
  if (isStringMap(m.annotations) && Object.keys(m.annotations).length > 0) out.annotations = m.annotations;
  out.blobs = [...new Set(out.blobs)];
  out.manifests = [...new Set(out.manifests)];
  return out;
}
