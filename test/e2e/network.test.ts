// End-to-end: container networking through bin/ply and the real runc: network modes, the default bridge,
// user networks with DNS, published ports, isolation, and that nothing is left behind (veths, rules, addresses).
//
// Robust under load and next to other test runs on the machine: subnets and host ports are chosen free at run time
// (never fixed numbers another run may hold), leak checks look only at this store's bridges, table and veths, and
// every wait is for a condition, with generous bounds.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import { busyboxTar, ply, plyAsync, plyOk, PLY, tempDir } from '../helpers.js';
import { storeNames } from '../../src/network/host.js';
import { freePort as freeTcpPort } from '../registry-peer.js';

let root: string;
let names: ReturnType<typeof storeNames>;
before(() => {
  root = tempDir();
  names = storeNames(root);
  plyOk(root, ['import', '-c', 'EXPOSE 80', busyboxTar(), 'bb']);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inspect = (ref: string, format: string) => plyOk(root, ['inspect', '--format', format, ref]).trim();
const links = () => fs.readdirSync('/sys/class/net');
const bridgePorts = (bridge: string) => (fs.existsSync(`/sys/class/net/${bridge}/brif`) ? fs.readdirSync(`/sys/class/net/${bridge}/brif`) : []);
const nft = (...args: string[]) => spawnSync('nft', args, { encoding: 'utf8' });
const hostports = () => nft('list', 'chain', 'ip', names.table, 'hostports').stdout;

/** A TCP port free on every address of the host now (the kernel's choice), for -p HOST:CTR. */
const freePort = () => freeTcpPort('0.0.0.0');

/**
 * `network create --subnet` with a /24 no route of the host and no other store holds: candidates follow this
 * process's pid, and ply itself refuses (under its machine-wide lock) one that another store took meanwhile.
 * Returns the subnet's first three octets; `%p` in `extra` stands for them.
 */
function createOnFreeSubnet(name: string, ...extra: string[]): string {
  const routes = fs.readFileSync('/proc/net/route', 'utf8');
  for (let i = 0; i < 400; i++) {
    const h = process.pid * 7 + i;
    const prefix = `10.${232 + (h % 8)}.${(h >>> 3) % 256}`;
    const hex = prefix.split('.').reverse().map((b) => Number(b).toString(16).padStart(2, '0')).join('').toUpperCase();
    if (routes.includes(`\t00${hex}\t`)) continue;
    const r = ply(root, ['network', 'create', '--subnet', `${prefix}.0/24`, '--gateway', `${prefix}.1`, ...extra.map((x) => x.replaceAll('%p', prefix)), name]);
    if (r.code === 0) return prefix;
    if (!/overlaps/.test(r.stderr)) throw new Error(`network create ${name}: ${r.stderr}`);
  }
  throw new Error('no free /24 for a test network');
}

const ipNum = (ip: string) => ip.split('.').reduce((a, b) => a * 256 + Number(b), 0);
/** Whether `ip` lies in `cidr`. */
function inSubnet(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split('/');
  const size = 2 ** (32 - Number(len));
  return Math.floor(ipNum(ip) / size) === Math.floor(ipNum(base!) / size);
}

/** Polls `pred` until it holds (or fails the test after `ms`). */
async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms / 1000} s: ${what}`);
    await sleep(100);
  }
}

/** GET through the host's network stack, retried (up to 30 s) while the server starts. */
async function get(url: string, ms = 30_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const req = http.get(url, { timeout: 2000 }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        req.on('timeout', () => req.destroy(new Error('timeout')));
      });
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

/** Waits until the kernel has freed what a stopped container's namespace held (it does so asynchronously). */
const gone = (pred: () => boolean, what: string) => until(pred, `gone: ${what}`);

/** A shell loop in a container that retries `cmd` for up to 30 s (a server in another container may still be starting). */
const retry = (cmd: string) => `i=0; until ${cmd}; do i=$((i+1)); [ $i -ge 150 ] && exit 1; sleep 0.2; done`;

const WEB = ['sh', '-c', 'echo hello-from-$(hostname) > /index.html; exec httpd -f -p 80 -h /'];

test('--network none: a namespace of its own with only lo; host: the host\'s; unknown: docker\'s error, 125', () => {
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', 'bb', 'ls', '/sys/class/net']), 'lo\n');
  assert.equal(plyOk(root, ['run', '--rm', '--net', 'none', 'bb', 'ls', '/sys/class/net']), 'lo\n');
  // The host's links, as the container sees them: other test runs on the machine add and remove theirs meanwhile,
  // so every link there both before and after must be seen, and nothing that was never there.
  const before = links();
  const hostLinks = plyOk(root, ['run', '--rm', '--network', 'host', 'bb', 'ls', '/sys/class/net']).trim().split('\n');
  const after = links();
  for (const l of before.filter((x) => after.includes(x))) assert.ok(hostLinks.includes(l), `host mode sees ${l}`);
  for (const l of hostLinks) assert.ok(before.includes(l) || after.includes(l), `${l} is a link of the host`);
  assert.ok(hostLinks.includes('lo'));
  const bad = ply(root, ['run', '--rm', '--network', 'no-such-net', 'bb', 'true']);
  assert.equal(bad.code, 125);
  assert.equal(bad.stderr, 'Error: network no-such-net not found\n');
  assert.equal(ply(root, ['ps', '-aq']).stdout, '', 'a refused run leaves no container');
  const warn = ply(root, ['run', '--rm', '--network', 'host', '-p', '80:80', 'bb', 'true']);
  assert.equal(warn.code, 0);
  assert.equal(warn.stderr, 'WARNING: Published ports are discarded when using host network mode\n');
});

test('default bridge: an address of its own, its hostname, /etc/hosts and resolv.conf, the gateway and the host reachable', () => {
  const outp = plyOk(root, ['run', '--rm', '--add-host', 'db.example:10.1.2.3', '--dns', '10.9.9.9', '--dns-search', 'corp.example', 'bb', 'sh', '-c',
    'ls /sys/class/net | tr "\\n" " "; echo; hostname; ip -4 -o addr show eth0 | awk "{print \\$4}"; ip route | grep default; cat /etc/hosts; cat /etc/resolv.conf; ping -c1 -W2 $(ip route | awk "/default/ {print \\$3}") >/dev/null && echo gateway-ok']);
  const lines = outp.split('\n');
  assert.equal(lines[0], 'eth0 lo ');
  assert.match(lines[1]!, /^[0-9a-f]{12}$/);
  const cidr = lines[2]!;
  assert.match(cidr, /^\d+\.\d+\.\d+\.\d+\/\d+$/);
  const subnet = inspect('bridge', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}');
  const [netw, gw] = subnet.split(' ');
  assert.equal(cidr.split('/')[1], netw!.split('/')[1]);
  assert.ok(inSubnet(cidr.split('/')[0]!, netw!), `${cidr} in ${netw}`);
  assert.match(lines[3]!, new RegExp(`^default via ${gw!.replace(/\./g, '\\.')} dev eth0`));
  assert.match(outp, /^127\.0\.0\.1\tlocalhost$/m);
  assert.match(outp, /^10\.1\.2\.3\tdb\.example$/m);
  assert.match(outp, new RegExp(`^${cidr.split('/')[0]!.replace(/\./g, '\\.')}\\t${lines[1]}$`, 'm'));
  assert.match(outp, /^search corp\.example\nnameserver 10\.9\.9\.9$/m);
  assert.match(outp, /gateway-ok/);
  // --hostname, --mac-address; the bridge is the store's own.
  assert.equal(plyOk(root, ['run', '--rm', '--hostname', 'myhost', '--mac-address', '92:d0:c6:0a:29:33', 'bb', 'sh', '-c', 'hostname; cat /sys/class/net/eth0/address']), 'myhost\n92:d0:c6:0a:29:33\n');
  assert.equal(inspect('bridge', '{{index .Options "com.docker.network.bridge.name"}}'), names.defaultBridge);
  assert.ok(links().includes(names.defaultBridge));
  // docker's refusals.
  const alias = ply(root, ['run', '--rm', '--network-alias', 'x', 'bb', 'true']);
  assert.equal(alias.code, 125);
  assert.match(alias.stderr, /network-scoped alias is supported only for containers in user defined networks/);
  assert.match(ply(root, ['run', '--rm', '--ip', '172.17.0.9', 'bb', 'true']).stderr, /user specified IP address is supported on user defined networks only/);
  assert.equal(ply(root, ['run', '--rm', '-p', '99999:80', 'bb', 'true']).stderr, 'Error: invalid hostPort: 99999\n');
});

test('a web server reachable on published ports from the host: -p IP:HOST:CTR, -p HOST:CTR, -p CTR, -P; ply port; inspect', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const id = plyOk(root, ['run', '-d', '--name', 'web', '-p', `127.0.0.1:${p1}:80`, '-p', `${p2}:80`, '-p', '80', 'bb', ...WEB]).trim();
  try {
    assert.equal(await get(`http://127.0.0.1:${p1}/index.html`), `hello-from-${id.slice(0, 12)}\n`);
    assert.equal(await get(`http://127.0.0.1:${p2}/index.html`), `hello-from-${id.slice(0, 12)}\n`);
    const lines = plyOk(root, ['port', 'web']).trim().split('\n');
    assert.equal(lines.length, 3);
    assert.ok(lines.includes(`80/tcp -> 127.0.0.1:${p1}`), lines.join('\n'));
    assert.ok(lines.includes(`80/tcp -> 0.0.0.0:${p2}`));
    const random = lines.find((l) => !l.endsWith(`:${p1}`) && !l.endsWith(`:${p2}`))!;
    const port = Number(random.split(':')[1]);
    assert.ok(port > 1024, random);
    assert.equal(await get(`http://127.0.0.1:${port}/index.html`), `hello-from-${id.slice(0, 12)}\n`);
    assert.equal(plyOk(root, ['port', 'web', '80/tcp']).split('\n').length, 4);
    const miss = ply(root, ['port', 'web', '81']);
    assert.equal(miss.code, 1);
    assert.equal(miss.stderr, "Error: No public port '81/tcp' published for web\n");
    const ports = JSON.parse(inspect('web', '{{json .NetworkSettings.Ports}}')) as Record<string, { HostIp: string; HostPort: string }[]>;
    assert.deepEqual(ports['80/tcp']!.map((b) => `${b.HostIp}:${b.HostPort}`).sort(), [`0.0.0.0:${p2}`, `0.0.0.0:${port}`, `127.0.0.1:${p1}`].sort());
    assert.equal(inspect('web', '{{json .HostConfig.PortBindings}}'), `{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"${p1}"},{"HostIp":"","HostPort":"${p2}"},{"HostIp":"","HostPort":""}]}`);
    const ip = inspect('web', '{{.NetworkSettings.IPAddress}}');
    assert.equal(inspect('web', '{{.NetworkSettings.Networks.bridge.IPAddress}}'), ip);
    assert.ok(plyOk(root, ['ps', '--format', '{{.Ports}}']).includes(`127.0.0.1:${p1}->80/tcp`));
    // A second container cannot take a host port in use.
    const busy = ply(root, ['run', '--rm', '-p', `${p2}:80`, 'bb', 'true']);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /port is already allocated/);
    // -P: every exposed port (the image's EXPOSE 80) on a random port.
    const all = plyOk(root, ['run', '-d', '-P', 'bb', ...WEB]).trim();
    const p3 = Number(plyOk(root, ['port', all, '80']).trim().split(':')[1]);
    assert.equal(await get(`http://127.0.0.1:${p3}/index.html`), `hello-from-${all.slice(0, 12)}\n`);
    plyOk(root, ['rm', '-f', all]);
  } finally {
    ply(root, ['rm', '-f', 'web']);
  }
  // Nothing left: no DNAT rule, no veth on the bridge, no address held.
  assert.doesNotMatch(hostports(), /dnat/);
  await gone(() => bridgePorts(names.defaultBridge).length === 0, `veths on ${names.defaultBridge}`);
  assert.equal(inspect('bridge', '{{len .Containers}}'), '0');
});

