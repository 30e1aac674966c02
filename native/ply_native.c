/*
 * ply-native: the few Linux system calls Node.js does not expose, as synchronous N-API functions.
 *
 *   mknod(path, mode, major, minor)              mode includes S_IFCHR / S_IFBLK / S_IFIFO
 *   lsetxattr(path, name, value)                 never follows a final symlink
 *   fsetxattr(fd, name, value)
 *   lgetxattr(path, name) -> Buffer | null       null when the attribute is not set (ENODATA)
 *   llistxattr(path) -> string[]
 *   lremovexattr(path, name)
 *   mount(source, target, fstype|null, flags, data|null)
 *   umount2(target, flags)
 *   unixListen(path, backlog) -> fd               a non-blocking, close-on-exec listening unix socket
 *   unixAccept(fd, timeoutMs) -> {fd, uid, pid} | null   null when nothing arrived in time (or another won it)
 *   recvFds(fd, maxBytes, timeoutMs) -> {data, fds} | null   recvmsg with SCM_RIGHTS (close-on-exec); empty = EOF
 *   dup2(from, to)
 *   cloexecFrom(fd)                              close-on-exec on every descriptor >= fd (close_range(2))
 *   setrlimit(resource, soft, hard)               -1 = unlimited
 *   openat2(dirfd, path, flags, mode, resolve) -> fd   openat2(2) (RESOLVE_IN_ROOT etc.); close-on-exec
 *   flock(fd, operation) -> boolean              false when LOCK_NB was asked and another holds the lock
 *   netnsCreate() -> fd                           a new network namespace, held by the (close-on-exec) fd
 *   bridgeCreate(name, cidr|null, mtu)            a bridge (kept if it exists) with the address, up
 *   vethCreate(host, peer, netns, master, mtu, mac|null)   veth pair: host end on master, up; peer in netns
 *   ifaceConfigure(netns|null, ifname, cidr|null, gateway|null, routeMtu)   lo up, address, up, default route
 *   linkDelete(netns|null, name) -> boolean       false when there was no such link
 *   dnsProbe(netns, server, name, timeoutMs) -> boolean   an A query from inside netns answered in time
 *   openpty(rows, cols) -> {master, slave}        a raw pseudo-terminal pair (close-on-exec), with that size
 *   ptyResize(fd, rows, cols)                     TIOCSWINSZ on a terminal (the master resizes the pair)
 *
 * Failures throw an Error whose message is "<syscall> <path>: <strerror>" and whose `code` is the
 * errno name ('EEXIST', 'ENOENT', ...), like Node's own fs errors; `errno`, `syscall` and `path` are set too.
 */
#define NAPI_VERSION 8
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <node_api.h>

#include "netlink.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <dirent.h>
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#ifndef ENODATA
#define ENODATA ENOATTR
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Errors */

static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(err);
  if (n != NULL) return n;
#endif
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ELOOP: return "ELOOP";
    case ENODATA: return "ENODATA";
    case ENOTSUP: return "ENOTSUP";
    case E2BIG: return "E2BIG";
    default: return "UNKNOWN";
  }
}

/* Throws an Error for `err` (an errno value) raised by `syscall` on `path` (may be NULL). Returns NULL. */
static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  char msg[4096 + 256];
  if (path != NULL)
    snprintf(msg, sizeof msg, "%s %s: %s", syscall, path, strerror(err));
  else
    snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));

  napi_value code, message, error, v;
  if (napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok) return NULL;
  if (napi_create_error(env, code, message, &error) != napi_ok) return NULL;
  /* Node's fs errors carry a negative errno (libuv style): do the same. */
  if (napi_create_int32(env, -err, &v) == napi_ok) napi_set_named_property(env, error, "errno", v);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, error, "syscall", v);
  if (path != NULL && napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, error, "path", v);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Argument helpers */

#define MAX_ARGS 6

typedef struct {
  size_t argc;
  napi_value argv[MAX_ARGS];
} args_t;

