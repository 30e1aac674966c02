// Network drivers: what one kind of network does on the host. A driver is chosen once per network (by its
// record's driver) and called through this interface; test/unit/network-driver.test.ts is the suite every
// driver passes.
import fs from 'node:fs';
import * as native from '../native/index.js';
import { parseSubnet } from './ipv4.js';
import type { Endpoint, NetworkRecord } from './store.js';

export interface NetworkDriver {
  readonly name: 'bridge' | 'host' | 'null';
  /** Whether containers on it get a namespace of ply's making with an interface per endpoint. */
  readonly plugsContainers: boolean;
  /** Brings the network's host side up (idempotent). */
  up(net: NetworkRecord): void;
  /** Removes the network's host side (idempotent). */
  down(net: NetworkRecord): void;
  /** Plugs a container's namespace (`netns`, a namespace file) into the network; `defaultRoute` via its gateway. */
  join(net: NetworkRecord, ep: Endpoint, netns: string, defaultRoute: boolean): void;
  /** Unplugs it from a running container (idempotent). A stopped container's interfaces go with its namespace. */
  leave(net: NetworkRecord, ep: Endpoint): void;
}

/** docker's option for a bridge network's MTU (`network create -o com.docker.network.driver.mtu=N`). */
export const MTU_OPTION = 'com.docker.network.driver.mtu';
/** What leaves the host goes at docker's MTU; between the host and its containers, and among them, at LOCAL_MTU. */
export const OUTSIDE_MTU = 1500;
export const LOCAL_MTU = 65520;

/**
 * A Linux bridge with the gateway address; one veth pair per endpoint, its peer made in the container. Unless the
 * network sets an MTU, the bridge and veths carry LOCAL_MTU (a published port then carries near-loopback
 * throughput: at 1500 each bulk transfer through the bridge costs about 25% more here, in ACKs and NAT lookups)
 * while the container's default route caps its path MTU at OUTSIDE_MTU, so traffic to the world sees docker's 1500.
 */
export class BridgeDriver implements NetworkDriver {
  readonly name = 'bridge';
  readonly plugsContainers = true;

  private mtu(net: NetworkRecord): { link: number; route: number } {
    const set = Number(net.options[MTU_OPTION]);
    return set > 0 ? { link: set, route: 0 } : { link: LOCAL_MTU, route: OUTSIDE_MTU };
  }

  exists(net: NetworkRecord): boolean {
    return !!net.bridge && linkExists(net.bridge);
  }

  up(net: NetworkRecord): void {
    if (!net.bridge || !net.subnet || !net.gateway) throw new Error(`network ${net.name} has no bridge or address range`);
    native.bridgeCreate(net.bridge, `${net.gateway}/${parseSubnet(net.subnet).prefix}`, this.mtu(net).link);
  }

  down(net: NetworkRecord): void {
    if (net.bridge) native.linkDelete(null, net.bridge);
  }

  join(net: NetworkRecord, ep: Endpoint, netns: string, defaultRoute: boolean): void {
    const mtu = this.mtu(net);
    native.vethCreate(ep.hostIfname, ep.ifname, netns, net.bridge!, mtu.link, ep.mac);
    try {
      native.ifaceConfigure(netns, ep.ifname, `${ep.ip}/${parseSubnet(net.subnet!).prefix}`, defaultRoute && !net.internal ? net.gateway! : null, mtu.route);
    } catch (e) {
      native.linkDelete(null, ep.hostIfname);
      throw e;
    }
  }

  leave(_net: NetworkRecord, ep: Endpoint): void {
    native.linkDelete(null, ep.hostIfname);
  }
}

/** host and none: nothing on the host side; the runtime shares the host's namespace or makes an empty one. */
export class NoopDriver implements NetworkDriver {
  readonly plugsContainers = false;
  constructor(readonly name: 'host' | 'null') {}
  up(): void {}
  down(): void {}
  join(): void {}
  leave(): void {}
}

export function linkExists(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(name) && fs.existsSync(`/sys/class/net/${name}`);
}

export function driverFor(net: NetworkRecord, bridge: BridgeDriver): NetworkDriver {
  if (net.driver === 'bridge') return bridge;
  return new NoopDriver(net.driver);
}
