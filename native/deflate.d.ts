/** Compresses `input` as one complete gzip member (libdeflate, `level` 0-12) on the libuv thread pool. */
export function gzipBlock(input: Buffer, level: number, callback: (err: Error | null, output: Buffer) => void): void;