static int get_args(napi_env env, napi_callback_info info, args_t *a, size_t want) {
  a->argc = MAX_ARGS;
  if (napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL) != napi_ok) return 0;
  if (a->argc < want) {
    char msg[96];
    snprintf(msg, sizeof msg, "expected %zu arguments, got %zu", want, a->argc);
    throw_type(env, msg);
    return 0;
  }
  return 1;
}

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  return t == napi_null || t == napi_undefined;
}

/*
 * Copies a JS string argument into a malloc'd, NUL-terminated UTF-8 buffer (*out, to be freed).
 * With `nullable`, null/undefined give *out = NULL. Strings holding a NUL character are refused.
 */
static int get_string(napi_env env, napi_value v, const char *what, int nullable, char **out) {
  *out = NULL;
  if (nullable && is_nullish(env, v)) return 1;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a string%s", what, nullable ? " or null" : "");
    throw_type(env, msg);
    return 0;
  }
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return 0;
  char *buf = malloc(len + 1);
  if (buf == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return 0;
  }
  size_t got = 0;
  if (napi_get_value_string_utf8(env, v, buf, len + 1, &got) != napi_ok) {
    free(buf);
    return 0;
  }
  if (strlen(buf) != got) {
    free(buf);
    char msg[128];
    snprintf(msg, sizeof msg, "%s must not contain NUL characters", what);
    throw_type(env, msg);
    return 0;
  }
  *out = buf;
  return 1;
}

static int get_int64(napi_env env, napi_value v, const char *what, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    throw_type(env, msg);
    return 0;
  }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != (double)(int64_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a non-negative integer", what);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

/* A file descriptor argument. */
static int get_fd(napi_env env, napi_value v, int *fd) {
  int64_t n;
  if (!get_int64(env, v, "fd", &n)) return 0;
  if (n > 0x7fffffffLL) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fd out of range");
    return 0;
  }
  *fd = (int)n;
  return 1;
}

/* The bytes of a Buffer / TypedArray / DataView argument (borrowed, valid during the call). */
static int get_bytes(napi_env env, napi_value v, const char *what, void **data, size_t *len) {
  bool ok = false;
  if (napi_is_buffer(env, v, &ok) == napi_ok && ok) return napi_get_buffer_info(env, v, data, len) == napi_ok;
  if (napi_is_typedarray(env, v, &ok) == napi_ok && ok) {
    napi_typedarray_type type;
    size_t n, off;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &n, data, &ab, &off) != napi_ok) return 0;
    size_t el = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: el = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
      default: el = 1;
    }
    *len = n * el;
    return 1;
  }
  if (napi_is_dataview(env, v, &ok) == napi_ok && ok) {
    napi_value ab;
    size_t off;
    return napi_get_dataview_info(env, v, len, data, &ab, &off) == napi_ok;
  }
  char msg[128];
  snprintf(msg, sizeof msg, "%s must be a Buffer or Uint8Array", what);
  throw_type(env, msg);
  return 0;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* ---------------------------------------------------------------------------------------------- */
/* Functions */

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  char *path = NULL;
  int64_t mode, major, minor;
  if (!get_string(env, a.argv[0], "path", 0, &path)) return NULL;
  if (!get_int64(env, a.argv[1], "mode", &mode) || !get_int64(env, a.argv[2], "major", &major) ||
      !get_int64(env, a.argv[3], "minor", &minor)) {
    free(path);
    return NULL;
  }
  if (mode > 0xffffffffLL || major > 0xffffffffLL || minor > 0xffffffffLL) {
    free(path);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "mode, major and minor must fit in 32 bits");
    return NULL;
  }
  napi_value ret = NULL;
  if (mknod(path, (mode_t)mode, makedev((unsigned)major, (unsigned)minor)) != 0)
    throw_errno(env, errno, "mknod", path);
  else
    ret = undefined(env);
  free(path);
  return ret;
}

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  char *path = NULL, *name = NULL;
  void *data = NULL;
  size_t len = 0;
  napi_value ret = NULL;
  if (!get_string(env, a.argv[0], "path", 0, &path)) goto out;
  if (!get_string(env, a.argv[1], "name", 0, &name)) goto out;
  if (!get_bytes(env, a.argv[2], "value", &data, &len)) goto out;
  if (lsetxattr(path, name, len ? data : "", len, 0) != 0)
    throw_errno(env, errno, "lsetxattr", path);
  else
    ret = undefined(env);