test('user networks: containers find each other by name and alias; networks are isolated; connect and disconnect', async () => {
  plyOk(root, ['network', 'create', 'front']);
  const back = createOnFreeSubnet('back');
  const dup = ply(root, ['network', 'create', 'front']);
  assert.equal(dup.code, 1);
  assert.equal(dup.stderr, 'Error: network with name front already exists\n');
  assert.match(plyOk(root, ['network', 'ls', '--format', '{{.Name}} {{.Driver}}']), /^back bridge\nbridge bridge\nfront bridge\nhost host\nnone null\n$/);
  plyOk(root, ['run', '-d', '--name', 'api', '--network', 'front', '--network-alias', 'service', 'bb', ...WEB]);
  try {
    const client = plyOk(root, ['run', '--rm', '--network', 'front', 'bb', 'sh', '-c',
      `${retry('wget -qO- http://api/index.html')}; wget -qO- http://service/index.html; grep nameserver /etc/resolv.conf`]);
    const apiId = inspect('api', '{{.Id}}').slice(0, 12);
    const gw = inspect('front', '{{range .IPAM.Config}}{{.Gateway}}{{end}}');
    assert.equal(client, `hello-from-${apiId}\nhello-from-${apiId}\nnameserver ${gw}\n`);
    const apiIp = inspect('api', '{{.NetworkSettings.Networks.front.IPAddress}}');
    assert.equal(JSON.parse(plyOk(root, ['network', 'inspect', 'front']))[0].Containers[inspect('api', '{{.Id}}')].IPv4Address.split('/')[0], apiIp);
    // Another network reaches neither the name nor the address.
    const other = plyOk(root, ['run', '--rm', '--network', 'back', 'bb', 'sh', '-c',
      `nslookup api >/dev/null 2>&1 && echo resolved; echo | nc -w 2 ${apiIp} 80 >/dev/null 2>&1 && echo connected; ip -4 -o addr show eth0 | awk '{print $4}'`]);
    assert.doesNotMatch(other, /resolved|connected/);
    assert.match(other, new RegExp(`^${back.replace(/\./g, '\\.')}\\.\\d+/24$`, 'm'));
    assert.doesNotMatch(plyOk(root, ['run', '--rm', 'bb', 'sh', '-c', `echo | nc -w 2 ${apiIp} 80 >/dev/null 2>&1 && echo connected; true`]), /connected/);
    // --ip on a network with a user subnet; connect a running container to a second network.
    plyOk(root, ['run', '-d', '--name', 'worker', '--network', 'back', '--ip', `${back}.50`, 'bb', 'sleep', '600']);
    assert.equal(inspect('worker', '{{.NetworkSettings.Networks.back.IPAddress}}'), `${back}.50`);
    plyOk(root, ['network', 'connect', '--alias', 'w2', 'front', 'worker']);
    assert.equal(plyOk(root, ['exec', 'worker', 'sh', '-c', `ls /sys/class/net | tr "\\n" " "; ${retry('wget -qO- http://api/index.html')}`]), `eth0 eth1 lo hello-from-${apiId}\n`);
    const inUse = ply(root, ['network', 'rm', 'front']);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /has active endpoints/);
    plyOk(root, ['network', 'disconnect', 'front', 'worker']);
    assert.equal(plyOk(root, ['exec', 'worker', 'ls', '/sys/class/net']), 'eth0\nlo\n');
    assert.equal(ply(root, ['network', 'disconnect', 'front', 'worker']).code, 1);
    // --network container:NAME shares the other's namespace, hostname and files.
    assert.equal(plyOk(root, ['run', '--rm', '--network', 'container:worker', 'bb', 'sh', '-c', 'ip -4 -o addr show eth0 | awk "{print \\$4}"']), `${back}.50/24\n`);
  } finally {
    ply(root, ['rm', '-f', 'api', 'worker']);
  }
  const frontBridge = inspect('front', '{{.Id}}').slice(0, 12);
  assert.ok(links().includes(`br-${frontBridge}`));
  assert.equal(plyOk(root, ['network', 'rm', 'front', 'back']), 'front\nback\n');
  assert.ok(!links().includes(`br-${frontBridge}`), 'network rm removes the bridge');
  assert.doesNotMatch(nft('list', 'table', 'ip', names.table).stdout, /br-/);
  assert.equal(ply(root, ['network', 'rm', 'bridge']).stderr, 'Error: bridge is a pre-defined network and cannot be removed\n');
  const missing = ply(root, ['network', 'inspect', 'front']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '[]\n');
});

