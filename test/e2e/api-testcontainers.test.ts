// End-to-end: testcontainers-node (over its own dockerode) drives ply through the Docker Engine API of
// `ply system service`, as a Java/Node test suite would every day: GenericContainer with a command, exposed ports
// mapped on the host, wait strategies (a log message; listening ports, checked by exec inside the container and
// from the host), environment, files and content copied in, exec, logs, a network with two containers reaching
// each other by alias, stop, and nothing left behind; an image pulled from a private registry with a login.
// Ryuk (testcontainers' reaper) is an image from Docker Hub, which is offline here: TESTCONTAINERS_RYUK_DISABLED
// is set, and each test stops what it started. busybox is in the store under the name testcontainers would pull
// (busybox:1.36), so its default pull policy finds it locally and never reaches for Docker Hub. Run inside a
// container (/.dockerenv), testcontainers reaches published ports through the default bridge's gateway, read
// from `GET /networks/bridge` (were there none, it would run alpine from Docker Hub to find one).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { plyOk, tempDir } from '../helpers.js';
import { dockerOk, request, startPlyApi, type PlyApi } from '../api-peer.js';
import { startDistribution, type Distribution } from '../registry-peer.js';

const IMAGE = 'busybox:1.36';
let api: PlyApi;
/** A private registry (user and password) holding busybox as PRIVATE, logged in to through the docker CLI. */
let registry: Distribution;
let PRIVATE = '';
let tc: typeof import('testcontainers');
/** The host testcontainers should reach containers' published ports at. */
let expectedHost = 'localhost';

before(async () => {
  api = await startPlyApi();
  plyOk(api.root, ['tag', 'bb', IMAGE]);
  // The default bridge has its gateway before any container used it, as dockerd's has from its start.
  const bridge = JSON.parse((await request(api, 'GET', '/networks/bridge')).body) as { IPAM: { Config: { Gateway?: string }[] } };
  const gateway = bridge.IPAM.Config[0]?.Gateway;
  assert.match(gateway ?? '', /^\d+\.\d+\.\d+\.1$/);
  if (fs.existsSync('/.dockerenv')) expectedHost = gateway!;
  registry = await startDistribution({ user: 'alice', password: 'secret' });
  PRIVATE = `${registry.domain}/tc/busybox:1.36`;
  dockerOk(api, ['tag', 'bb', PRIVATE]);
  dockerOk(api, ['login', '-u', 'alice', '--password-stdin', registry.domain], { input: 'secret\n' });
  dockerOk(api, ['push', PRIVATE]);
  dockerOk(api, ['rmi', PRIVATE]);
  // testcontainers reads its environment and the docker config (the login's) once, when it is first loaded.
  process.env.DOCKER_HOST = api.env.DOCKER_HOST;
  process.env.DOCKER_CONFIG = api.env.DOCKER_CONFIG;
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  process.env.HOME = tempDir('ply-tc-home-'); // no ~/.testcontainers.properties or docker config of the user's
  tc = await import('testcontainers');
});
after(async () => {
  await api?.stop();
  await registry?.stop();
});

/** An HTTP GET from the host: status and body. */
function get(host: string, port: number, p = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host, port, path: p }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

