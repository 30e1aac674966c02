/*
 * ply-client: runs one ply command in a warm worker of `ply system service`, so the command does not pay for
 * Node's start-up. bin/ply runs it as `ply-client LAUNCHER [ARG...]`.
 *
 * It connects to $ROOT/service.sock (ROOT as the engine computes it: $PLY_ROOT, else /var/lib/ply as root,
 * else $XDG_DATA_HOME/ply), sends the working directory, umask, arguments and environment, and passes its own
 * stdin, stdout and stderr (SCM_RIGHTS): the worker takes them over, so terminals, pipes and files behave as if
 * the worker had been started here. Signals the client gets are forwarded to the worker; the worker's exit code
 * becomes the client's.
 *
 * Hand-off (so a command never runs twice): the worker answers a complete request with READY(pid); only then
 * does the client send 'g'. If no worker answers within PLY_SERVICE_WAIT_MS (default 40), or there is no
 * service, or PLY_SERVICE=0, the client closes the connection (a worker that accepts it later sees EOF instead
 * of 'g' and drops it) and execs `node -- LAUNCHER ARG...` instead.
 *
 * Wire format (little-endian): request = "PLY1", u32 length, then NUL-terminated fields: cwd, umask (octal),
 * rlimits ("soft:hard" for resources 0..15 joined by ',', -1 = unlimited), argc, argv[argc], env...; replies = 8-byte records {u32 type, i32 value}: 1 = READY (worker pid),
 * 2 = EXIT (exit code).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

#define MAX_REQUEST (1 << 20)
enum { REPLY_READY = 1, REPLY_EXIT = 2 };

static volatile sig_atomic_t worker_pid = 0;
static volatile sig_atomic_t last_signal = 0;

static void forward(int sig) {
  last_signal = sig;
  if (worker_pid > 0) kill((pid_t)worker_pid, sig);
}

/* Runs the command without the service: node -- LAUNCHER ARG... ("--": Node 20 would take a command's
 * --env-file for its own option even after the script). */
static void run_directly(char **rest) {
  int n = 0;
  while (rest[n] != NULL) n++;
  char **argv = calloc((size_t)n + 3, sizeof *argv);
  if (argv == NULL) _exit(125);
  argv[0] = "node";
  argv[1] = "--";
  for (int i = 0; i < n; i++) argv[i + 2] = rest[i];
  execvp("node", argv);
  fprintf(stderr, "ply: cannot run node: %s\n", strerror(errno));
  _exit(127);
}

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

static int put(buf_t *b, const char *s) {
  size_t n = strlen(s) + 1;
  if (b->len + n > MAX_REQUEST) return 0;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 8192;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return 0;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  return 1;
}

/* The socket path, or 0 when it cannot be named (then the service is not used). */
static int socket_path(char *out, size_t size) {
  const char *root = getenv("PLY_ROOT");
  char cwd[4096];
  int n;
  if (root != NULL && root[0] != '\0') {
    if (root[0] == '/') {
      n = snprintf(out, size, "%s/service.sock", root);
    } else {
      if (getcwd(cwd, sizeof cwd) == NULL) return 0;
      n = snprintf(out, size, "%s/%s/service.sock", cwd, root);
    }
  } else if (geteuid() == 0) {
    n = snprintf(out, size, "/var/lib/ply/service.sock");
  } else {
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (xdg != NULL && xdg[0] != '\0') n = snprintf(out, size, "%s/ply/service.sock", xdg);
    else if (home != NULL) n = snprintf(out, size, "%s/.local/share/ply/service.sock", home);
    else return 0;
  }
  return n > 0 && (size_t)n < size;
}