out:
  free(path);
  free(name);
  return ret;
}

static napi_value js_fsetxattr(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  int fd;
  char *name = NULL;
  void *data = NULL;
  size_t len = 0;
  napi_value ret = NULL;
  if (!get_fd(env, a.argv[0], &fd)) goto out;
  if (!get_string(env, a.argv[1], "name", 0, &name)) goto out;
  if (!get_bytes(env, a.argv[2], "value", &data, &len)) goto out;
  if (fsetxattr(fd, name, len ? data : "", len, 0) != 0) {
    char what[32];
    snprintf(what, sizeof what, "fd %d", fd);
    throw_errno(env, errno, "fsetxattr", what);
  } else {
    ret = undefined(env);
  }
out:
  free(name);
  return ret;
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  char *path = NULL, *name = NULL;
  char *buf = NULL;
  napi_value ret = NULL;
  if (!get_string(env, a.argv[0], "path", 0, &path)) goto out;
  if (!get_string(env, a.argv[1], "name", 0, &name)) goto out;
  for (;;) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0) {
      if (errno == ENODATA) napi_get_null(env, &ret);
      else throw_errno(env, errno, "lgetxattr", path);
      goto out;
    }
    free(buf);
    buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
      throw_errno(env, ENOMEM, "malloc", NULL);
      goto out;
    }
    ssize_t got = lgetxattr(path, name, buf, (size_t)size);
    if (got < 0) {
      if (errno == ERANGE) continue; /* grew in between: ask again */
      if (errno == ENODATA) napi_get_null(env, &ret);
      else throw_errno(env, errno, "lgetxattr", path);
      goto out;
    }
    void *copy;
    if (napi_create_buffer_copy(env, (size_t)got, buf, &copy, &ret) != napi_ok) ret = NULL;
    goto out;
  }
out:
  free(buf);
  free(path);
  free(name);
  return ret;
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  char *path = NULL;
  char *buf = NULL;
  napi_value ret = NULL;
  if (!get_string(env, a.argv[0], "path", 0, &path)) goto out;
  /* One syscall in the common case: most files have no or few xattrs, so try a stack buffer first and only
     ask for the size when it is too small (export and commit call this for every file). */
  char small[4096];
  char *list = small;
  ssize_t got = llistxattr(path, small, sizeof small);
  if (got < 0 && errno != ERANGE) {
    throw_errno(env, errno, "llistxattr", path);
    goto out;
  }
  while (got < 0) {
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) {
      throw_errno(env, errno, "llistxattr", path);
      goto out;
    }
    free(buf);
    buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
      throw_errno(env, ENOMEM, "malloc", NULL);
      goto out;
    }
    got = llistxattr(path, buf, (size_t)size);
    if (got < 0 && errno != ERANGE) {
      throw_errno(env, errno, "llistxattr", path);
      goto out;
    }
    list = buf;
  }
  napi_value arr;
  if (napi_create_array(env, &arr) != napi_ok) goto out;
  uint32_t idx = 0;
  for (ssize_t p = 0; p < got;) {
    size_t n = strnlen(list + p, (size_t)(got - p));
    if (n > 0) {
      napi_value s;
      if (napi_create_string_utf8(env, list + p, n, &s) != napi_ok) goto out;
      if (napi_set_element(env, arr, idx++, s) != napi_ok) goto out;
    }
    p += (ssize_t)n + 1;
  }
  ret = arr;
out:
  free(buf);
  free(path);
  return ret;
}

static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  char *path = NULL, *name = NULL;
  napi_value ret = NULL;
  if (!get_string(env, a.argv[0], "path", 0, &path)) goto out;
  if (!get_string(env, a.argv[1], "name", 0, &name)) goto out;
  if (lremovexattr(path, name) != 0)
    throw_errno(env, errno, "lremovexattr", path);
  else
    ret = undefined(env);
out:
  free(path);
  free(name);
  return ret;
}

