// End-to-end, side by side with dockerd 20.10: request bodies are decoded as dockerd's Go decoder does. The same
// raw requests go to ply's socket and to a reference dockerd's; statuses and what they made (inspect) must agree:
// keys that are no docker field are ignored at any depth, docker's field names match case-insensitively. Fields
// ply knows but cannot honour are still refused (a deliberate difference, in docker's error shape). And docker's
// CLI check of --security-opt values, which ply's CLI makes as docker's does (exit 125, before the daemon).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { busyboxTar, ply } from '../helpers.js';
import { request, startPlyApi, type PlyApi } from '../api-peer.js';
import { startDockerd } from '../push-peer.js';

let api: PlyApi;
let dockerd: Awaited<ReturnType<typeof startDockerd>>;
before(async () => {
  [api, dockerd] = await Promise.all([startPlyApi(), startDockerd()]);
  dockerd.docker(['import', busyboxTar(), 'bb']);
});
after(async () => {
  await Promise.all([api?.stop(), dockerd?.stop()]);
});

type Json = Record<string, unknown>;
const peers = () => [
  { name: 'ply', sock: api.sock },
  { name: 'dockerd', sock: dockerd.sock },
];

/** The same request to both daemons: their statuses, and each one's JSON answer. */
async function both(method: string, p: string, body?: unknown): Promise<{ status: number[]; json: Json[] }> {
  const raw = typeof body === 'string' || body === undefined ? body : JSON.stringify(body);
  const res = await Promise.all(peers().map((d) => request(d, method, p, raw)));
  return { status: res.map((r) => r.status), json: res.map((r) => (r.body.trim() ? (JSON.parse(r.body) as Json) : {})) };
}

/** Creates on both (expecting 201) and returns each daemon's inspect of what it made. */
async function createBoth(body: unknown): Promise<Json[]> {
  const made = await both('POST', '/containers/create', body);
  assert.deepEqual(made.status, [201, 201], JSON.stringify(made.json));
  return Promise.all(peers().map(async (d, i) => JSON.parse((await request(d, 'GET', `/containers/${made.json[i]!.Id as string}/json`)).body) as Json));
}

const pick = (ins: Json, ...paths: string[]) => paths.map((p) => p.split('.').reduce<unknown>((o, k) => (o as Json | undefined)?.[k], ins));

test('unknown keys anywhere in a create body are ignored, as dockerd ignores them', async () => {
  const ins = await createBoth({
    Image: 'bb',
    Cmd: ['true'],
    NoSuchConfigField: { deep: true },
    Healthcheck: { Test: ['CMD', 'true'], Interval: 2_000_000_000, NoSuchHealthField: 7 },
    HostConfig: { NetworkMode: 'none', Memory: 64 << 20, NoSuchHostField: 'x', RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2, Bogus: 1 } },
    NetworkingConfig: { EndpointsConfig: { none: { Aliases: null, NoSuchEndpointField: 1 } }, NoSuchNetworkingField: 1 },
  });
  const fields = ['HostConfig.Memory', 'HostConfig.RestartPolicy', 'HostConfig.NetworkMode', 'Config.Healthcheck', 'Config.Cmd'];
  assert.deepEqual(pick(ins[0]!, ...fields), pick(ins[1]!, ...fields));
  assert.deepEqual(pick(ins[0]!, 'HostConfig.Memory', 'Config.Healthcheck.Interval'), [64 << 20, 2_000_000_000]);
});

test('docker field names match case-insensitively at every depth; map keys stay as sent', async () => {
  const ins = await createBoth({
    image: 'bb',
    CMD: ['echo', 'hi'],
    env: ['A=1'],
    labels: { MixedCase: 'v' },
    workingdir: '/tmp',
    healthcheck: { test: ['CMD', 'true'], interval: 3_000_000_000, RETRIES: 4 },
    hostconfig: { networkmode: 'none', memory: 32 << 20, restartpolicy: { name: 'on-failure', maximumretrycount: 3 }, Tmpfs: { '/Run': 'size=1m' } },
  });
  const fields = ['Config.Cmd', 'Config.Labels', 'Config.WorkingDir', 'Config.Healthcheck', 'HostConfig.Memory', 'HostConfig.NetworkMode', 'HostConfig.RestartPolicy'];
  assert.deepEqual(pick(ins[0]!, ...fields), pick(ins[1]!, ...fields));
  // Tmpfs's key as sent on both (its options: ply shows the defaults it applies, dockerd what was sent).
  assert.deepEqual(ins.map((i) => Object.keys(pick(i, 'HostConfig.Tmpfs')[0] as Json)), [['/Run'], ['/Run']]);
  assert.deepEqual(pick(ins[0]!, 'HostConfig.Memory', 'Config.Labels', 'HostConfig.RestartPolicy.MaximumRetryCount'), [32 << 20, { MixedCase: 'v' }, 3]);
  assert.ok((pick(ins[0]!, 'Config.Env')[0] as string[]).includes('A=1'));
  assert.ok((pick(ins[1]!, 'Config.Env')[0] as string[]).includes('A=1'));
});

