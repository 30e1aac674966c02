// Name resolution on user networks, by podman's aardvark-dns (Debian package aardvark-dns): one server per
// store, answering on each DNS network's gateway address, port 53. ply writes its config files (one per network,
// named by its ID: the gateway, then "ID IPv4 IPv6 name,alias,... [upstream,...]" per container; aardvark reads
// every file of the directory, so temporary files and the lock live beside it) and sends SIGHUP; aardvark
// answers a container only with the containers of its own networks, forwards other names to the container's
// --dns servers (or the host's), and exits by itself when no network is left.
//
// aardvark 1.4 reloads in its own time, and two of its moments would lose a container's names: before it has
// installed its SIGHUP handler (a SIGHUP then ends it; its first read of the files is still to come, so none is
// needed), and after it has read an empty configuration (it is exiting; a file written meanwhile is never read).
// So the server is signalled only once its handler is in place, and `ensureAnswers` (the container's own name,
// asked from inside its namespace) starts a new server when the old one went away.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';
import * as native from '../native/index.js';
import { LOCK_EX } from '../native/index.js';

const AARDVARK_PATHS = ['/usr/lib/podman/aardvark-dns', '/usr/libexec/podman/aardvark-dns', '/usr/bin/aardvark-dns'];

/**
 * How long a starting container waits for the server to know it. Answers take milliseconds (under 20 ms at a
 * load average of 22 on two cores, measured); the bound only decides when a server that cannot serve at all
 * (aardvark missing its port, the machine stalled) fails the start instead of hanging it.
 */
export const DNS_READY_MS = 20_000;

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

  /** The pid of this store's running server (0 when none): the pid file's process, if it is aardvark serving this directory. */
  pid(): number {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(path.join(this.dir, 'aardvark.pid'), 'utf8').trim());
    } catch {
      return 0;
    }
    return pid > 0 && isServerOf(pid, this.dir) ? pid : 0;
  }

  /**
   * Writes one network's entries (none: the network leaves the server) and makes the server see them, starting
   * it when needed. Returns the server's pid (0 when it has nothing to serve). `legacyName`: the file's name
   * before files were named by network ID (removed).
   */
  update(network: string, gateway: string, entries: DnsEntry[], legacyName?: string): number {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.dir, network);
    if (legacyName && legacyName !== network && legacyName !== 'aardvark.pid') fs.rmSync(path.join(this.dir, legacyName), { force: true });
    if (entries.length === 0) fs.rmSync(file, { force: true });
    else {
      const lines = [gateway, ...entries.map((e) => `${e.container} ${e.ip}  ${e.names.map((n) => n.toLowerCase()).join(',')}${e.servers.length ? ` ${e.servers.join(',')}` : ''}`)];
      const tmp = `${this.dir}.${network}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, `${lines.join('\n')}\n`);
      fs.renameSync(tmp, file);
    }
    const pid = this.pid();
    if (pid) {
      // Without its handler yet, SIGHUP would end it, and its first read of the files is still ahead.
      if (catchesSighup(pid)) {
        try {
          process.kill(pid, 'SIGHUP');
        } catch {
          // it exited meanwhile (ensureAnswers starts another)
        }
      }
      return pid;
    }
    return entries.length ? this.start() : 0;
  }

  /** Starts the server for the files in the directory unless one runs; returns its pid (0: nothing to serve). */
  private start(): number {
    // One at a time: a second aardvark on the same files could not bind the ports and would take over the pid file.
    const lock = fs.openSync(`${this.dir}.lock`, 'a', 0o600);
    try {
      native.flock(lock, LOCK_EX);
      const running = this.pid();
      if (running || !this.hasNetworks()) return running;
      const bin = AARDVARK_PATHS.find((p) => fs.existsSync(p));
      if (!bin) throw new PlyError('name resolution on user networks needs aardvark-dns (Debian package aardvark-dns)');
      // The server outlives this process: it must not hold what this process inherited (a caller's pipes).
      native.cloexecFrom(3);
      // aardvark forks, and its first process returns once the server's pid file is written.
      const r = spawnSync(bin, ['--config', this.dir, '-p', '53', 'run'], { stdio: 'ignore', env: { ...process.env, RUST_LOG: 'error' } });
      if (r.status !== 0) throw new PlyError(`aardvark-dns failed to start (exit ${r.status})`);
      return this.pid();
    } finally {
      fs.closeSync(lock);
    }
  }

  private hasNetworks(): boolean {
    try {
      return fs.readdirSync(this.dir).some((f) => f !== 'aardvark.pid');
    } catch {
      return false;
    }
  }

  /**
   * Waits until the server answers `name` to a query from inside `netns` (a namespace file) on `gateway`,
   * starting a new server if the one signalled went away (it exits when it reads an empty configuration, and a
   * file written after that read is never seen). Returns the server's pid; throws after DNS_READY_MS.
   */
  ensureAnswers(netns: string, network: string, gateway: string, name: string): number {
    const deadline = Date.now() + DNS_READY_MS;
    for (let tries = 0; ; tries++) {
      let pid = this.pid();
      if (!pid) pid = this.start();
      // Signalled again: a server that read the files just before the last write (or before its handler was in
      // place, when update() left it alone) reloads now; a reload of unchanged files changes nothing.
      else if (tries > 0 && catchesSighup(pid)) {
        try {
          process.kill(pid, 'SIGHUP');
        } catch {
          // gone meanwhile: the next round starts a new one
        }
      }
      if (native.dnsProbe(netns, gateway, name, 250)) return pid;
      if (Date.now() >= deadline) {
        throw new PlyError(`the DNS server of network ${network} (aardvark-dns${pid ? `, pid ${pid}` : ' not running'}) did not answer on ${gateway}:53 in ${DNS_READY_MS / 1000} s`);
      }
    }
  }

  /** Stops the server (network rm of the last DNS network, repair). */
  stop(): void {
    const pid = this.pid();
    if (pid) process.kill(pid, 'SIGTERM');
  }
}

/**
 * Whether `pid` is aardvark serving `dir` (a pid file can outlive its server, and the number be another
 * process's by now: never signal that one).
 */
export function isServerOf(pid: number, dir: string): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return false;
    return path.basename(argv[0] ?? '') === 'aardvark-dns' && argv[argv.indexOf('--config') + 1] === dir;
  } catch {
    return false;
  }
}

/** Whether the process has a handler for SIGHUP (SigCgt in /proc/<pid>/status). */
function catchesSighup(pid: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return !!m && (BigInt(`0x${m[1]}`) & 1n) !== 0n; // bit (signal number - 1)
  } catch {
    return false;
  }
}
