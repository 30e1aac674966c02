/* Network namespaces, bridges and veth pairs over rtnetlink (netlink.c). Each returns 0 or -errno. */
#ifndef PLY_NETLINK_H
#define PLY_NETLINK_H

int pn_netns_create(void); /* returns a descriptor of the new namespace */
int pn_bridge_create(const char *name, const char *cidr, int mtu);
int pn_veth_create(const char *host, const char *peer, const char *netns, const char *master, int mtu, const char *peer_mac);
int pn_iface_configure(const char *netns, const char *ifname, const char *cidr, const char *gateway, int route_mtu);
int pn_link_delete(const char *netns, const char *name);
int pn_dns_probe(const char *netns, const char *server, const char *name, int timeout_ms);

#endif