test('testcontainers: command, env, copied files and content, exposed port reached from the host, exec, logs, stop', async () => {
  const { GenericContainer, Wait } = tc;
  const host = tempDir('ply-tc-files-');
  fs.writeFileSync(path.join(host, 'index.html'), 'served from a copied file\n');
  const c = await new GenericContainer(IMAGE)
    .withCommand(['sh', '-c', 'echo "greeting=$GREETING"; exec httpd -f -v -p 8080 -h /www'])
    .withEnvironment({ GREETING: 'hello from the env' })
    .withExposedPorts(8080)
    .withCopyFilesToContainer([{ source: path.join(host, 'index.html'), target: '/www/index.html' }])
    .withCopyContentToContainer([{ content: 'copied content\n', target: '/www/content.txt', mode: 0o644 }])
    .withWaitStrategy(Wait.forListeningPorts())
    .start();
  try {
    const port = c.getMappedPort(8080);
    assert.notEqual(port, 8080);
    assert.equal(c.getHost(), expectedHost);
    assert.deepEqual(await get(c.getHost(), port, '/index.html'), { status: 200, body: 'served from a copied file\n' });
    assert.deepEqual(await get(c.getHost(), port, '/content.txt'), { status: 200, body: 'copied content\n' });
    assert.equal((await get(c.getHost(), port, '/missing')).status, 404);
    // Files copied into the running container.
    await c.copyContentToContainer([{ content: 'added later\n', target: '/www/later.txt' }]);
    assert.deepEqual(await get(c.getHost(), port, '/later.txt'), { status: 200, body: 'added later\n' });
    const r = await c.exec(['sh', '-c', 'echo "$GREETING"; echo to-stderr >&2; exit 4']);
    assert.equal(r.exitCode, 4);
    assert.equal(r.stdout, 'hello from the env\n');
    assert.equal(r.stderr, 'to-stderr\n');
    const logs = await c.logs();
    let out = '';
    await new Promise<void>((resolve, reject) => {
      logs.on('data', (d: Buffer | string) => {
        out += d;
        if (out.includes('greeting=hello from the env')) resolve();
      });
      logs.on('error', reject);
      setTimeout(() => reject(new Error(`logs: ${out}`)), 10_000).unref();
    });
    logs.destroy();
  } finally {
    const stopped = await c.stop();
    assert.equal(stopped.getId(), c.getId());
  }
  assert.equal(plyOk(api.root, ['ps', '-a', '-q']), '', 'stop() removes the container (testcontainers removes by default)');
});

test('testcontainers: Wait.forLogMessage, and a network of two containers reaching each other by alias', async () => {
  const { GenericContainer, Network, Wait } = tc;
  const network = await new Network().start();
  try {
    const server = await new GenericContainer(IMAGE)
      .withNetwork(network)
      .withNetworkAliases('echo-server')
      .withCommand(['sh', '-c', 'echo ready to serve; while true; do echo pong | nc -l -p 7000; done'])
      .withWaitStrategy(Wait.forLogMessage('ready to serve'))
      .start();
    try {
      const client = await new GenericContainer(IMAGE).withNetwork(network).withCommand(['sleep', '60']).start();
      try {
        const r = await client.exec(['sh', '-c', 'echo ping | nc -w 3 echo-server 7000']);
        assert.deepEqual([r.exitCode, r.output.trim()], [0, 'pong']);
        const ip = server.getIpAddress(network.getName());
        assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
      } finally {
        await client.stop();
      }
    } finally {
      await server.stop();
    }
  } finally {
    await network.stop();
  }
  assert.equal(plyOk(api.root, ['ps', '-a', '-q']), '');
  assert.doesNotMatch(plyOk(api.root, ['network', 'ls', '--format', '{{.Name}}']), new RegExp(network.getName()));
});

