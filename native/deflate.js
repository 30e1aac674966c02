'use strict';
// ply_deflate: gzip of whole buffers on the libuv thread pool with libdeflate (see deflate.c).
module.exports = require('./build/Release/ply_deflate.node');
