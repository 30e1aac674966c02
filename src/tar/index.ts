/** Public surface of ply's streaming tar codec (reader, writer and header helpers). */

export { readTar, type TarEntry } from './reader.js';
export { TarWriter, type TarWriterOptions } from './writer.js';
export { headerBlocks, isTarHeaderBlock, type EntryType, type HeaderOptions, type TarHeader } from './header.js';
