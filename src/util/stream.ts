// Byte-stream helpers shared by compression and uploads.

/** Regroups a stream into Buffers of exactly `size` bytes (the last may be shorter). */
export async function* blocks(data: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafe(size);
  let fill = 0;
  for await (let chunk of data) {
    if (fill === 0 && chunk.length === size) {
      yield chunk;
      continue;
    }
    while (chunk.length > 0) {
      const n = Math.min(size - fill, chunk.length);
      chunk.copy(buf, fill, 0, n);
      fill += n;
      chunk = chunk.subarray(n);
      if (fill === size) {
        yield buf;
        buf = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill);
}