static napi_value js_mount(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 5)) return NULL;
  char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
  int64_t flags;
  napi_value ret = NULL;
  if (!get_string(env, a.argv[0], "source", 0, &source)) goto out;
  if (!get_string(env, a.argv[1], "target", 0, &target)) goto out;
  if (!get_string(env, a.argv[2], "fstype", 1, &fstype)) goto out;
  if (!get_int64(env, a.argv[3], "flags", &flags)) goto out;
  if (!get_string(env, a.argv[4], "data", 1, &data)) goto out;
  if (mount(source, target, fstype, (unsigned long)flags, data) != 0)
    throw_errno(env, errno, "mount", target);
  else
    ret = undefined(env);
out:
  free(source);
  free(target);
  free(fstype);
  free(data);
  return ret;
}

static napi_value js_umount2(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  char *target = NULL;
  int64_t flags;
  napi_value ret = NULL;
  if (!get_string(env, a.argv[0], "target", 0, &target)) goto out;
  if (!get_int64(env, a.argv[1], "flags", &flags)) goto out;
  if (umount2(target, (int)flags) != 0)
    throw_errno(env, errno, "umount2", target);
  else
    ret = undefined(env);
out:
  free(target);
  return ret;
}


/* ---------------------------------------------------------------------------------------------- */
/* The service's hand-off (src/service/): a client connects to a unix socket and passes its stdin, stdout
   and stderr (SCM_RIGHTS) with its request; a warm worker accepts and takes those descriptors over. */

/* Waits up to timeout_ms for `fd` to be readable: 1 readable (or hung up), 0 timed out, -1 error (errno). */
static int wait_readable(int fd, int64_t timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, timeout_ms > 0x7fffffff ? 0x7fffffff : (int)timeout_ms);
  if (r < 0 && errno == EINTR) return 0; /* a signal: the caller asks again */
  if (r < 0) return -1;
  return r > 0;
}

static napi_value js_unix_listen(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  char *path = NULL;
  int64_t backlog;
  napi_value ret = NULL;
  if (!get_string(env, a.argv[0], "path", 0, &path)) goto out;
  if (!get_int64(env, a.argv[1], "backlog", &backlog)) goto out;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) {
    throw_errno(env, ENAMETOOLONG, "bind", path);
    goto out;
  }
  strcpy(addr.sun_path, path);
  /* Non-blocking: several workers poll the same socket and only one wins each accept. */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket", path);
    goto out;
  }
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, (int)(backlog > 4096 ? 4096 : backlog)) != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "bind", path);
    goto out;
  }
  napi_create_int32(env, fd, &ret);
out:
  free(path);
  return ret;
}

static napi_value js_unix_accept(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  int fd;
  int64_t timeout;
  if (!get_fd(env, a.argv[0], &fd) || !get_int64(env, a.argv[1], "timeoutMs", &timeout)) return NULL;
  napi_value ret;
  int r = wait_readable(fd, timeout);
  if (r < 0) return throw_errno(env, errno, "poll", NULL);
  if (r == 0) {
    napi_get_null(env, &ret);
    return ret;
  }
  int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) {
      napi_get_null(env, &ret);
      return ret;
    }
    return throw_errno(env, errno, "accept", NULL);
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    int err = errno;
    close(c);
    return throw_errno(env, err, "getsockopt", NULL);
  }
  napi_value v;
  napi_create_object(env, &ret);
  napi_create_int32(env, c, &v);
  napi_set_named_property(env, ret, "fd", v);
  napi_create_uint32(env, cred.uid, &v);
  napi_set_named_property(env, ret, "uid", v);
  napi_create_int32(env, cred.pid, &v);
  napi_set_named_property(env, ret, "pid", v);
  return ret;
}

#define MAX_PASSED_FDS 8

