type Done = (err: Error | null, output: Buffer) => void;
/** Compresses `input` as one complete gzip member (libdeflate, `level` 0-12) on the libuv thread pool. */
export function gzipBlock(input: Buffer, level: number, callback: Done): void;
/** The same with ISA-L's igzip (`level` 0-3); absent where ply was built without ISA-L. */
export function igzipBlock(input: Buffer, level: number, callback: Done): void;
/** One complete zstd frame (libzstd, `level` 1-22); absent where ply was built without libzstd. */
export function zstdBlock(input: Buffer, level: number, callback: Done): void;
/** What makes each optional codec's bytes (same string: same output for the same input and level). */
export function codecs(): { igzip?: string; zstd?: string };