test('--ip-range: containers get addresses only from the range, the gateway is its first without --gateway; docker\'s checks', () => {
  // docker 20.10 with the docker CLI 28, recorded: the CLI's own checks print bare and exit 1.
  const refused = (args: string[], stderr: string) => {
    const r = ply(root, ['network', 'create', ...args, 'ranged']);
    assert.deepEqual([r.code, r.stderr], [1, stderr], args.join(' '));
  };
  refused(['--ip-range', '10.239.0.0/25'], 'every ip-range or gateway must have a corresponding subnet\n');
  refused(['--subnet', '10.239.0.0/24', '--ip-range', '10.239.0.0/25', '--ip-range', '10.239.0.128/25'], 'every ip-range or gateway must have a corresponding subnet\n');
  refused(['--subnet', '10.239.0.0/24', '--ip-range', 'bogus'], 'invalid CIDR address: bogus\n');
  refused(['--subnet', '10.239.0.0/24', '--ip-range', '10.239.0.7'], 'invalid CIDR address: 10.239.0.7\n');
  refused(['--subnet', '10.239.0.0/24', '--ip-range', '10.239.1.0/25'], 'no matching subnet for range 10.239.1.0/25\n');
  refused(['--subnet', '10.239.0.0/24', '--gateway', '10.239.1.1'], 'no matching subnet for gateway 10.239.1.1\n');
  // The daemon's: no address left for the gateway.
  refused(['--subnet', '10.239.0.0/24', '--ip-range', '10.239.0.0/32'], 'Error: failed to allocate gateway (): No available addresses on this pool\n');
  assert.equal(ply(root, ['network', 'inspect', 'ranged']).code, 1, 'nothing was created');

  const p = createOnFreeSubnet('ranged', '--ip-range', '%p.200/31');
  const ipOf = (c: string) => inspect(c, '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}');
  try {
    assert.equal(inspect('ranged', '{{json .IPAM.Config}}'), `[{"Subnet":"${p}.0/24","IPRange":"${p}.200/31","Gateway":"${p}.1"}]`);
    plyOk(root, ['run', '-d', '--name', 'r1', '--network', 'ranged', 'bb', 'sleep', '600']);
    plyOk(root, ['run', '-d', '--name', 'r2', '--network', 'ranged', 'bb', 'sleep', '600']);
    assert.deepEqual([ipOf('r1'), ipOf('r2')], [`${p}.200`, `${p}.201`]);
    const full = ply(root, ['run', '--rm', '--network', 'ranged', 'bb', 'true']);
    assert.equal(full.code, 125);
    assert.match(full.stderr, /^Error: no available IPv4 addresses on this network's address pools: ranged \([0-9a-f]{64}\)\n$/);
    assert.match(plyOk(root, ['exec', 'r2', 'ping', '-c', '1', '-W', '5', `${p}.200`]), /1 packets received/);
    plyOk(root, ['rm', '-f', 'r1']);
    plyOk(root, ['run', '-d', '--name', 'r3', '--network', 'ranged', 'bb', 'sleep', '600']);
    assert.equal(ipOf('r3'), `${p}.200`, 'a freed address of the range is given again');
    plyOk(root, ['rm', '-f', 'r2', 'r3']);
    plyOk(root, ['network', 'rm', 'ranged']);
    // Without --gateway, docker's IPAM takes the gateway from the range too.
    plyOk(root, ['network', 'create', '--subnet', `${p}.0/24`, '--ip-range', `${p}.128/25`, 'ranged']);
    assert.equal(inspect('ranged', '{{range .IPAM.Config}}{{.IPRange}} {{.Gateway}}{{end}}'), `${p}.128/25 ${p}.128`);
    plyOk(root, ['run', '-d', '--name', 'r4', '--network', 'ranged', 'bb', 'sleep', '600']);
    assert.equal(ipOf('r4'), `${p}.129`);
    assert.equal(inspect('r4', '{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}'), `${p}.128`);
    assert.match(plyOk(root, ['exec', 'r4', 'ping', '-c', '1', '-W', '5', `${p}.128`]), /1 packets received/);
  } finally {
    ply(root, ['rm', '-f', 'r1', 'r2', 'r3', 'r4']);
    ply(root, ['network', 'rm', 'ranged']);
  }
});

test('--internal networks reach nothing outside', () => {
  plyOk(root, ['network', 'create', '--internal', 'sealed']);
  const outp = plyOk(root, ['run', '--rm', '--network', 'sealed', 'bb', 'sh', '-c', 'ip route | grep -c default; true']);
  assert.equal(outp, '0\n');
  plyOk(root, ['network', 'rm', 'sealed']);
});

// docker 20.10 side by side (/work/shared/tools/docker-reference.sh): prune removes every network no running
// container is attached to (a created or stopped container configured for one does not keep it, and starting it
// fails afterwards); `label` needs every given label, `label!` keeps a network that has every given one; `until`
// keeps networks created after the time; an unknown filter is refused; system prune removes networks as well.
test('network prune as docker\'s: only running containers keep a network; label, label! and until filters; system prune', async () => {
  const deleted = (out: string) => {
    const m = /^Deleted Networks:\n([\s\S]*?)\n\n$/.exec(out);
    assert.ok(m || out === '', out);
    return m ? m[1]!.split('\n').sort() : [];
  };
  plyOk(root, ['network', 'create', 'spare']);
  plyOk(root, ['network', 'create', 'busy']);
  plyOk(root, ['network', 'create', '--label', 'keep=yes', '--label', 'tier=db', 'kept']);
  plyOk(root, ['network', 'create', '--label', 'keep=no', 'tossed']);
  plyOk(root, ['create', '--name', 'keeper', '--network', 'spare', 'bb', 'true']);
  plyOk(root, ['run', '--name', 'stopped', '--network', 'tossed', 'bb', 'true']);
  assert.equal(ply(root, ['run', '--name', 'three', '--network', 'tossed', 'bb', 'sh', '-c', 'exit 3']).code, 3);
  plyOk(root, ['run', '-d', '--name', 'busyc', '--network', 'busy', 'bb', 'sleep', '600']);
  const bridges = ['spare', 'busy', 'kept', 'tossed'].map((n) => `br-${inspect(n, '{{.Id}}').slice(0, 12)}`);
  assert.ok(links().includes(bridges[1]!), 'the running container\'s network has its bridge up');
  try {
    const bad = ply(root, ['network', 'prune', '-f', '--filter', 'foo=bar']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^Error: invalid filter 'foo'\n$/i);
    // label! with two values keeps only what has both.
    assert.deepEqual(deleted(plyOk(root, ['network', 'prune', '-f', '--filter', 'label!=keep=yes', '--filter', 'label!=tier=db'])), ['spare', 'tossed']);
    // Starting a container whose network is gone (docker 20.10 recorded: "Error response from daemon: network spare
    // not found" / "Error: failed to start containers: keeper", exit 1; State.ExitCode 128, or the last exit code).
    const start = ply(root, ['start', 'keeper']);
    assert.deepEqual([start.code, start.stderr], [1, 'Error: network spare not found\nError: failed to start containers: keeper\n']);
    assert.equal(inspect('keeper', '{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}'), 'created 128 network spare not found');
    const again = ply(root, ['start', 'stopped']);
    assert.deepEqual([again.code, again.stderr], [1, 'Error: network tossed not found\nError: failed to start containers: stopped\n']);
    assert.match(plyOk(root, ['ps', '-a', '--filter', 'name=stopped', '--format', '{{.Status}}']), /^Exited \(128\) /);
    const restart = ply(root, ['restart', 'stopped']);
    assert.deepEqual([restart.code, restart.stderr], [1, 'Error: Cannot restart container stopped: network tossed not found\n']);
    assert.equal(ply(root, ['start', 'three']).code, 1);
    assert.equal(inspect('three', '{{.State.Status}} {{.State.ExitCode}}'), 'exited 3');
    assert.deepEqual(deleted(plyOk(root, ['network', 'prune', '-f', '--filter', 'label=keep=no'])), []);
    assert.deepEqual(deleted(plyOk(root, ['network', 'prune', '-f', '--filter', 'label=keep'])), ['kept']);
    // until: only networks created before the time.
    plyOk(root, ['network', 'create', 'old']);
    await sleep(1100);
    const t = (Date.now() / 1000).toFixed(3);
    await sleep(50);
    plyOk(root, ['network', 'create', 'young']);
    assert.deepEqual(deleted(plyOk(root, ['network', 'prune', '-f', '--filter', `until=${t}`])), ['old']);
    const sys = plyOk(root, ['system', 'prune', '-f']);
    assert.match(sys, /^Deleted Networks:\nyoung\n\n/m);
    assert.deepEqual(
      plyOk(root, ['network', 'ls', '--format', '{{.Name}}']).trim().split('\n'),
      ['bridge', 'busy', 'host', 'none'],
      'the running container\'s network survives both prunes',
    );
    assert.equal(inspect('busyc', '{{.State.Running}}'), 'true');
  } finally {
    ply(root, ['rm', '-f', 'busyc', 'keeper', 'stopped', 'three']);
  }
  assert.deepEqual(deleted(plyOk(root, ['network', 'prune', '-f'])), ['busy']);
  // Their bridges and firewall rules went with them.
  assert.deepEqual(links().filter((l) => bridges.includes(l)), []);
  assert.doesNotMatch(nft('list', 'table', 'ip', names.table).stdout, /br-/);
});

/** A tiny DNS server on the host (udp, 127.x.y.z:53) answering A queries for `name` with `ip`; counts queries. */
async function upstreamDns(name: string, ip: string): Promise<{ address: string; queries: string[]; close: () => void }> {
  const sock = dgram.createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (q, from) => {
    if (q.length < 17) return;
    const labels: string[] = [];
    let i = 12;
    while (i < q.length && q[i]! > 0) {
      labels.push(q.subarray(i + 1, i + 1 + q[i]!).toString());
      i += q[i]! + 1;
    }
    const qname = labels.join('.').toLowerCase();
    queries.push(qname);
    const question = q.subarray(12, i + 5);
    const qtype = q.readUInt16BE(i + 1);
    const hit = qname === name && qtype === 1;
    // NOERROR for the name (no AAAA record, but the name exists), NXDOMAIN for any other.
    const header = Buffer.from([q[0]!, q[1]!, 0x81, qname === name ? 0x80 : 0x83, 0, 1, 0, hit ? 1 : 0, 0, 0, 0, 0]);
    const answer = hit ? Buffer.concat([Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]), Buffer.from(ip.split('.').map(Number))]) : Buffer.alloc(0);
    sock.send(Buffer.concat([header, question, answer]), from.port, from.address);
  });
  // A loopback address of its own, so no other DNS server on the host is in the way.
  for (let i = 0; ; i++) {
    const address = `127.53.${(process.pid >>> 8) & 255}.${(process.pid + i) % 250 + 2}`;
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(53, address, () => resolve());
      });
      return { address, queries, close: () => sock.close() };
    } catch (e) {
      if (i > 20) throw e;
    }
  }
}