static napi_value js_recv_fds(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  int fd;
  int64_t max, timeout;
  if (!get_fd(env, a.argv[0], &fd) || !get_int64(env, a.argv[1], "maxBytes", &max) ||
      !get_int64(env, a.argv[2], "timeoutMs", &timeout))
    return NULL;
  if (max < 1 || max > (1 << 24)) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "maxBytes must be between 1 and 16 MiB");
    return NULL;
  }
  napi_value ret;
  int r = wait_readable(fd, timeout);
  if (r < 0) return throw_errno(env, errno, "poll", NULL);
  if (r == 0) {
    napi_get_null(env, &ret);
    return ret;
  }
  void *data;
  napi_value buf;
  if (napi_create_buffer(env, (size_t)max, &data, &buf) != napi_ok) return NULL;
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
  } ctl;
  struct iovec iov = {.iov_base = data, .iov_len = (size_t)max};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_get_null(env, &ret);
      return ret;
    }
    return throw_errno(env, errno, "recvmsg", NULL);
  }
  napi_value fds, v;
  napi_create_array(env, &fds);
  uint32_t count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *got = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < k; i++) {
      napi_create_int32(env, got[i], &v);
      napi_set_element(env, fds, count++, v);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    /* More descriptors than we take: the ones that arrived are closed by the caller; refuse the request. */
    return throw_errno(env, EMSGSIZE, "recvmsg", "too many descriptors");
  }
  napi_value slice;
  napi_create_object(env, &ret);
  napi_value argv[2];
  napi_create_int32(env, 0, &argv[0]);
  napi_create_int64(env, (int64_t)n, &argv[1]);
  napi_value subarray;
  if (napi_get_named_property(env, buf, "subarray", &subarray) != napi_ok) return NULL;
  if (napi_call_function(env, buf, subarray, 2, argv, &slice) != napi_ok) return NULL;
  napi_set_named_property(env, ret, "data", slice);
  napi_set_named_property(env, ret, "fds", fds);
  return ret;
}


/* setrlimit(2) of this process; soft/hard -1 = unlimited. A service worker takes on its client's limits. */
static napi_value js_setrlimit(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  int64_t res;
  double soft, hard;
  if (!get_int64(env, a.argv[0], "resource", &res)) return NULL;
  if (napi_get_value_double(env, a.argv[1], &soft) != napi_ok || napi_get_value_double(env, a.argv[2], &hard) != napi_ok) {
    return throw_type(env, "soft and hard must be numbers");
  }
  struct rlimit rl;
  rl.rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
  rl.rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
  if (setrlimit((int)res, &rl) != 0) return throw_errno(env, errno, "setrlimit", NULL);
  return undefined(env);
}

static napi_value js_dup2(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  int from, to;
  if (!get_fd(env, a.argv[0], &from) || !get_fd(env, a.argv[1], &to)) return NULL;
  int r;
  do r = dup2(from, to);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "dup2", NULL);
  return undefined(env);
}

/* Marks every descriptor from `fd` up close-on-exec, so a daemon this process starts (aardvark-dns, a container's
 * monitor and its runtime) holds none of what this process inherited (a caller's pipes keep it waiting otherwise).
 * close_range(2) where the kernel has it (5.11), /proc/self/fd otherwise. */
static napi_value js_cloexec_from(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  int from;
  if (!get_fd(env, a.argv[0], &from)) return NULL;
  if (syscall(SYS_close_range, (unsigned)from, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return undefined(env);
  DIR *d = opendir("/proc/self/fd");
  if (!d) return throw_errno(env, errno, "opendir", "/proc/self/fd");
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd < from || fd == self) continue;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  closedir(d);
  return undefined(env);
}

/* openat2(2): resolves `path` under `dirfd` with the RESOLVE_* rules (RESOLVE_IN_ROOT: as if dirfd were the
 * root, so no symlink or ".." leaves it). glibc 2.36 has no wrapper: the raw system call. */
static napi_value js_openat2(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 5)) return NULL;
  int dirfd;
  char *p = NULL;
  int64_t flags, mode, resolve;
  if (!get_fd(env, a.argv[0], &dirfd) || !get_string(env, a.argv[1], "path", 0, &p)) return NULL;
  napi_value ret = NULL;
  if (!get_int64(env, a.argv[2], "flags", &flags) || !get_int64(env, a.argv[3], "mode", &mode) ||
      !get_int64(env, a.argv[4], "resolve", &resolve)) goto out;
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)flags | O_CLOEXEC;
  how.mode = (uint64_t)mode;
  how.resolve = (uint64_t)resolve;
  long fd;
  do fd = syscall(SYS_openat2, dirfd, p, &how, sizeof how);
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  if (fd < 0) {
    throw_errno(env, errno, "openat2", p);
    goto out;
  }
  napi_create_int32(env, (int32_t)fd, &ret);
