// The suite every network driver passes (as containerd's snapshotter testsuite): up, join a namespace, leave,
// down, each leaving the host as it found it; plus the pure parts (IPv4 arithmetic, -p parsing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { BridgeDriver, NoopDriver, linkExists, type NetworkDriver } from '../../src/network/driver.js';
import { DEFAULT_POOLS, assignable, formatIp, freeSubnets, macFromIp, overlaps, parseIp, parsePools, parseRange, parseSubnet, formatSubnet } from '../../src/network/ipv4.js';
import { parsePublish, portRequests } from '../../src/network/ports.js';
import * as native from '../../src/native/index.js';
import type { Endpoint, NetworkRecord } from '../../src/network/store.js';

const tag = randomBytes(3).toString('hex');
// A /24 that no route of this machine covers (the suite must not collide with anyone's network).
function freeSubnet(): string {
  const routes = fs.readFileSync('/proc/net/route', 'utf8');
  for (let i = 0; i < 200; i++) {
    const third = (parseInt(tag, 16) + i) % 250;
    const hex = `00${third.toString(16).padStart(2, '0')}E70A`.toUpperCase();
    if (!routes.includes(hex)) return `10.231.${third}.0/24`;
  }
  throw new Error('no free test subnet');
}

function network(driver: NetworkRecord['driver']): NetworkRecord {
  const subnet = freeSubnet();
  const base = subnet.split('.').slice(0, 3).join('.');
  return {
    id: randomBytes(32).toString('hex'),
    name: `suite-${tag}`,
    driver,
    subnet,
    gateway: `${base}.1`,
    bridge: `plyst-${tag}`,
    internal: false,
    dns: false,
    ipamUser: true,
    labels: {},
    options: {},
    created: Date.now(),
  };
}

function endpoint(net: NetworkRecord): Endpoint {
  const ip = `${net.subnet!.split('.').slice(0, 3).join('.')}.2`;
  return { container: 'c'.repeat(64), network: net.id, ip, mac: macFromIp(parseIp(ip)!), ifname: 'eth0', hostIfname: `vethst${tag}`, id: 'e'.repeat(64), name: 'c', aliases: [] };
}

/** `ip` output of a namespace held by fd (through /proc/self/fd). */
function inNetns(fd: number, args: string[]): string {
  return spawnSync('nsenter', [`--net=/proc/${process.pid}/fd/${fd}`, 'ip', ...args], { encoding: 'utf8' }).stdout;
}

const drivers: [string, () => NetworkDriver, NetworkRecord['driver']][] = [
  ['bridge', () => new BridgeDriver(), 'bridge'],
  ['host', () => new NoopDriver('host'), 'host'],
  ['null', () => new NoopDriver('null'), 'null'],
];

for (const [name, make, kind] of drivers) {
  test(`network driver suite: ${name}: up, join, leave, down leave the host as it was`, () => {
    const d = make();
    const net = network(kind);
    const ep = endpoint(net);
    const fd = native.netnsCreate();
    try {
      d.up(net);
      d.up(net); // idempotent
      assert.equal(linkExists(net.bridge!), d.plugsContainers);
      d.join(net, ep, `/proc/self/fd/${fd}`, true);
      const addrs = inNetns(fd, ['-4', '-o', 'addr']);
      if (d.plugsContainers) {
        assert.match(addrs, new RegExp(`eth0\\s+inet ${ep.ip.replace(/\./g, '\\.')}/24`));
        assert.match(inNetns(fd, ['route']), new RegExp(`default via ${net.gateway!.replace(/\./g, '\\.')} dev eth0`));
        assert.match(inNetns(fd, ['link', 'show', 'eth0']), new RegExp(ep.mac));
        assert.ok(fs.readdirSync(`/sys/class/net/${net.bridge}/brif`).includes(ep.hostIfname));
        // The namespace reaches the gateway through the bridge.
        const ping = spawnSync('nsenter', [`--net=/proc/${process.pid}/fd/${fd}`, 'busybox', 'ping', '-c1', '-W2', net.gateway!], { encoding: 'utf8' });
        assert.equal(ping.status, 0, ping.stdout + ping.stderr);
      } else {
        assert.doesNotMatch(addrs, /eth0/);
      }
      d.leave(net, ep);
      d.leave(net, ep); // idempotent
      assert.ok(!linkExists(ep.hostIfname));
      assert.doesNotMatch(inNetns(fd, ['link']), /eth0/);
      d.down(net);
      d.down(net);
    } finally {
      fs.closeSync(fd);
      native.linkDelete(null, ep.hostIfname);
      native.linkDelete(null, net.bridge!);
    }
    // Only this suite's links are compared: other test runs on the machine add and remove theirs meanwhile.
    assert.deepEqual(fs.readdirSync('/sys/class/net').filter((l) => l.includes(tag)), []);
  });
}