test('user networks: --dns servers answer the names outside the network (aardvark\'s upstreams); rename resolves the new name', async () => {
  const dns = await upstreamDns('upstream-probe.example', '10.99.88.77');
  try {
    createOnFreeSubnet('names');
    // The client runs while this process serves DNS: asynchronously.
    const r = await plyAsync(root, ['run', '--rm', '--network', 'names', '--dns', dns.address, 'bb', 'sh', '-c',
      'cat /etc/resolv.conf; nslookup upstream-probe.example']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const gw = inspect('names', '{{range .IPAM.Config}}{{.Gateway}}{{end}}');
    assert.match(r.stdout, new RegExp(`^nameserver ${gw.replace(/\./g, '\\.')}$`, 'm'), 'the container asks the network\'s server');
    assert.match(r.stdout, /Address( 1)?:\s+10\.99\.88\.77/);
    assert.ok(dns.queries.includes('upstream-probe.example'), `the --dns server was asked: ${dns.queries.join(',')}`);

    // rename: the new name answers at once, the old one no more.
    plyOk(root, ['run', '-d', '--name', 'before', '--network', 'names', 'bb', 'sleep', '600']);
    const ip = inspect('before', '{{.NetworkSettings.Networks.names.IPAddress}}');
    plyOk(root, ['rename', 'before', 'after']);
    const look = plyOk(root, ['run', '--rm', '--network', 'names', 'bb', 'sh', '-c',
      'nslookup after | tail -n +3; echo ---; nslookup before >/dev/null 2>&1 && echo old-name-resolves; true']);
    assert.match(look, new RegExp(`Address( 1)?:\\s+${ip.replace(/\./g, '\\.')}`), look);
    assert.doesNotMatch(look, /old-name-resolves/);
    assert.deepEqual(JSON.parse(inspect('after', '{{json .NetworkSettings.Networks.names.DNSNames}}')).slice(0, 1), ['after']);
  } finally {
    dns.close();
    ply(root, ['rm', '-f', 'after', 'before']);
    ply(root, ['network', 'rm', 'names']);
  }
});

test('a detached run inside $(...) returns at once: the supervisor and the DNS server keep none of the caller\'s descriptors', () => {
  createOnFreeSubnet('fds');
  try {
    // The caller's pipe is also at descriptor 200 (a script's `exec 200>…` or a pipeline's extra descriptor):
    // a supervisor or aardvark that inherited it would keep the substitution waiting for the container's end.
    for (const network of ['bridge', 'fds']) {
      const t0 = Date.now();
      const r = spawnSync('bash', ['-c', `id=$("${PLY}" run -d --network ${network} bb sleep 600 200>&1); echo "$id"`], {
        env: { ...process.env, PLY_ROOT: root },
        encoding: 'utf8',
        timeout: 90_000,
      });
      const took = Date.now() - t0;
      assert.equal(r.status, 0, `${network}: ${r.stderr} (signal ${r.signal}, ${took} ms)`);
      assert.match(r.stdout, /^[0-9a-f]{64}\n$/);
      assert.ok(took < 60_000, `${network}: returned after ${took} ms`);
    }
  } finally {
    for (const id of plyOk(root, ['ps', '-q']).trim().split('\n').filter(Boolean)) ply(root, ['rm', '-f', id]);
    ply(root, ['network', 'rm', 'fds']);
  }
});

test('address pools: networks take the next free subnet of PLY_ADDRESS_POOLS; when all are taken, one clear line', () => {
  const prefix = createOnFreeSubnet('probe');
  plyOk(root, ['network', 'rm', 'probe']);
  const env = { PLY_ADDRESS_POOLS: `base=${prefix}.0/24,size=25` };
  try {
    plyOk(root, ['network', 'create', 'pool1'], { env });
    plyOk(root, ['network', 'create', 'pool2'], { env });
    assert.equal(inspect('pool1', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}'), `${prefix}.0/25 ${prefix}.1`);
    assert.equal(inspect('pool2', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}'), `${prefix}.128/25 ${prefix}.129`);
    assert.equal(plyOk(root, ['run', '--rm', '--network', 'pool2', 'bb', 'sh', '-c', 'ip -4 -o addr show eth0 | awk "{print \\$4}"']), `${prefix}.130/25\n`);
    const full = ply(root, ['network', 'create', 'pool3'], { env });
    assert.equal(full.code, 1);
    assert.match(full.stderr, /^Error: could not find an available, non-overlapping IPv4 address pool .*PLY_ADDRESS_POOLS \(base=[^)]*\).*\n$/);
    assert.equal(full.stderr.split('\n').length, 2, 'one line');
    assert.equal(ply(root, ['network', 'inspect', 'pool3']).code, 1, 'nothing half-made');
    const bad = ply(root, ['network', 'create', 'pool4'], { env: { PLY_ADDRESS_POOLS: 'base=10.0.0.0/16,size=8' } });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^Error: invalid address pool "base=10\.0\.0\.0\/16,size=8": size must be between 16 and 30\n$/);
  } finally {
    ply(root, ['network', 'rm', 'pool1', 'pool2']);
  }
});

/** A /30 no route of the host covers, for a veth to a namespace of the test's own (candidates follow the pid). */
function freeLinkNet(): string {
  const routes = hostRoutesText();
  for (let i = 0; i < 400; i++) {
    const h = process.pid * 13 + i;
    const prefix = `10.${232 + (h % 8)}.${(h >>> 3) % 256}`;
    const last = ((h >>> 11) % 64) * 4;
    if (!routes.some((r) => inSubnet(`${prefix}.${last}`, r) || inSubnet(r.split('/')[0]!, `${prefix}.${last}/30`))) return `${prefix}.${last}`;
  }
  throw new Error('no free /30');
}

/** The host's IPv4 routes as CIDRs (ip route), including other stores' bridges. */
function hostRoutesText(): string[] {
  return spawnSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((d) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(d))
    .map((d) => (d.includes('/') ? d : `${d}/32`));
}

test('outbound traffic is masqueraded: a container reaches a server in another namespace as the host, from the default bridge and a user network', async () => {
  // A namespace of this test's own behind a veth from the host (not on any ply bridge): the server there has no
  // route to the containers' subnets, so it answers only if their traffic leaves the host as the host's address.
  const tag = `${process.pid.toString(16)}`.slice(-6);
  const ns = `plymasq-${tag}`;
  const [hostIf, nsIf] = [`pmh${tag}`, `pmn${tag}`];
  const base = freeLinkNet();
  const pre = base.split('.').slice(0, 3).join('.');
  const last = Number(base.split('.')[3]);
  const [hostIp, nsIp] = [`${pre}.${last + 1}`, `${pre}.${last + 2}`];
  const www = tempDir();
  fs.mkdirSync(`${www}/cgi-bin`);
  fs.writeFileSync(`${www}/cgi-bin/addr`, '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "from $REMOTE_ADDR"\n', { mode: 0o755 });
  const ip = (...args: string[]) => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
  };
  let server: ReturnType<typeof spawn> | undefined;
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns);
    ip('addr', 'add', `${hostIp}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('-n', ns, 'addr', 'add', `${nsIp}/30`, 'dev', nsIf);
    ip('-n', ns, 'link', 'set', nsIf, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    server = spawn('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', `${nsIp}:8080`, '-h', www], { stdio: 'ignore' });
    const url = `http://${nsIp}:8080/cgi-bin/addr`;
    await until(() => spawnSync('ip', ['netns', 'exec', ns, 'busybox', 'wget', '-qO-', url], { encoding: 'utf8' }).stdout === `from ${nsIp}\n`, 'the server in the namespace');
    const fetch = `${retry(`wget -qO- ${url}`)}`;
    assert.equal(plyOk(root, ['run', '--rm', 'bb', 'sh', '-c', fetch]), `from ${hostIp}\n`, 'from the default bridge');
    createOnFreeSubnet('outbound');
    assert.equal(plyOk(root, ['run', '--rm', '--network', 'outbound', 'bb', 'sh', '-c', fetch]), `from ${hostIp}\n`, 'from a user network');
    // An internal network does not get out at all.
    plyOk(root, ['network', 'create', '--internal', 'inside']);
    assert.equal(plyOk(root, ['run', '--rm', '--network', 'inside', 'bb', 'sh', '-c', `wget -T 3 -qO- ${url} || echo unreachable`]), 'unreachable\n');
  } finally {
    server?.kill('SIGKILL');
    spawnSync('ip', ['link', 'del', hostIf], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    ply(root, ['network', 'rm', 'outbound', 'inside']);
  }
});