out:
  free(p);
  return ret;
}

/* flock(2). With LOCK_NB, a lock held elsewhere returns false instead of failing. */
static napi_value js_flock(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  int fd;
  int64_t op;
  if (!get_fd(env, a.argv[0], &fd) || !get_int64(env, a.argv[1], "operation", &op)) return NULL;
  int r;
  do r = flock(fd, (int)op);
  while (r < 0 && errno == EINTR);
  napi_value ret;
  if (r < 0 && errno == EWOULDBLOCK) {
    napi_get_boolean(env, false, &ret);
    return ret;
  }
  if (r < 0) return throw_errno(env, errno, "flock", NULL);
  napi_get_boolean(env, true, &ret);
  return ret;
}

/* ---------------------------------------------------------------------------------------------- */
/* Pseudo-terminals: a container's TTY held by its monitor (the master side), resized on request. */

static int set_winsize(int fd, int64_t rows, int64_t cols) {
  struct winsize ws;
  memset(&ws, 0, sizeof ws);
  ws.ws_row = (unsigned short)rows;
  ws.ws_col = (unsigned short)cols;
  return ioctl(fd, TIOCSWINSZ, &ws);
}

static napi_value js_openpty(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  int64_t rows, cols;
  if (!get_int64(env, a.argv[0], "rows", &rows) || !get_int64(env, a.argv[1], "cols", &cols)) return NULL;
  if (rows < 0 || rows > 65535 || cols < 0 || cols > 65535) return throw_type(env, "rows and cols must be 0 to 65535");
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return throw_errno(env, errno, "posix_openpt", NULL);
  char name[128];
  int slave = -1;
  if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, name, sizeof name) != 0) goto fail;
  slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) goto fail;
  /* Raw, output processing included: the slave is the runtime's stdio, and the container's own console already
   * turns \n into \r\n. The runtime sets it raw too, but only after it has started copying, so early output
   * would otherwise be translated twice (\r\r\n) now and then. */
  struct termios t;
  if (tcgetattr(slave, &t) != 0) goto fail;
  cfmakeraw(&t);
  if (tcsetattr(slave, TCSANOW, &t) != 0) goto fail;
  if ((rows > 0 || cols > 0) && set_winsize(master, rows, cols) != 0) goto fail;
  napi_value ret, v;
  napi_create_object(env, &ret);
  napi_create_int32(env, master, &v);
  napi_set_named_property(env, ret, "master", v);
  napi_create_int32(env, slave, &v);
  napi_set_named_property(env, ret, "slave", v);
  return ret;
fail:;
  int err = errno;
  if (slave >= 0) close(slave);
  close(master);
  return throw_errno(env, err, "openpty", NULL);
}

static napi_value js_pty_resize(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  int fd;
  int64_t rows, cols;
  if (!get_fd(env, a.argv[0], &fd) || !get_int64(env, a.argv[1], "rows", &rows) || !get_int64(env, a.argv[2], "cols", &cols)) return NULL;
  if (rows < 0 || rows > 65535 || cols < 0 || cols > 65535) return throw_type(env, "rows and cols must be 0 to 65535");
  if (set_winsize(fd, rows, cols) != 0) return throw_errno(env, errno, "ioctl TIOCSWINSZ", NULL);
  return undefined(env);
}

/* ---------------------------------------------------------------------------------------------- */
/* Module */


/* ---------------------------------------------------------------------------------------------- */
/* Networking (netlink.c) */

#define NET_STR(i, what, nullable, var)                                  \
  char *var = NULL;                                                      \
  if (!get_string(env, a.argv[i], what, nullable, &var)) goto out;

static napi_value js_netns_create(napi_env env, napi_callback_info info) {
  int rc = pn_netns_create();
  if (rc < 0) return throw_errno(env, -rc, "netns create", NULL);
  napi_value ret;
  napi_create_int32(env, rc, &ret);
  return ret;
}

