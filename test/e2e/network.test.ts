// End-to-end: container networking through bin/ply and the real runc: network modes, the default bridge,
// user networks with DNS, published ports, isolation, and that nothing is left behind (veths, rules, addresses).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { busyboxTar, ply, plyOk, tempDir } from '../helpers.js';
import { storeNames } from '../../src/network/host.js';

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

/** GET through the host's network stack, retried while the server starts. */
async function get(url: string, tries = 40): Promise<string> {
  for (let i = 0; ; i++) {
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
      if (i >= tries) throw e;
      await sleep(100);
    }
  }
}

/** Waits until the kernel has freed what a stopped container's namespace held (it does so asynchronously). */
async function gone(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (pred()) return;
    await sleep(50);
  }
  assert.fail(`still there after 5 s: ${what}`);
}

const WEB = ['sh', '-c', 'echo hello-from-$(hostname) > /index.html; exec httpd -f -p 80 -h /'];

test('--network none: a namespace of its own with only lo; host: the host\'s; unknown: docker\'s error, 125', () => {
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', 'bb', 'ls', '/sys/class/net']), 'lo\n');
  assert.equal(plyOk(root, ['run', '--rm', '--net', 'none', 'bb', 'ls', '/sys/class/net']), 'lo\n');
  const hostLinks = plyOk(root, ['run', '--rm', '--network', 'host', 'bb', 'ls', '/sys/class/net']).trim().split('\n');
  assert.deepEqual(hostLinks.sort(), links().sort());
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
  assert.match(cidr, /^(172|192)\.\d+\.\d+\.\d+\/(16|20)$/);
  const subnet = inspect('bridge', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}');
  const [net, gw] = subnet.split(' ');
  assert.equal(cidr.split('/')[1], net!.split('/')[1]);
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
  const id = plyOk(root, ['run', '-d', '--name', 'web', '-p', '127.0.0.1:18281:80', '-p', '18282:80', '-p', '80', 'bb', ...WEB]).trim();
  try {
    assert.equal(await get('http://127.0.0.1:18281/index.html'), `hello-from-${id.slice(0, 12)}\n`);
    assert.equal(await get('http://127.0.0.1:18282/index.html'), `hello-from-${id.slice(0, 12)}\n`);
    const lines = plyOk(root, ['port', 'web']).trim().split('\n');
    assert.equal(lines.length, 3);
    assert.ok(lines.includes('80/tcp -> 127.0.0.1:18281'), lines.join('\n'));
    assert.ok(lines.includes('80/tcp -> 0.0.0.0:18282'));
    const random = lines.find((l) => !/1828[12]$/.test(l))!;
    const port = Number(random.split(':')[1]);
    assert.ok(port > 1024, random);
    assert.equal(await get(`http://127.0.0.1:${port}/index.html`), `hello-from-${id.slice(0, 12)}\n`);
    assert.equal(plyOk(root, ['port', 'web', '80/tcp']).split('\n').length, 4);
    const miss = ply(root, ['port', 'web', '81']);
    assert.equal(miss.code, 1);
    assert.equal(miss.stderr, "Error: No public port '81/tcp' published for web\n");
    const ports = JSON.parse(inspect('web', '{{json .NetworkSettings.Ports}}')) as Record<string, { HostIp: string; HostPort: string }[]>;
    assert.deepEqual(ports['80/tcp']!.map((b) => `${b.HostIp}:${b.HostPort}`).sort(), ['0.0.0.0:18282', `0.0.0.0:${port}`, '127.0.0.1:18281'].sort());
    assert.equal(inspect('web', '{{json .HostConfig.PortBindings}}'), '{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18281"},{"HostIp":"","HostPort":"18282"},{"HostIp":"","HostPort":""}]}');
    const ip = inspect('web', '{{.NetworkSettings.IPAddress}}');
    assert.equal(inspect('web', '{{.NetworkSettings.Networks.bridge.IPAddress}}'), ip);
    assert.match(plyOk(root, ['ps', '--format', '{{.Ports}}']), /127\.0\.0\.1:18281->80\/tcp/);
    // A second container cannot take a host port in use.
    const busy = ply(root, ['run', '--rm', '-p', '18282:80', 'bb', 'true']);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /port is already allocated/);
    // -P: every exposed port (the image's EXPOSE 80) on a random port.
    const all = plyOk(root, ['run', '-d', '-P', 'bb', ...WEB]).trim();
    const p2 = Number(plyOk(root, ['port', all, '80']).trim().split(':')[1]);
    assert.equal(await get(`http://127.0.0.1:${p2}/index.html`), `hello-from-${all.slice(0, 12)}\n`);
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
  plyOk(root, ['network', 'create', '--subnet', '10.231.60.0/24', '--gateway', '10.231.60.1', 'back']);
  const dup = ply(root, ['network', 'create', 'front']);
  assert.equal(dup.code, 1);
  assert.equal(dup.stderr, 'Error: network with name front already exists\n');
  assert.match(plyOk(root, ['network', 'ls', '--format', '{{.Name}} {{.Driver}}']), /^back bridge\nbridge bridge\nfront bridge\nhost host\nnone null\n$/);
  plyOk(root, ['run', '-d', '--name', 'api', '--network', 'front', '--network-alias', 'service', 'bb', ...WEB]);
  try {
    const client = plyOk(root, ['run', '--rm', '--network', 'front', 'bb', 'sh', '-c',
      'for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://api/index.html && break; sleep 0.2; done; wget -qO- http://service/index.html; grep nameserver /etc/resolv.conf']);
    const apiId = inspect('api', '{{.Id}}').slice(0, 12);
    const gw = inspect('front', '{{range .IPAM.Config}}{{.Gateway}}{{end}}');
    assert.equal(client, `hello-from-${apiId}\nhello-from-${apiId}\nnameserver ${gw}\n`);
    const apiIp = inspect('api', '{{.NetworkSettings.Networks.front.IPAddress}}');
    assert.equal(JSON.parse(plyOk(root, ['network', 'inspect', 'front']))[0].Containers[inspect('api', '{{.Id}}')].IPv4Address.split('/')[0], apiIp);
    // Another network reaches neither the name nor the address.
    const other = plyOk(root, ['run', '--rm', '--network', 'back', 'bb', 'sh', '-c',
      `nslookup api >/dev/null 2>&1 && echo resolved; echo | nc -w 2 ${apiIp} 80 >/dev/null 2>&1 && echo connected; ip -4 -o addr show eth0 | awk '{print $4}'`]);
    assert.doesNotMatch(other, /resolved|connected/);
    assert.match(other, /^10\.231\.60\.\d+\/24$/m);
    assert.doesNotMatch(plyOk(root, ['run', '--rm', 'bb', 'sh', '-c', `echo | nc -w 2 ${apiIp} 80 >/dev/null 2>&1 && echo connected; true`]), /connected/);
    // --ip on a network with a user subnet; connect a running container to a second network.
    plyOk(root, ['run', '-d', '--name', 'worker', '--network', 'back', '--ip', '10.231.60.50', 'bb', 'sleep', '60']);
    assert.equal(inspect('worker', '{{.NetworkSettings.Networks.back.IPAddress}}'), '10.231.60.50');
    plyOk(root, ['network', 'connect', '--alias', 'w2', 'front', 'worker']);
    assert.equal(plyOk(root, ['exec', 'worker', 'sh', '-c', 'ls /sys/class/net | tr "\\n" " "; wget -qO- http://api/index.html']), `eth0 eth1 lo hello-from-${apiId}\n`);
    const inUse = ply(root, ['network', 'rm', 'front']);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /has active endpoints/);
    plyOk(root, ['network', 'disconnect', 'front', 'worker']);
    assert.equal(plyOk(root, ['exec', 'worker', 'ls', '/sys/class/net']), 'eth0\nlo\n');
    assert.equal(ply(root, ['network', 'disconnect', 'front', 'worker']).code, 1);
    // --network container:NAME shares the other's namespace, hostname and files.
    assert.equal(plyOk(root, ['run', '--rm', '--network', 'container:worker', 'bb', 'sh', '-c', 'ip -4 -o addr show eth0 | awk "{print \\$4}"']), '10.231.60.50/24\n');
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

test('--internal networks reach nothing outside; network prune removes unused networks', () => {
  plyOk(root, ['network', 'create', '--internal', 'sealed']);
  const outp = plyOk(root, ['run', '--rm', '--network', 'sealed', 'bb', 'sh', '-c', 'ip route | grep -c default; true']);
  assert.equal(outp, '0\n');
  plyOk(root, ['network', 'create', 'spare']);
  plyOk(root, ['create', '--name', 'keeper', '--network', 'spare', 'bb', 'true']);
  assert.equal(plyOk(root, ['network', 'prune', '-f']), 'Deleted Networks:\nsealed\n\n');
  plyOk(root, ['rm', 'keeper']);
  assert.equal(plyOk(root, ['network', 'prune', '-f']), 'Deleted Networks:\nspare\n\n');
});

test('kill -9 of the supervisor and the container: system check --repair gives back the address and the ports', async () => {
  const id = plyOk(root, ['run', '-d', '--name', 'victim', '-p', '18290:80', 'bb', ...WEB]).trim();
  await get('http://127.0.0.1:18290/index.html');
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
  assert.match(hostports(), /dport 18290/, 'the rule outlives the killed supervisor');
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