test('kill -9 of the supervisor and the container: system check --repair gives back the address and the ports', async () => {
  const hostPort = await freePort();
  const id = plyOk(root, ['run', '-d', '--name', 'victim', '-p', `${hostPort}:80`, 'bb', ...WEB]).trim();
  await get(`http://127.0.0.1:${hostPort}/index.html`);
  const pid = Number(inspect('victim', '{{.State.Pid}}'));
  const ip = inspect('victim', '{{.NetworkSettings.IPAddress}}');
  // Kill the monitor (ply's supervisor), then the container's process: nothing runs ply's clean-up.
  const monitors = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== pid).filter((p) => {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      return cmd.includes(id) && cmd.includes('monitor');
    } catch {
      return false;
    }
  });
  assert.equal(monitors.length, 1);
  process.kill(Number(monitors[0]), 'SIGKILL');
  process.kill(pid, 'SIGKILL');
  const monitor = pid;
  await gone(() => !fs.existsSync(`/proc/${monitor}`), 'the container process');
  assert.match(hostports(), new RegExp(`dport ${hostPort}\\b`), 'the rule outlives the killed supervisor');
  const check = ply(root, ['system', 'check', '--repair']);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.doesNotMatch(hostports(), /dnat/);
  await gone(() => bridgePorts(names.defaultBridge).length === 0, 'the veth of the killed container');
  assert.equal(inspect('victim', '{{.State.Status}}'), 'exited');
  // Its address is free again: the next container on an empty network gets it.
  assert.equal(inspect('bridge', '{{len .Containers}}'), '0');
  const next = plyOk(root, ['run', '--rm', 'bb', 'sh', '-c', 'ip -4 -o addr show eth0 | awk "{print \\$4}"']).trim().split('/')[0];
  assert.equal(next, ip);
  plyOk(root, ['rm', 'victim']);
});

test('ply build: RUN on the default bridge, --network none and host honoured', () => {
  const ctx = tempDir();
  fs.writeFileSync(`${ctx}/Dockerfile`, 'FROM bb\nRUN ls /sys/class/net | tr "\\n" " " > /links\n');
  plyOk(root, ['build', '-q', '-t', 'links:bridge', ctx]);
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', 'links:bridge', 'cat', '/links']), 'eth0 lo ');
  plyOk(root, ['build', '-q', '--network', 'none', '-t', 'links:none', ctx]);
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', 'links:none', 'cat', '/links']), 'lo ');
  const nope = ply(root, ['build', '-q', '--network', 'nope', ctx]);
  assert.notEqual(nope.code, 0);
  assert.match(nope.stderr, /network nope not found/);
});