static napi_value js_bridge_create(napi_env env, napi_callback_info info) {
  args_t a;
  napi_value ret = NULL;
  char *cidr = NULL;
  int64_t mtu = 0;
  if (!get_args(env, info, &a, 3)) return NULL;
  NET_STR(0, "name", 0, name);
  if (!get_string(env, a.argv[1], "cidr", 1, &cidr) || !get_int64(env, a.argv[2], "mtu", &mtu)) goto out;
  int rc = pn_bridge_create(name, cidr, (int)mtu);
  ret = rc < 0 ? throw_errno(env, -rc, "bridge create", name) : undefined(env);
out:
  free(name);
  free(cidr);
  return ret;
}

static napi_value js_veth_create(napi_env env, napi_callback_info info) {
  args_t a;
  napi_value ret = NULL;
  char *peer = NULL, *netns = NULL, *master = NULL, *mac = NULL;
  int64_t mtu = 0;
  if (!get_args(env, info, &a, 6)) return NULL;
  NET_STR(0, "host", 0, host);
  if (!get_string(env, a.argv[1], "peer", 0, &peer) || !get_string(env, a.argv[2], "netns", 0, &netns) ||
      !get_string(env, a.argv[3], "master", 0, &master) || !get_int64(env, a.argv[4], "mtu", &mtu) ||
      !get_string(env, a.argv[5], "mac", 1, &mac))
    goto out;
  int rc = pn_veth_create(host, peer, netns, master, (int)mtu, mac);
  ret = rc < 0 ? throw_errno(env, -rc, "veth create", host) : undefined(env);
out:
  free(host);
  free(peer);
  free(netns);
  free(master);
  free(mac);
  return ret;
}

static napi_value js_iface_configure(napi_env env, napi_callback_info info) {
  args_t a;
  napi_value ret = NULL;
  char *ifname = NULL, *cidr = NULL, *gw = NULL;
  int64_t route_mtu = 0;
  if (!get_args(env, info, &a, 5)) return NULL;
  NET_STR(0, "netns", 1, netns);
  if (!get_string(env, a.argv[1], "ifname", 0, &ifname) || !get_string(env, a.argv[2], "cidr", 1, &cidr) ||
      !get_string(env, a.argv[3], "gateway", 1, &gw) || !get_int64(env, a.argv[4], "routeMtu", &route_mtu))
    goto out;
  int rc = pn_iface_configure(netns, ifname, cidr, gw, (int)route_mtu);
  ret = rc < 0 ? throw_errno(env, -rc, "configure", ifname) : undefined(env);
out:
  free(netns);
  free(ifname);
  free(cidr);
  free(gw);
  return ret;
}

static napi_value js_link_delete(napi_env env, napi_callback_info info) {
  args_t a;
  napi_value ret = NULL;
  char *name = NULL;
  if (!get_args(env, info, &a, 2)) return NULL;
  NET_STR(0, "netns", 1, netns);
  if (!get_string(env, a.argv[1], "name", 0, &name)) goto out;
  int rc = pn_link_delete(netns, name);
  if (rc == -ENODEV || (rc == -ENOENT && netns != NULL)) napi_get_boolean(env, false, &ret);
  else if (rc < 0) ret = throw_errno(env, -rc, "link delete", name);
  else napi_get_boolean(env, true, &ret);
out:
  free(netns);
  free(name);
  return ret;
}

static napi_value js_dns_probe(napi_env env, napi_callback_info info) {
  args_t a;
  napi_value ret = NULL;
  char *server = NULL, *name = NULL;
  int64_t timeout = 0;
  if (!get_args(env, info, &a, 4)) return NULL;
  NET_STR(0, "netns", 0, netns);
  if (!get_string(env, a.argv[1], "server", 0, &server) || !get_string(env, a.argv[2], "name", 0, &name) ||
      !get_int64(env, a.argv[3], "timeoutMs", &timeout))
    goto out;
  int rc = pn_dns_probe(netns, server, name, (int)timeout);
  if (rc == -ETIMEDOUT) napi_get_boolean(env, false, &ret);
  else if (rc < 0) ret = throw_errno(env, -rc, "dns probe", name);
  else napi_get_boolean(env, true, &ret);
out:
  free(netns);
  free(server);
  free(name);
  return ret;
}

static int set_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, fn) == napi_ok;
}

