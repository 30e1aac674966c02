'use strict';
// ply-native: thin synchronous wrappers over mknod(2), mount(2), umount2(2) and the l*xattr(2) calls.
module.exports = require('./build/Release/ply_native.node');
