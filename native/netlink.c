/*
 * Network namespaces, bridges and veth pairs over rtnetlink, without a process per step (ip(8) costs 3-20 ms a
 * call here; these take microseconds). Each function returns 0 or -errno. A non-NULL `netns` (a bind-mounted
 * namespace file) runs the work on a short-lived thread that entered that namespace, so the caller's thread
 * never changes namespace.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "netlink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h> /* before the linux headers, which then skip what it defines */
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------- */
/* Messages */

typedef struct {
  char buf[4096];
  struct nlmsghdr *h;
} msg_t;

static void msg_init(msg_t *m, int type, int flags) {
  memset(m->buf, 0, sizeof m->buf);
  m->h = (struct nlmsghdr *)m->buf;
  m->h->nlmsg_len = NLMSG_LENGTH(0);
  m->h->nlmsg_type = type;
  m->h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
}

static void *msg_put(msg_t *m, size_t len) {
  size_t at = NLMSG_ALIGN(m->h->nlmsg_len);
  if (at + len > sizeof m->buf) return NULL;
  m->h->nlmsg_len = at + len;
  return m->buf + at;
}

static struct rtattr *attr_put(msg_t *m, int type, const void *data, size_t len) {
  struct rtattr *a = msg_put(m, RTA_LENGTH(len));
  if (a == NULL) return NULL;
  a->rta_type = type;
  a->rta_len = RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  return a;
}

static struct rtattr *nest_start(msg_t *m, int type) { return attr_put(m, type, NULL, 0); }

static void nest_end(msg_t *m, struct rtattr *a) { a->rta_len = (char *)m->buf + m->h->nlmsg_len - (char *)a; }

static int nl_open(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -errno;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* Sends one request on a fresh socket of the current thread's namespace and returns the kernel's answer. */
static int nl_talk(msg_t *m) {
  int fd = nl_open();
  if (fd < 0) return fd;
  m->h->nlmsg_seq = 1;
  struct sockaddr_nl to = {.nl_family = AF_NETLINK};
  if (sendto(fd, m->buf, m->h->nlmsg_len, 0, (struct sockaddr *)&to, sizeof to) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  char reply[8192];
  for (;;) {
    ssize_t n = recv(fd, reply, sizeof reply, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return -e;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)reply; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *err = NLMSG_DATA(h);
        close(fd);
        return err->error; /* 0 = ack, otherwise -errno */
      }
    }
  }
}

static struct ifinfomsg *link_msg(msg_t *m, int type, int flags, int index) {
  msg_init(m, type, flags);
  struct ifinfomsg *ifi = msg_put(m, sizeof *ifi);
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  return ifi;
}

static int index_of(const char *name) {
  unsigned i = if_nametoindex(name);
  return i ? (int)i : -ENODEV;
}

static int parse_mac(const char *s, unsigned char mac[6]) {
  unsigned v[6];
  if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -EINVAL;
  for (int i = 0; i < 6; i++) mac[i] = (unsigned char)v[i];
  return 0;
}