test('testcontainers: everyday options (name, labels, user, workdir, entrypoint, tmpfs, bind mount, extra hosts, limits, no-new-privileges), health check, http and command waits', async () => {
  const { GenericContainer, Wait } = tc;
  const bind = tempDir('ply-tc-bind-');
  fs.writeFileSync(path.join(bind, 'f'), 'bound\n');
  const c = await new GenericContainer(IMAGE)
    .withName('tc-everyday')
    .withLabels({ team: 'ply' })
    .withEntrypoint(['sh', '-c'])
    .withCommand(['mkdir -p /tmp/www && echo ok > /tmp/www/health && touch /tmp/ready && exec httpd -f -p 8080 -h /tmp/www'])
    .withWorkingDir('/tmp')
    .withTmpFs({ '/scratch': 'rw,size=1m' })
    .withBindMounts([{ source: bind, target: '/bound', mode: 'ro' }])
    .withExtraHosts([{ host: 'db.example', ipAddress: '10.1.2.3' }])
    .withResourcesQuota({ memory: 0.25, cpu: 0.5 })
    .withHostname('tc-host')
    .withSecurityOpt('no-new-privileges:false')
    .withExposedPorts({ container: 8080, host: 0 } as unknown as number)
    .withHealthCheck({ test: ['CMD-SHELL', 'test -f /tmp/ready'], interval: 200, timeout: 1000, retries: 10, startPeriod: 0 })
    .withWaitStrategy(Wait.forAll([Wait.forHealthCheck(), Wait.forHttp('/health', 8080).forStatusCode(200), Wait.forSuccessfulCommand('test -f /tmp/ready')]))
    .withStartupTimeout(20_000)
    .start();
  try {
    assert.equal(c.getName(), '/tc-everyday');
    assert.equal(c.getLabels().team, 'ply');
    assert.equal(c.getHostname(), 'tc-host');
    const r = await c.exec(['sh', '-c', 'pwd; cat /bound/f; grep " /scratch " /proc/mounts | cut -d" " -f3; grep db.example /etc/hosts; hostname; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; grep NoNewPrivs /proc/self/status']);
    assert.equal(r.exitCode, 0, r.output);
    assert.equal(r.stdout, `/tmp\nbound\ntmpfs\n10.1.2.3\tdb.example\ntc-host\n${256 * 1024 * 1024}\nNoNewPrivs:\t0\n`);
    const w = await c.exec(['pwd'], { workingDir: '/bound', user: 'app', env: { X: '1' } });
    assert.equal(w.stdout, '/bound\n');
    assert.equal((await c.exec(['sh', '-c', 'echo $X $(id -un)'], { user: 'app', env: { X: 'x1' } })).stdout, 'x1 app\n');
    // An archive out of the container: the file as a tar entry.
    const tar = await c.copyArchiveFromContainer('/tmp/www/health');
    const chunks: Buffer[] = [];
    for await (const ch of tar) chunks.push(Buffer.from(ch as Buffer));
    const bytes = Buffer.concat(chunks);
    assert.equal(bytes.subarray(0, 6).toString(), 'health');
    assert.ok(bytes.includes('ok\n'));
    // Stop without removing, then restart: same container, same port served again.
    await c.restart();
    assert.deepEqual(await waitGet(c.getHost(), c.getMappedPort(8080), '/health'), { status: 200, body: 'ok\n' });
  } finally {
    await c.stop();
  }
  assert.equal(plyOk(api.root, ['ps', '-a', '-q']), '');
});