test('update, volume create and a malformed body decode the same way on both', async () => {
  const made = await both('POST', '/containers/create', { Image: 'bb', Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
  assert.deepEqual(made.status, [201, 201]);
  const upd = await Promise.all(peers().map((d, i) => request(d, 'POST', `/containers/${made.json[i]!.Id as string}/update`, JSON.stringify({ cpushares: 512, NoSuchField: 1, restartpolicy: { name: 'always' } }))));
  assert.deepEqual(upd.map((r) => r.status), [200, 200], upd.map((r) => r.body).join());
  const after = await Promise.all(peers().map(async (d, i) => JSON.parse((await request(d, 'GET', `/containers/${made.json[i]!.Id as string}/json`)).body) as Json));
  assert.deepEqual(pick(after[0]!, 'HostConfig.CpuShares', 'HostConfig.RestartPolicy.Name'), [512, 'always']);
  assert.deepEqual(pick(after[0]!, 'HostConfig.CpuShares', 'HostConfig.RestartPolicy.Name'), pick(after[1]!, 'HostConfig.CpuShares', 'HostConfig.RestartPolicy.Name'));

  const vol = await both('POST', '/volumes/create', { name: 'decodevol', LABELS: { k: 'v' }, NoSuchField: 1 });
  assert.deepEqual(vol.status, [201, 201]);
  assert.deepEqual(vol.json.map((v) => [v.Name, v.Labels]), [['decodevol', { k: 'v' }], ['decodevol', { k: 'v' }]]);

  // Malformed JSON: dockerd 20.10 answers 500 ("unexpected EOF"), later dockerds 400, as ply (API 1.43) does.
  const bad = await both('POST', '/containers/create', '{"Image": "bb", ');
  assert.deepEqual(bad.status, [400, 500]);
  const empty = await both('POST', '/containers/create', { NoSuchField: 1 });
  assert.deepEqual(empty.status, [400, 400], 'a body of unknown keys only is an empty config');
});

test('docker fields ply cannot honour are still refused, however they are cased', async () => {
  for (const host of [{ Sysctls: { 'net.core.somaxconn': '1024' } }, { sysctls: { 'net.core.somaxconn': '1024' } }, { PIDMODE: 'host' }]) {
    const r = await request(api, 'POST', '/containers/create', JSON.stringify({ Image: 'bb', HostConfig: host }));
    assert.equal(r.status, 400, JSON.stringify(host));
    assert.match((JSON.parse(r.body) as Json).message as string, /^ply does not support (Sysctls \{"net\.core\.somaxconn":"1024"\}|PidMode "host") yet$/);
  }
});

test('--security-opt without a value is refused by the CLI, as docker 28 refuses it (exit 125)', () => {
  // docker 28 → dockerd 20.10: `docker: Invalid --security-opt: "nonsense"`, a blank line, "Run 'docker create --help'
  // for more information", exit 125, the daemon never asked; `label:x` and `no-new-privileges` pass the CLI.
  for (const opt of ['nonsense', 'foo=', 'seccomp']) {
    const r = ply(api.root, ['create', '--security-opt', opt, 'bb', 'true']);
    assert.deepEqual([r.code, r.stderr], [125, `ply: Invalid --security-opt: ${JSON.stringify(opt)}\n\nRun 'ply create --help' for more information\n`]);
  }
  const run = ply(api.root, ['run', '--rm', '--security-opt', 'nonsense', 'bb', 'true']);
  assert.equal(run.code, 125);
  assert.match(run.stderr, /^ply: Invalid --security-opt: "nonsense"\n\nRun 'ply run --help'/);
  const ok = ply(api.root, ['create', '--network', 'none', '--security-opt', 'no-new-privileges', 'bb', 'true']);
  assert.equal(ok.code, 0, ok.stderr);
});
