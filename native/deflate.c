/*
 * ply_deflate: gzip of one whole buffer on the libuv thread pool, with libdeflate (much faster than zlib at the
 * same ratio; whole-buffer only, which is what block-parallel gzip needs).
 *
 *   gzipBlock(input: Buffer, level: 0-12, callback(err, output: Buffer))   one complete gzip member
 *
 * Each pool thread keeps one compressor per level (allocating one costs more than compressing a small block).
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <libdeflate.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_LEVEL 12

typedef struct {
  napi_async_work work;
  napi_ref input;
  napi_ref callback;
  const uint8_t *in;
  size_t in_len;
  int level;
  uint8_t *out;
  size_t out_len;
  const char *error;
} job_t;

static __thread struct libdeflate_compressor *compressors[MAX_LEVEL + 1];

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  struct libdeflate_compressor *c = compressors[j->level];
  if (!c) c = compressors[j->level] = libdeflate_alloc_compressor(j->level);
  if (!c) {
    j->error = "libdeflate: cannot allocate a compressor";
    return;
  }
  size_t bound = libdeflate_gzip_compress_bound(c, j->in_len);
  j->out = malloc(bound);
  if (!j->out) {
    j->error = "out of memory";
    return;
  }
  j->out_len = libdeflate_gzip_compress(c, j->in, j->in_len, j->out, bound);
  if (j->out_len == 0) j->error = "libdeflate: output larger than its bound";
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
    napi_create_string_utf8(env, j->error ? j->error : "gzip job cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &args[0]);
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

static napi_value js_gzip_block(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_buffer = false, is_fn = false;
  if (argc == 3) {
    napi_is_buffer(env, argv[0], &is_buffer);
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    is_fn = t == napi_function;
  }
  int32_t level = -1;
  if (argc == 3) napi_get_value_int32(env, argv[1], &level);
  if (!is_buffer || !is_fn || level < 0 || level > MAX_LEVEL) {
    napi_throw_type_error(env, NULL, "gzipBlock(input: Buffer, level: 0-12, callback)");
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
  napi_create_reference(env, argv[0], 1, &j->input);
  napi_create_reference(env, argv[2], 1, &j->callback);
  napi_value name;
  napi_create_string_utf8(env, "ply:gzipBlock", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "gzipBlock", NAPI_AUTO_LENGTH, js_gzip_block, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "gzipBlock", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