/** GET, retried while the server comes up. */
async function waitGet(host: string, port: number, p: string): Promise<{ status: number; body: string }> {
  for (let i = 0; ; i++) {
    try {
      return await get(host, port, p);
    } catch (e) {
      if (i > 100) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test('testcontainers: build from a Dockerfile, commit, stop without removing, reuse, a container that fails to start', async () => {
  const { GenericContainer, Wait } = tc;
  const ctx = tempDir('ply-tc-ctx-');
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${IMAGE}\nARG WHO=nobody\nCOPY hello.txt /hello.txt\nRUN echo "built for $WHO" > /who.txt\nCMD ["cat", "/hello.txt", "/who.txt"]\n`);
  fs.writeFileSync(path.join(ctx, 'hello.txt'), 'hello from the context\n');
  const built = await GenericContainer.fromDockerfile(ctx).withBuildArgs({ WHO: 'testcontainers' }).build('tc-built:1', { deleteOnExit: false });
  const once = await built.withWaitStrategy(Wait.forOneShotStartup()).withAutoRemove(false).start();
  const stopped = await once.stop({ remove: false });
  assert.match(plyOk(api.root, ['logs', stopped.getId()]), /hello from the context\nbuilt for testcontainers\n/);
  plyOk(api.root, ['rm', stopped.getId()]);

  const c = await new GenericContainer(IMAGE).withCommand(['sleep', '60']).withEnvironment({ A: '1' }).withLabels({ reuse: 'me' }).withReuse().start();
  try {
    await c.exec(['sh', '-c', 'echo changed > /changed.txt']);
    const again = await new GenericContainer(IMAGE).withCommand(['sleep', '60']).withEnvironment({ A: '1' }).withLabels({ reuse: 'me' }).withReuse().start();
    assert.equal(again.getId(), c.getId(), 'withReuse finds the running container by its hash');
    const image = await c.commit({ repo: 'tc-committed', tag: 'v1', changes: ['ENV COMMITTED=yes'] });
    assert.match(image, /^sha256:[0-9a-f]{64}$/);
    assert.equal(plyOk(api.root, ['run', '--rm', '--network', 'none', 'tc-committed:v1', 'sh', '-c', 'cat /changed.txt; echo $COMMITTED']), 'changed\nyes\n');
    // dockerode sends commit's query options as its body too (testcontainers' commit above); a body that is a
    // Config overrides the container's, merged as dockerd 20.10 merges it (compared with the reference dockerd:
    // Env ["B=2","A=3","C=yes"] over a container's A=1, Labels merged, Entrypoint and Cmd, then the changes).
    const body = JSON.stringify({ Env: ['B=2', 'A=3'], Cmd: ['echo', 'hi'], Labels: { l: 'v' }, ExposedPorts: { '80/tcp': {} }, User: 'app', WorkingDir: '/tmp', repo: 'ignored' });
    const made = await request(api, 'POST', `/commit?container=${c.getId()}&repo=tc-body&tag=v1&changes=${encodeURIComponent('ENV C=yes')}`, body);
    assert.equal(made.status, 201, made.body);
    const cfg = JSON.parse(plyOk(api.root, ['image', 'inspect', '-f', '{{json .Config}}', 'tc-body:v1'])) as { Env: string[]; Cmd: string[]; Labels: Record<string, string>; ExposedPorts: Record<string, object>; User: string; WorkingDir: string };
    assert.deepEqual(cfg.Env.filter((e) => !e.startsWith('PATH=')), ['B=2', 'A=3', 'C=yes']);
    assert.deepEqual([cfg.Cmd, cfg.Labels.l, cfg.Labels.reuse, Object.keys(cfg.ExposedPorts), cfg.User, cfg.WorkingDir], [['echo', 'hi'], 'v', 'me', ['80/tcp'], 'app', '/tmp']);
    const refused = await request(api, 'POST', `/commit?container=${c.getId()}`, JSON.stringify({ Domainname: 'example.org' }));
    assert.deepEqual([refused.status, JSON.parse(refused.body).message], [400, 'ply does not support Config.Domainname yet']);
  } finally {
    await c.stop();
  }
  await assert.rejects(
    new GenericContainer(IMAGE).withCommand(['sh', '-c', 'echo dying; exit 3']).withWaitStrategy(Wait.forLogMessage('never printed')).withStartupTimeout(5_000).start(),
    /exit|stopped|never printed|timed out/i,
  );
  assert.equal(plyOk(api.root, ['ps', '-a', '-q']), '', 'a container that failed to start is removed');
});

test('testcontainers: an image from a private registry, pulled with the login\'s credentials (X-Registry-Auth), and pulled again by PullPolicy.alwaysPull', async () => {
  const { GenericContainer, PullPolicy } = tc;
  const c = await new GenericContainer(PRIVATE).withCommand(['cat', '/etc/motd']).withWaitStrategy(tc.Wait.forOneShotStartup()).withAutoRemove(false).start();
  const stopped = await c.stop({ remove: false });
  assert.equal(plyOk(api.root, ['logs', stopped.getId()]), 'hello from the base image\n');
  plyOk(api.root, ['rm', stopped.getId()]);
  const before = plyOk(api.root, ['image', 'inspect', '-f', '{{.Id}}', PRIVATE]);
  const again = await new GenericContainer(PRIVATE).withPullPolicy(PullPolicy.alwaysPull()).withCommand(['sleep', '30']).start();
  await again.stop();
  assert.equal(plyOk(api.root, ['image', 'inspect', '-f', '{{.Id}}', PRIVATE]), before);
  await assert.rejects(new GenericContainer(`${registry.domain}/tc/missing:1`).start(), /manifest unknown|not found/);
  assert.equal(plyOk(api.root, ['ps', '-a', '-q']), '');
});
