#!/usr/bin/env bash
# Registry benchmark: skopeo push and pull of a ~130 MB image against `ply registry serve` and Debian's
# docker-registry (distribution 2.8), same run, fresh storage each round; then 50 parallel pulls of the largest
# layer from ply's registry, each checked against its digest.
#   bash bench/registry.sh [ROUNDS]      (needs a build: npm run build; skopeo, docker-registry installed)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
WORK="$(mktemp -d /dev/shm/ply-bench-registry.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in skopeo docker-registry; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done
[ -f dist/cli/main.js ] || { echo "bench: build first (npm run build)" >&2; exit 1; }

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
wait_up() { for _ in $(seq 100); do curl -sf "http://$1/v2/" >/dev/null && return 0; sleep 0.1; done; echo "bench: $1 did not start" >&2; exit 1; }

# A ~130 MB OCI layout: three gzip layers of incompressible data (as large as a Debian base image), config, manifest.
echo "bench: building a ~130 MB image in $WORK/layout" >&2
node --input-type=module - "$WORK/layout" <<'EOF'
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
const dir = process.argv[2];
const sha = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
const put = (b) => fs.writeFileSync(path.join(dir, 'blobs', 'sha256', sha(b).slice(7)), b);
const tarOf = (name, data) => {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\x0000', 257);
  let sum = 0;
  for (const c of h) sum += c;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512), Buffer.alloc(1024)]);
};
const layers = [];
const diffIds = [];
for (const [i, mb] of [60, 45, 25].entries()) {
  const tar = tarOf(`layer${i}.bin`, crypto.randomBytes(mb << 20));
  const gz = zlib.gzipSync(tar, { level: 1 });
  put(gz);
  layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(gz), size: gz.length });
  diffIds.push(sha(tar));
}
const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
put(config);
const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers }));
put(manifest);
fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }));
fs.writeFileSync(path.join(dir, 'largest-layer'), layers[0].digest);
EOF
du -sh "$WORK/layout" >&2

start_ply() {
  local port="$1" root="$2"
  node bin/ply registry serve --addr "127.0.0.1:$port" --root "$root" 2>"$root.log" &
  PIDS+=($!)
  wait_up "127.0.0.1:$port"
}
start_distribution() {
  local port="$1" root="$2"
  cat >"$root.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $root
http:
  addr: 127.0.0.1:$port
EOF
  docker-registry serve "$root.yml" 2>"$root.log" &
  PIDS+=($!)
  wait_up "127.0.0.1:$port"
}
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
}

declare -A TOTAL=([ply-push]=0 [ply-pull]=0 [distribution-push]=0 [distribution-pull]=0)
add() { TOTAL[$1]=$(awk -v a="${TOTAL[$1]}" -v b="$2" 'BEGIN { printf "%.2f", a + b }'); }

for round in $(seq "$ROUNDS"); do
  for impl in ply distribution; do
    port="$(free_port)"
    root="$WORK/$impl-$round"
    mkdir -p "$root"
    "start_$impl" "$port" "$root"
    t0="$(now)"
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:bench" "docker://127.0.0.1:$port/bench/debian:latest"
    t1="$(now)"
    skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/bench/debian:latest" "dir:$WORK/pulled-$impl-$round"
    t2="$(now)"
    push="$(elapsed "$t0" "$t1")"
    pull="$(elapsed "$t1" "$t2")"
    add "$impl-push" "$push"
    add "$impl-pull" "$pull"
    printf 'round %d %-13s push %6ss  pull %6ss\n' "$round" "$impl" "$push" "$pull"
    rm -rf "$WORK/pulled-$impl-$round"
    if [ "$impl" = ply ] && [ "$round" = "$ROUNDS" ]; then
      # 50 parallel pulls of the largest layer, each verified.
      node --input-type=module - "http://127.0.0.1:$port" "$(cat "$WORK/layout/largest-layer")" <<'EOF'
import crypto from 'node:crypto';
const [base, digest] = process.argv.slice(2);
const t0 = performance.now();
const results = await Promise.allSettled(Array.from({ length: 50 }, async () => {
  const res = await fetch(`${base}/v2/bench/debian/blobs/${digest}`);
  if (res.status !== 200) throw new Error(`status ${res.status}`);
  const h = crypto.createHash('sha256');
  let n = 0;
  for await (const chunk of res.body) { h.update(chunk); n += chunk.length; }
  if (`sha256:${h.digest('hex')}` !== digest) throw new Error('digest mismatch');
  return n;
}));
const failed = results.filter((r) => r.status === 'rejected');
const bytes = results.reduce((s, r) => s + (r.status === 'fulfilled' ? r.value : 0), 0);
const secs = (performance.now() - t0) / 1000;
console.log(`50 parallel pulls of ${digest.slice(0, 19)}…: ${50 - failed.length}/50 ok, ${(bytes / 1048576).toFixed(0)} MiB in ${secs.toFixed(2)}s (${(bytes / 1048576 / secs).toFixed(0)} MiB/s)`);
for (const f of failed) console.log(`  error: ${f.reason?.message ?? f.reason}`);
if (failed.length) process.exitCode = 1;
EOF
    fi
    stop_all
  done
done

avg() { awk -v t="${TOTAL[$1]}" -v n="$ROUNDS" 'BEGIN { printf "%.2f", t / n }'; }
echo
printf '%-13s %10s %10s\n' '' 'push (avg)' 'pull (avg)'
printf '%-13s %9ss %9ss\n' ply "$(avg ply-push)" "$(avg ply-pull)"
printf '%-13s %9ss %9ss\n' distribution "$(avg distribution-push)" "$(avg distribution-pull)"
