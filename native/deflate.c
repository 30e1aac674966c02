/*
 * ply_deflate: compression of one whole block on the libuv thread pool, for block-parallel pushes (each block an
 * independent gzip member or zstd frame, concatenated in order). Three codecs:
 *   - libdeflate: much faster than zlib at the same ratio; the gzip levels a user asks for.
 *   - ISA-L's igzip (where ply was built with it): 3x faster again than libdeflate's level 1 for a few percent
 *     more bytes, the rung an adaptive push takes when the destination takes bytes faster than deflate makes them.
 *   - libzstd (where ply was built with it): one frame per block, at a level chosen per block.
 *
 *   gzipBlock(input: Buffer, level: 0-12, callback(err, output: Buffer))
 *   igzipBlock(input: Buffer, level: 0-3, callback(err, output: Buffer))    absent without ISA-L
 *   zstdBlock(input: Buffer, level: 1-22, callback(err, output: Buffer))    absent without libzstd
 *   codecs(): { igzip?: string, zstd?: string }   what makes each codec's bytes (for recipes: the same string
 *                                                 means the same output for the same input and level)
 *
 * Each pool thread keeps one compressor per codec and level (allocating one costs more than compressing a
 * block). The output is handed to JS without a copy.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <libdeflate.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

enum codec { LIBDEFLATE, IGZIP, ZSTD };
static const int max_level[] = {12, 3, 22};
static const char *const usage[] = {
    "gzipBlock(input: Buffer, level: 0-12, callback)",
    "igzipBlock(input: Buffer, level: 0-3, callback)",
    "zstdBlock(input: Buffer, level: 1-22, callback)",
};

typedef struct {
  napi_async_work work;
  napi_ref input;
  napi_ref callback;
  const uint8_t *in;
  size_t in_len;
  enum codec codec;
  int level;
  uint8_t *out;
  size_t out_len;
  const char *error;
} job_t;

static __thread struct libdeflate_compressor *compressors[13];

static void run_libdeflate(job_t *j) {
  struct libdeflate_compressor *c = compressors[j->level];
  if (!c) c = compressors[j->level] = libdeflate_alloc_compressor(j->level);
  if (!c) {
    j->error = "libdeflate: cannot allocate a compressor";
    return;
  }
  size_t bound = libdeflate_gzip_compress_bound(c, j->in_len);
  if (!(j->out = malloc(bound))) {
    j->error = "out of memory";
    return;
  }
  j->out_len = libdeflate_gzip_compress(c, j->in, j->in_len, j->out, bound);
  if (j->out_len == 0) j->error = "libdeflate: output larger than its bound";
}

#ifdef HAVE_ISAL
static __thread uint8_t *igzip_bufs[4];
static const uint32_t igzip_buf_sizes[4] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};

/* One gzip member (igzip's generic header: no name, mtime 0) of in[0..len) into out; its length, 0 on failure. */
static size_t igzip(const uint8_t *in, size_t len, int level, uint8_t *lb, uint8_t *out, size_t cap) {
  struct isal_zstream z;
  isal_deflate_stateless_init(&z);
  z.level = level;
  z.level_buf = lb;
  z.level_buf_size = igzip_buf_sizes[level];
  z.gzip_flag = IGZIP_GZIP;
  z.end_of_stream = 1;
  z.flush = NO_FLUSH;
  z.next_in = (uint8_t *)in;
  z.avail_in = (uint32_t)len;
  z.next_out = out;
  z.avail_out = (uint32_t)cap;
  return isal_deflate_stateless(&z) == COMP_OK ? z.total_out : 0;
}

/* Stored blocks are the worst case: the input, a header per 64 KiB block, and the gzip header and trailer. */
static size_t igzip_bound(size_t len) { return len + (len >> 12) + 1024; }

static void run_igzip(job_t *j) {
  uint8_t *lb = igzip_bufs[j->level];
  if (!lb) lb = igzip_bufs[j->level] = malloc(igzip_buf_sizes[j->level]);
  size_t bound = igzip_bound(j->in_len);
  if (!lb || !(j->out = malloc(bound))) {
    j->error = "out of memory";
    return;
  }
  if (!(j->out_len = igzip(j->in, j->in_len, j->level, lb, j->out, bound))) j->error = "igzip: compression failed";
}
#endif

#ifdef HAVE_ZSTD
static __thread ZSTD_CCtx *zstd_ctx;

static void run_zstd(job_t *j) {
  if (!zstd_ctx) zstd_ctx = ZSTD_createCCtx();
  size_t bound = ZSTD_compressBound(j->in_len);
  if (!zstd_ctx || !(j->out = malloc(bound))) {
    j->error = "out of memory";
    return;
  }
  ZSTD_CCtx_reset(zstd_ctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(zstd_ctx, ZSTD_c_compressionLevel, j->level);
  size_t n = ZSTD_compress2(zstd_ctx, j->out, bound, j->in, j->in_len);
  if (ZSTD_isError(n)) j->error = ZSTD_getErrorName(n);
  else j->out_len = n;
}
#endif

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  switch (j->codec) {
    case LIBDEFLATE: run_libdeflate(j); break;
#ifdef HAVE_ISAL
    case IGZIP: run_igzip(j); break;
#endif
#ifdef HAVE_ZSTD
    case ZSTD: run_zstd(j); break;
#endif
    default: j->error = "codec not built";
  }
}