static int set_const(napi_env env, napi_value exports, const char *name, double value) {
  napi_value v;
  if (napi_create_double(env, value, &v) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, v) == napi_ok;
}

static napi_value init(napi_env env, napi_value exports) {
  int ok = set_fn(env, exports, "mknod", js_mknod) && set_fn(env, exports, "lsetxattr", js_lsetxattr) &&
           set_fn(env, exports, "fsetxattr", js_fsetxattr) &&
           set_fn(env, exports, "lgetxattr", js_lgetxattr) && set_fn(env, exports, "llistxattr", js_llistxattr) &&
           set_fn(env, exports, "lremovexattr", js_lremovexattr) && set_fn(env, exports, "mount", js_mount) &&
           set_fn(env, exports, "umount2", js_umount2) && set_fn(env, exports, "unixListen", js_unix_listen) &&
           set_fn(env, exports, "unixAccept", js_unix_accept) && set_fn(env, exports, "recvFds", js_recv_fds) &&
           set_fn(env, exports, "dup2", js_dup2) && set_fn(env, exports, "cloexecFrom", js_cloexec_from) && set_fn(env, exports, "setrlimit", js_setrlimit) &&
           set_fn(env, exports, "openat2", js_openat2) && set_fn(env, exports, "flock", js_flock) &&
           set_fn(env, exports, "netnsCreate", js_netns_create) && set_fn(env, exports, "bridgeCreate", js_bridge_create) &&
           set_fn(env, exports, "vethCreate", js_veth_create) && set_fn(env, exports, "ifaceConfigure", js_iface_configure) &&
           set_fn(env, exports, "linkDelete", js_link_delete) && set_fn(env, exports, "dnsProbe", js_dns_probe) &&
           set_fn(env, exports, "openpty", js_openpty) && set_fn(env, exports, "ptyResize", js_pty_resize) &&
           set_const(env, exports, "MS_RDONLY", MS_RDONLY) && set_const(env, exports, "MS_NOSUID", MS_NOSUID) &&
           set_const(env, exports, "MS_NODEV", MS_NODEV) && set_const(env, exports, "MS_NOEXEC", MS_NOEXEC) &&
           set_const(env, exports, "MS_REMOUNT", MS_REMOUNT) && set_const(env, exports, "MS_BIND", MS_BIND) &&
           set_const(env, exports, "MS_REC", MS_REC) && set_const(env, exports, "MS_PRIVATE", MS_PRIVATE) &&
           set_const(env, exports, "MS_SLAVE", MS_SLAVE) && set_const(env, exports, "MS_SHARED", MS_SHARED) &&
           set_const(env, exports, "MS_STRICTATIME", MS_STRICTATIME) &&
           set_const(env, exports, "MS_RELATIME", MS_RELATIME) && set_const(env, exports, "MNT_FORCE", MNT_FORCE) &&
           set_const(env, exports, "MNT_DETACH", MNT_DETACH) && set_const(env, exports, "S_IFCHR", S_IFCHR) &&
           set_const(env, exports, "S_IFBLK", S_IFBLK) && set_const(env, exports, "S_IFIFO", S_IFIFO) &&
           set_const(env, exports, "S_IFREG", S_IFREG) && set_const(env, exports, "S_IFSOCK", S_IFSOCK) &&
           set_const(env, exports, "RESOLVE_NO_XDEV", RESOLVE_NO_XDEV) &&
           set_const(env, exports, "RESOLVE_NO_MAGICLINKS", RESOLVE_NO_MAGICLINKS) &&
           set_const(env, exports, "RESOLVE_NO_SYMLINKS", RESOLVE_NO_SYMLINKS) &&
           set_const(env, exports, "RESOLVE_BENEATH", RESOLVE_BENEATH) &&
           set_const(env, exports, "RESOLVE_IN_ROOT", RESOLVE_IN_ROOT) && set_const(env, exports, "LOCK_SH", LOCK_SH) &&
           set_const(env, exports, "LOCK_EX", LOCK_EX) && set_const(env, exports, "LOCK_NB", LOCK_NB) &&
           set_const(env, exports, "LOCK_UN", LOCK_UN);
  if (!ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