/* "a.b.c.d/len" */
static int parse_cidr(const char *s, struct in_addr *addr, int *prefix) {
  char tmp[64];
  const char *slash = strchr(s, '/');
  if (slash == NULL || (size_t)(slash - s) >= sizeof tmp) return -EINVAL;
  memcpy(tmp, s, slash - s);
  tmp[slash - s] = 0;
  if (inet_pton(AF_INET, tmp, addr) != 1) return -EINVAL;
  char *end;
  long p = strtol(slash + 1, &end, 10);
  if (*end || p < 0 || p > 32) return -EINVAL;
  *prefix = (int)p;
  return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Steps (in the current thread's namespace) */

static int link_up(const char *name) {
  int idx = index_of(name);
  if (idx < 0) return idx;
  msg_t m;
  struct ifinfomsg *ifi = link_msg(&m, RTM_NEWLINK, 0, idx);
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return nl_talk(&m);
}

static int addr_add(const char *name, const char *cidr) {
  struct in_addr a;
  int prefix, rc;
  if ((rc = parse_cidr(cidr, &a, &prefix)) < 0) return rc;
  int idx = index_of(name);
  if (idx < 0) return idx;
  msg_t m;
  msg_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  struct ifaddrmsg *ifa = msg_put(&m, sizeof *ifa);
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = prefix;
  ifa->ifa_index = idx;
  attr_put(&m, IFA_LOCAL, &a, 4);
  attr_put(&m, IFA_ADDRESS, &a, 4);
  if (prefix < 31) {
    struct in_addr b = a;
    uint32_t host = prefix == 0 ? 0xffffffffu : (0xffffffffu >> prefix);
    b.s_addr |= htonl(host);
    attr_put(&m, IFA_BROADCAST, &b, 4);
  }
  return nl_talk(&m);
}

/* The default route via `gw`; `mtu` > 0 caps the path MTU of everything it carries (RTAX_MTU). */
static int route_default(const char *gw, int mtu) {
  struct in_addr g;
  if (inet_pton(AF_INET, gw, &g) != 1) return -EINVAL;
  msg_t m;
  msg_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  struct rtmsg *rt = msg_put(&m, sizeof *rt);
  rt->rtm_family = AF_INET;
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_BOOT;
  rt->rtm_scope = RT_SCOPE_UNIVERSE;
  rt->rtm_type = RTN_UNICAST;
  attr_put(&m, RTA_GATEWAY, &g, 4);
  if (mtu > 0) {
    struct rtattr *mx = nest_start(&m, RTA_METRICS);
    attr_put(&m, RTAX_MTU, &mtu, 4);
    nest_end(&m, mx);
  }
  return nl_talk(&m);
}

static int link_del(const char *name) {
  int idx = index_of(name);
  if (idx < 0) return idx;
  msg_t m;
  link_msg(&m, RTM_DELLINK, 0, idx);
  return nl_talk(&m);
}

/* ---------------------------------------------------------------------------------------------- */
/* Running a step inside another network namespace */

typedef struct {
  const char *netns;
  int (*fn)(void *);
  void *arg;
  int rc;
} job_t;

static void *job_thread(void *p) {
  job_t *j = p;
  int fd = open(j->netns, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    j->rc = -errno;
    return NULL;
  }
  if (setns(fd, CLONE_NEWNET) < 0) {
    j->rc = -errno;
    close(fd);
    return NULL;
  }
  close(fd);
  j->rc = j->fn(j->arg);
  return NULL;
}

static int in_netns(const char *netns, int (*fn)(void *), void *arg) {
  if (netns == NULL) return fn(arg);
  job_t j = {netns, fn, arg, 0};
  pthread_t t;
  int e = pthread_create(&t, NULL, job_thread, &j);
  if (e) return -e;
  pthread_join(t, NULL);
  return j.rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* The operations */

/*
 * A new, empty network namespace, held by the returned (close-on-exec) descriptor: no bind mount to undo, and
 * the kernel frees the namespace and its veth ends once the descriptor and the container's processes are gone,
 * even when every ply process was killed.
 */
static void *netns_thread(void *p) {
  job_t *j = p;
  if (unshare(CLONE_NEWNET) < 0) {
    j->rc = -errno;
    return NULL;
  }
  int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  j->rc = fd < 0 ? -errno : fd;
  return NULL;
}

int pn_netns_create(void) {
  job_t j = {NULL, NULL, NULL, 0};
  pthread_t t;
  int e = pthread_create(&t, NULL, netns_thread, &j);
  if (e) return -e;
  pthread_join(t, NULL);
  return j.rc;
}

int pn_bridge_create(const char *name, const char *cidr, int mtu) {
  if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
  msg_t m;
  link_msg(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  attr_put(&m, IFLA_IFNAME, name, strlen(name) + 1);
  if (mtu > 0) attr_put(&m, IFLA_MTU, &mtu, 4);
  struct rtattr *li = nest_start(&m, IFLA_LINKINFO);
  attr_put(&m, IFLA_INFO_KIND, "bridge", 6);
  nest_end(&m, li);
  int rc = nl_talk(&m);
  if (rc < 0 && rc != -EEXIST) return rc;
  if (cidr != NULL) {
    rc = addr_add(name, cidr);
    if (rc < 0 && rc != -EEXIST) return rc;
  }
  return link_up(name);
}

int pn_veth_create(const char *host, const char *peer, const char *netns, const char *master, int mtu, const char *peer_mac) {
  if (strlen(host) >= IFNAMSIZ || strlen(peer) >= IFNAMSIZ) return -ENAMETOOLONG;
  unsigned char mac[6];
  if (peer_mac != NULL && parse_mac(peer_mac, mac) < 0) return -EINVAL;
  int master_idx = index_of(master);
  if (master_idx < 0) return master_idx;
  int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return -errno;
  msg_t m;
  link_msg(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  attr_put(&m, IFLA_IFNAME, host, strlen(host) + 1);
  if (mtu > 0) attr_put(&m, IFLA_MTU, &mtu, 4);
  attr_put(&m, IFLA_MASTER, &master_idx, 4);
  struct rtattr *li = nest_start(&m, IFLA_LINKINFO);
  attr_put(&m, IFLA_INFO_KIND, "veth", 4);
  struct rtattr *data = nest_start(&m, IFLA_INFO_DATA);
  struct rtattr *p = nest_start(&m, VETH_INFO_PEER);
  struct ifinfomsg *pifi = msg_put(&m, sizeof *pifi);
  pifi->ifi_family = AF_UNSPEC;
  attr_put(&m, IFLA_IFNAME, peer, strlen(peer) + 1);
  if (mtu > 0) attr_put(&m, IFLA_MTU, &mtu, 4);
  if (peer_mac != NULL) attr_put(&m, IFLA_ADDRESS, mac, 6);
  attr_put(&m, IFLA_NET_NS_FD, &nsfd, 4);
  nest_end(&m, p);
  nest_end(&m, data);
  nest_end(&m, li);
  int rc = nl_talk(&m);
  close(nsfd);
  if (rc < 0) return rc;
  rc = link_up(host);
  if (rc < 0) link_del(host);
  return rc;
}

typedef struct {
  const char *ifname, *cidr, *gateway;
  int route_mtu;
} iface_t;

static int iface_job(void *p) {
  iface_t *a = p;
  int rc = link_up("lo");
  if (rc < 0) return rc;
  if (a->cidr != NULL && (rc = addr_add(a->ifname, a->cidr)) < 0 && rc != -EEXIST) return rc;
  if ((rc = link_up(a->ifname)) < 0) return rc;
  if (a->gateway != NULL && (rc = route_default(a->gateway, a->route_mtu)) < 0 && rc != -EEXIST) return rc;
  return 0;
}

int pn_iface_configure(const char *netns, const char *ifname, const char *cidr, const char *gateway, int route_mtu) {
  iface_t a = {ifname, cidr, gateway, route_mtu};
  return in_netns(netns, iface_job, &a);
}

static int del_job(void *p) { return link_del(p); }

int pn_link_delete(const char *netns, const char *name) { return in_netns(netns, del_job, (void *)name); }

/* ---------------------------------------------------------------------------------------------- */
/* DNS readiness: a query from inside a namespace */

typedef struct {
  const char *server, *name;
  int timeout_ms;
} dns_probe_t;

/* A minimal DNS A query for `name`; returns its length. */
static int dns_query(unsigned char *buf, size_t cap, const char *name, unsigned short id) {
  size_t n = 0;
  unsigned char hdr[12] = {(unsigned char)(id >> 8), (unsigned char)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  memcpy(buf, hdr, 12);
  n = 12;
  const char *p = name;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (len == 0 || len > 63 || n + len + 6 > cap) return -EINVAL;
    buf[n++] = (unsigned char)len;
    memcpy(buf + n, p, len);
    n += len;
    p += len + (dot ? 1 : 0);
  }
  buf[n++] = 0;
  buf[n++] = 0, buf[n++] = 1; /* A */
  buf[n++] = 0, buf[n++] = 1; /* IN */
  return (int)n;
}

/* Asks `server`:53 for `name` until an answer with a record comes (0) or the time is up (-ETIMEDOUT). */
static int dns_probe_job(void *p) {
  dns_probe_t *a = p;
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(53)};
  if (inet_pton(AF_INET, a->server, &to.sin_addr) != 1) return -EINVAL;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct timeval tv = {0, 20000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  unsigned char q[300], r[1500];
  int rc = -ETIMEDOUT;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (unsigned short id = 1;; id++) {
    int n = dns_query(q, sizeof q, a->name, id);
    if (n < 0) {
      rc = n;
      break;
    }
    sendto(fd, q, n, 0, (struct sockaddr *)&to, sizeof to);
    ssize_t got = recv(fd, r, sizeof r, 0);
    /* Our id, no error, at least one answer. */
    if (got >= 12 && r[0] == (id >> 8) && r[1] == (id & 0xff) && (r[3] & 0x0f) == 0 && (r[6] || r[7])) {
      rc = 0;
      break;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > a->timeout_ms) break;
    if (got < 0) continue; /* nothing yet: the next query goes at once */
    usleep(10000);
  }
  close(fd);
  return rc;
}

int pn_dns_probe(const char *netns, const char *server, const char *name, int timeout_ms) {
  dns_probe_t a = {server, name, timeout_ms};
  return in_netns(netns, dns_probe_job, &a);
}