static void free_output(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value cb, global, args[2], result;
  napi_get_reference_value(env, j->callback, &cb);
  napi_get_global(env, &global);
  napi_get_null(env, &args[0]);
  napi_get_undefined(env, &args[1]);
  if (status != napi_ok || j->error) {
    napi_value msg;
    napi_create_string_utf8(env, j->error ? j->error : "compression job cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &args[0]);
  } else if (napi_create_external_buffer(env, j->out_len, j->out, free_output, NULL, &args[1]) == napi_ok) {
    j->out = NULL; /* the Buffer owns it now */
  } else {
    void *copy;
    napi_create_buffer_copy(env, j->out_len, j->out, &copy, &args[1]);
  }
  free(j->out);
  napi_delete_reference(env, j->input);
  napi_delete_reference(env, j->callback);
  napi_delete_async_work(env, j->work);
  free(j);
  napi_call_function(env, global, cb, 2, args, &result);
}

static napi_value queue_block(napi_env env, napi_callback_info info, enum codec codec) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_buffer = false, is_fn = false;
  int32_t level = -1;
  if (argc == 3) {
    napi_is_buffer(env, argv[0], &is_buffer);
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    is_fn = t == napi_function;
    napi_get_value_int32(env, argv[1], &level);
  }
  if (!is_buffer || !is_fn || level < (codec == ZSTD ? 1 : 0) || level > max_level[codec]) {
    napi_throw_type_error(env, NULL, usage[codec]);
    return NULL;
  }
  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  void *in;
  napi_get_buffer_info(env, argv[0], &in, &j->in_len);
  j->in = in;
  j->level = level;
  j->codec = codec;
  napi_create_reference(env, argv[0], 1, &j->input);
  napi_create_reference(env, argv[2], 1, &j->callback);
  napi_value name;
  napi_create_string_utf8(env, "ply:compressBlock", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return NULL;
}

static napi_value js_gzip_block(napi_env env, napi_callback_info info) { return queue_block(env, info, LIBDEFLATE); }
#ifdef HAVE_ISAL
static napi_value js_igzip_block(napi_env env, napi_callback_info info) { return queue_block(env, info, IGZIP); }
#endif
#ifdef HAVE_ZSTD
static napi_value js_zstd_block(napi_env env, napi_callback_info info) { return queue_block(env, info, ZSTD); }
#endif

#ifdef HAVE_ISAL
/*
 * igzip picks its code path by CPU (SSE, AVX2, AVX-512) at run time, and nothing promises those paths make the
 * same bytes: the fingerprint is a hash of what this machine makes of a fixed sample at each level.
 */
static void igzip_fingerprint(char *out, size_t cap) {
  enum { N = 96 << 10 };
  uint8_t *in = malloc(N), *buf = malloc(igzip_bound(N)), *lb = malloc(ISAL_DEF_LVL3_DEFAULT);
  uint32_t h = 2166136261u, x = 12345;
  if (in && buf && lb) {
    for (int i = 0; i < N; i++) {
      x = x * 1103515245u + 12345u;
      /* Repeats at every distance (matches), runs and noise (literals). */
      in[i] = (i & 0x3000) == 0 ? (uint8_t)(x >> 24) : (i & 0x800) ? (uint8_t)('a' + (i / 7) % 23) : in[i - 1 - (x >> 20) % 4000];
    }
    for (int level = 0; level <= 3; level++) {
      size_t n = igzip(in, N, level, lb, buf, igzip_bound(N));
      for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 16777619u;
      h = (h ^ (uint32_t)n) * 16777619u;
    }
  } else {
    h = 0;
  }
  free(in);
  free(buf);
  free(lb);
  snprintf(out, cap, "isal-%08x", h);
}
#endif

static napi_value js_codecs(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, v;
  napi_create_object(env, &o);
#ifdef HAVE_ISAL
  static char fp[32];
  if (!fp[0]) igzip_fingerprint(fp, sizeof fp);
  napi_create_string_utf8(env, fp, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, o, "igzip", v);
#endif
#ifdef HAVE_ZSTD
  char ver[32];
  snprintf(ver, sizeof ver, "libzstd-%s", ZSTD_versionString());
  napi_create_string_utf8(env, ver, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, o, "zstd", v);
#endif
  (void)v;
  return o;
}

static int export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

static napi_value init(napi_env env, napi_value exports) {
  if (!export_fn(env, exports, "gzipBlock", js_gzip_block) || !export_fn(env, exports, "codecs", js_codecs)) return NULL;
#ifdef HAVE_ISAL
  if (!export_fn(env, exports, "igzipBlock", js_igzip_block)) return NULL;
#endif
#ifdef HAVE_ZSTD
  if (!export_fn(env, exports, "zstdBlock", js_zstd_block)) return NULL;
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