test('IPv4: subnets, overlap, docker\'s MAC from the address', () => {
  assert.equal(formatSubnet(parseSubnet('172.17.0.0/16')), '172.17.0.0/16');
  assert.equal(formatSubnet(parseSubnet('172.17.5.9/16')), '172.17.0.0/16');
  assert.throws(() => parseSubnet('10.300.0.0/16'), /Invalid subnet 10\.300\.0\.0\/16 : invalid CIDR address/);
  assert.throws(() => parseSubnet('10.0.0.0'), /invalid CIDR address/);
  assert.ok(overlaps(parseSubnet('10.0.0.0/8'), parseSubnet('10.1.2.0/24')));
  assert.ok(!overlaps(parseSubnet('172.17.0.0/16'), parseSubnet('172.18.0.0/16')));
  assert.equal(macFromIp(parseIp('172.17.0.2')!), '02:42:ac:11:00:02');
  // --ip-range: host bits allowed (docker masks them); the assignable addresses never include the subnet's network
  // or broadcast address, and a range longer than the subnet is cut to it.
  const bounds = (subnet: string, range?: string) => {
    const b = assignable(parseSubnet(subnet), range ? parseRange(range) : undefined);
    return `${formatIp(b.first)}-${formatIp(b.last)}`;
  };
  assert.equal(bounds('10.1.2.0/24'), '10.1.2.1-10.1.2.254');
  assert.equal(bounds('10.1.2.0/24', '10.1.2.128/25'), '10.1.2.128-10.1.2.254');
  assert.equal(bounds('10.1.2.0/24', '10.1.2.5/25'), '10.1.2.1-10.1.2.127');
  assert.equal(bounds('10.1.2.0/24', '10.1.2.0/16'), '10.1.2.1-10.1.2.254');
  assert.equal(bounds('10.1.2.0/24', '10.1.2.0/32'), '10.1.2.1-10.1.2.0', 'nothing to assign');
  assert.throws(() => parseRange('10.1.2.7'), /^ClientCheckError: invalid CIDR address: 10\.1\.2\.7$/);
  assert.throws(() => parseRange('10.1.2.0/33'), /invalid CIDR address/);
});

test('address pools: docker\'s defaults first, then podman\'s 10.89.0.0/16 on when all of those are taken; --default-address-pool syntax', () => {
  const take = (n: number, taken = [] as ReturnType<typeof parseSubnet>[]) => {
    const out: string[] = [];
    for (const s of freeSubnets(DEFAULT_POOLS, taken)) {
      out.push(formatSubnet(s));
      if (out.length === n) break;
    }
    return out;
  };
  assert.deepEqual(take(3), ['172.17.0.0/16', '172.18.0.0/16', '172.19.0.0/16']);
  // Every default taken (15 /16s of 172.16.0.0/12 and the 16 /20s of 192.168.0.0/16): the fallback, skipping
  // what is taken there too, including a route wider than one subnet.
  const all = [parseSubnet('172.16.0.0/12'), parseSubnet('192.168.0.0/16')];
  assert.deepEqual(take(2, all), ['10.89.0.0/24', '10.89.1.0/24']);
  assert.deepEqual(take(2, [...all, parseSubnet('10.89.0.0/24')]), ['10.89.1.0/24', '10.89.2.0/24']);
  assert.deepEqual(take(1, [...all, parseSubnet('10.89.0.0/16')]), ['10.90.0.0/24']);
  assert.deepEqual(take(1, [...all, parseSubnet('10.64.0.0/10')]), ['10.128.0.0/24']);
  // 192.168.16.0/20 in use: the next /20 of the defaults.
  assert.deepEqual(take(1, [parseSubnet('172.16.0.0/12'), parseSubnet('192.168.0.0/20')]), ['192.168.16.0/20']);
  // Within 10.89.0.0 .. 10.255.255.0 only: nothing of 10.0.0.0/8 below.
  assert.equal(take(100_000, all).length, 256 * (256 - 89));
  // dockerd's --default-address-pool syntax, several separated by spaces or ';'.
  const pools = parsePools('base=10.10.0.0/16,size=24 base=10.20.0.0/23,size=24');
  assert.deepEqual([...freeSubnets(pools, [parseSubnet('10.10.0.0/17')])].slice(0, 1).map(formatSubnet), ['10.10.128.0/24']);
  assert.deepEqual([...freeSubnets(pools, [parseSubnet('10.10.0.0/16')])].map(formatSubnet), ['10.20.0.0/24', '10.20.1.0/24']);
  assert.throws(() => parsePools('base=10.10.0.0/16,size=8'), /size must be between 16 and 30/);
  assert.throws(() => parsePools('base=10.10.0.0/16'), /invalid address pool/);
  assert.throws(() => parsePools(' '), /no address pools given/);
});

test('-p as docker parses it: IP:HOST:CTR, HOST:CTR, CTR, /udp, ranges; errors', () => {
  assert.deepEqual(parsePublish(['127.0.0.1:8080:80', '8081:80/udp', '443', '9000-9001:90-91']), {
    '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }],
    '80/udp': [{ HostIp: '', HostPort: '8081' }],
    '443/tcp': [{ HostIp: '', HostPort: '' }],
    '90/tcp': [{ HostIp: '', HostPort: '9000' }],
    '91/tcp': [{ HostIp: '', HostPort: '9001' }],
  });
  assert.deepEqual(parsePublish(['127.0.0.1::80']), { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] });
  assert.throws(() => parsePublish(['99999:80']), /invalid hostPort: 99999/);
  assert.throws(() => parsePublish(['80/sctpx']), /invalid proto: sctpx/);
  assert.throws(() => parsePublish(['1.2.3:80:80']), /invalid IP address: 1\.2\.3/);
  assert.throws(() => parsePublish(['8000-8002:80-81']), /invalid ranges/);
  const reqs = portRequests(parsePublish(['8080:80']), true, ['80/tcp', '53/udp']);
  assert.deepEqual(reqs, [
    { proto: 'tcp', containerPort: 80, hostIp: '0.0.0.0', hostPort: 8080 },
    { proto: 'udp', containerPort: 53, hostIp: '0.0.0.0', hostPort: 0 },
  ]);
});
