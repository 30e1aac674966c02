// Name resolution on user networks, by podman's aardvark-dns (Debian package aardvark-dns): one server per
// store, answering on each DNS network's gateway address, port 53. ply writes its config files (one per network:
// the gateway, then "ID IPv4 IPv6 name,alias,..." per container) and sends SIGHUP; aardvark answers a container
// only with the containers of its own networks, and exits by itself when no network is left.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';
import { pidAlive } from '../content/store.js';

const AARDVARK_PATHS = ['/usr/lib/podman/aardvark-dns', '/usr/libexec/podman/aardvark-dns', '/usr/bin/aardvark-dns'];

export interface DnsEntry {
  container: string;
  ip: string;
  names: string[];
  /** Upstream servers for this container's other queries (--dns). */
  servers: string[];
}

export class DnsServer {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = path.join(storeRoot, 'network', 'dns');
  }

  private file(network: string): string {
    return path.join(this.dir, network);
  }

  pid(): number {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dir, 'aardvark.pid'), 'utf8').trim());
      return pid > 0 && pidAlive(pid) ? pid : 0;
    } catch {
      return 0;
    }
  }

  /**
   * Writes one network's entries (none: the network leaves the server) and makes the server see them, starting
   * it when needed. Returns the server's pid (0 when it has nothing to serve).
   */
  update(network: string, gateway: string, entries: DnsEntry[]): number {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(network);
    if (entries.length === 0) fs.rmSync(file, { force: true });
    else {
      const lines = [gateway, ...entries.map((e) => `${e.container} ${e.ip}  ${e.names.map((n) => n.toLowerCase()).join(',')}${e.servers.length ? ` ${e.servers.join(',')}` : ''}`)];
      const tmp = `${file}.tmp`;
      fs.writeFileSync(tmp, `${lines.join('\n')}\n`);
      fs.renameSync(tmp, file);
    }
    const pid = this.pid();
    if (pid) {
      process.kill(pid, 'SIGHUP');
      if (entries.length) waitListening(gateway);
      return pid;
    }
    if (entries.length === 0) return 0;
    const bin = AARDVARK_PATHS.find((p) => fs.existsSync(p));
    if (!bin) throw new PlyError('name resolution on user networks needs aardvark-dns (Debian package aardvark-dns)');
    // aardvark forks, and its first process returns once the server's pid file is written.
    const r = spawnSync(bin, ['--config', this.dir, '-p', '53', 'run'], { stdio: 'ignore', env: { ...process.env, RUST_LOG: 'error' } });
    if (r.status !== 0) throw new PlyError(`aardvark-dns failed to start (exit ${r.status})`);
    waitListening(gateway);
    return this.pid();
  }

  /** Stops the server (network rm of the last DNS network, repair). */
  stop(): void {
    const pid = this.pid();
    if (pid) process.kill(pid, 'SIGTERM');
  }
}

/** Waits (briefly) until something listens on gateway:53/udp: aardvark reports ready before it binds. */
function waitListening(gateway: string): void {
  const want = `${gateway
    .split('.')
    .map((b) => Number(b).toString(16).padStart(2, '0'))
    .reverse()
    .join('')
    .toUpperCase()}:0035`;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    try {
      if (fs.readFileSync('/proc/net/udp', 'utf8').includes(` ${want} `)) return;
    } catch {
      return;
    }
    Atomics.wait(pause, 0, 0, 5);
  }
}