/* Reads one 8-byte reply; 1 on success, 0 on EOF or error. Signals interrupt and are retried. */
static int read_reply(int fd, uint32_t *type, int32_t *value) {
  unsigned char r[8];
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t n = read(fd, r + got, sizeof r - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    got += (size_t)n;
  }
  *type = (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
  *value = (int32_t)((uint32_t)r[4] | (uint32_t)r[5] << 8 | (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ply-client LAUNCHER [ARG...]\n");
    return 125;
  }
  char **rest = argv + 1;
  const char *use = getenv("PLY_SERVICE");
  if (use != NULL && strcmp(use, "0") == 0) run_directly(rest);

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (!socket_path(addr.sun_path, sizeof addr.sun_path)) run_directly(rest);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) run_directly(rest);

  /* The request. */
  buf_t b = {0};
  char cwd[4096], num[32];
  if (getcwd(cwd, sizeof cwd) == NULL) run_directly(rest);
  mode_t mask = umask(0);
  umask(mask);
  snprintf(num, sizeof num, "%o", (unsigned)mask);
  int ok = put(&b, cwd) && put(&b, num);
  /* Resource limits: the worker takes them on (it can only lower its own), as a directly run command has them. */
  char limits[16 * 48] = "";
  size_t used = 0;
  for (int r = 0; r < 16; r++) {
    struct rlimit rl;
    long long soft = -1, hard = -1;
    if (getrlimit(r, &rl) == 0) {
      soft = rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur;
      hard = rl.rlim_max == RLIM_INFINITY ? -1 : (long long)rl.rlim_max;
    }
    used += (size_t)snprintf(limits + used, sizeof limits - used, "%s%lld:%lld", r ? "," : "", soft, hard);
  }
  ok = ok && put(&b, limits);
  snprintf(num, sizeof num, "%d", argc - 2);
  ok = ok && put(&b, num);
  for (int i = 2; ok && i < argc; i++) ok = put(&b, argv[i]);
  for (char **e = environ; ok && *e != NULL; e++) ok = put(&b, *e);
  if (!ok) run_directly(rest);
  unsigned char head[8] = {'P', 'L', 'Y', '1', (unsigned char)b.len, (unsigned char)(b.len >> 8),
                           (unsigned char)(b.len >> 16), (unsigned char)(b.len >> 24)};

  /* Closed standard descriptors are passed as /dev/null (SCM_RIGHTS refuses a closed one). */
  for (int i = 0; i < 3; i++) {
    if (fcntl(i, F_GETFD) < 0) {
      int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (nul < 0) run_directly(rest);
      if (nul != i) {
        dup2(nul, i);
        close(nul);
      }
    }
  }
  int fds[3] = {0, 1, 2};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof fds)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov[2] = {{.iov_base = head, .iov_len = sizeof head}, {.iov_base = b.data, .iov_len = b.len}};
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  size_t total = sizeof head + b.len, sent = 0;
  while (sent < total) {
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) run_directly(rest);
    sent += (size_t)n;
    /* The rest goes without the descriptors. */
    msg.msg_control = NULL;
    msg.msg_controllen = 0;
    size_t skip = (size_t)n;
    while (msg.msg_iovlen > 0 && skip >= msg.msg_iov[0].iov_len) {
      skip -= msg.msg_iov[0].iov_len;
      msg.msg_iov++;
      msg.msg_iovlen--;
    }
    if (msg.msg_iovlen > 0) {
      msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + skip;
      msg.msg_iov[0].iov_len -= skip;
    }
  }

  /* Signals from here on go to the worker (or, before it is known, end the wait). */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);

  const char *w = getenv("PLY_SERVICE_WAIT_MS");
  int wait_ms = w != NULL && w[0] != '\0' ? atoi(w) : 40;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  do r = poll(&p, 1, wait_ms);
  while (r < 0 && errno == EINTR && last_signal == 0);
  uint32_t type;
  int32_t value;
  if (last_signal != 0 && last_signal != SIGWINCH) return 128 + last_signal;
  if (r <= 0 || !read_reply(fd, &type, &value) || type != REPLY_READY) {
    close(fd);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
    run_directly(rest);
  }
  worker_pid = value;
  if (write(fd, "g", 1) != 1) run_directly(rest); /* the worker dropped the request: nothing ran */
  for (;;) {
    if (!read_reply(fd, &type, &value)) {
      if (last_signal != 0 && last_signal != SIGWINCH) return 128 + last_signal;
      fprintf(stderr, "ply: the service's worker ended without an exit status\n");
      return 125;
    }
    if (type == REPLY_EXIT) return value & 0xff;
  }
}
