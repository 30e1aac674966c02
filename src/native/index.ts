/**
 * Typed access to the `ply-native` addon (mknod, mount/umount2, l*xattr: the system calls Node lacks).
 * The addon is loaded on the first call, so commands that never need it pay nothing at start-up.
 * Failures throw an Error with `code` = the errno name ('EEXIST', 'ENOENT', 'EPERM', ...).
 */

import { createRequire } from 'node:module';
import type * as Addon from 'ply-native';
import { UnsupportedError } from '../errors.js';

export type NativeError = Addon.NativeError;

let addon: typeof Addon | undefined;

function load(): typeof Addon {
  if (addon) return addon;
  try {
    addon = createRequire(import.meta.url)('ply-native') as typeof Addon;
  } catch (err) {
    throw new UnsupportedError(
      `cannot load ply's native addon (ply-native): ${(err as Error).message.split('\n')[0]} (run 'npm ci' to build it)`,
      { cause: err },
    );
  }
  return addon;
}

/** mknod(2). `mode` includes the file type (S_IFCHR, S_IFBLK or S_IFIFO) and the permission bits. */
export function mknod(path: string, mode: number, major: number, minor: number): void {
  load().mknod(path, mode, major, minor);
}

/** lsetxattr(2): sets an extended attribute on `path` itself (a final symlink is not followed). */
export function lsetxattr(path: string, name: string, value: Buffer | Uint8Array): void {
  load().lsetxattr(path, name, value);
}

/** fsetxattr(2): sets an extended attribute on an open file. */
export function fsetxattr(fd: number, name: string, value: Buffer | Uint8Array): void {
  load().fsetxattr(fd, name, value);
}

/** lgetxattr(2): the attribute's value, or null when it is not set. */
export function lgetxattr(path: string, name: string): Buffer | null {
  return load().lgetxattr(path, name);
}

/** llistxattr(2): the names of `path`'s extended attributes (a final symlink is not followed). */
export function llistxattr(path: string): string[] {
  return load().llistxattr(path);
}

/** lremovexattr(2). */
export function lremovexattr(path: string, name: string): void {
  load().lremovexattr(path, name);
}

/** mount(2). `fstype` and `data` may be null (e.g. for bind mounts and propagation changes). */
export function mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): void {
  load().mount(source, target, fstype, flags, data);
}

/** umount2(2). */
export function umount2(target: string, flags: number): void {
  load().umount2(target, flags);
}

/** A non-blocking, close-on-exec unix socket listening on `path` (the service's hand-off socket). */
export function unixListen(path: string, backlog: number): number {
  return load().unixListen(path, backlog);
}

/** Accepts one connection within `timeoutMs`: null when none came (or another worker won it); with the peer's uid/pid. */
export function unixAccept(fd: number, timeoutMs: number): { fd: number; uid: number; pid: number } | null {
  return load().unixAccept(fd, timeoutMs);
}

/** recvmsg(2) with SCM_RIGHTS: data (empty at EOF) and the descriptors passed with it; null if nothing came in time. */
export function recvFds(fd: number, maxBytes: number, timeoutMs: number): { data: Buffer; fds: number[] } | null {
  return load().recvFds(fd, maxBytes, timeoutMs);
}

/** dup2(2). */
export function dup2(from: number, to: number): void {
  load().dup2(from, to);
}

/**
 * Close-on-exec on every descriptor >= fd: a daemon started afterwards (aardvark-dns, a container's monitor and
 * runtime) then holds nothing this process inherited from its caller.
 */
export function cloexecFrom(fd: number): void {
  load().cloexecFrom(fd);
}

/** setrlimit(2) of this process; -1 = unlimited. */
export function setrlimit(resource: number, soft: number, hard: number): void {
  load().setrlimit(resource, soft, hard);
}

/** openat2(2), close-on-exec: `resolve` holds RESOLVE_* flags (RESOLVE_IN_ROOT: `dirfd` acts as `/`). */
export function openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  return load().openat2(dirfd, path, flags, mode, resolve);
}

/** flock(2): false when LOCK_NB was given and another open file holds a conflicting lock. */
export function flock(fd: number, operation: number): boolean {
  return load().flock(fd, operation);
}

/** A new network namespace, held by the returned close-on-exec descriptor (/proc/self/fd/N names it). */
export function netnsCreate(): number {
  return load().netnsCreate();
}

/** A Linux bridge (kept if it exists) with the address `cidr` (a.b.c.d/len), up. */
export function bridgeCreate(name: string, cidr: string | null, mtu: number): void {
  load().bridgeCreate(name, cidr, mtu);
}

/** A veth pair: `host` on the bridge `master` and up; `peer` made inside the namespace file `netns`. */
export function vethCreate(host: string, peer: string, netns: string, master: string, mtu: number, mac: string | null): void {
  load().vethCreate(host, peer, netns, master, mtu, mac);
}

/**
 * Inside `netns` (null: this namespace): lo up, `cidr` on `ifname`, `ifname` up, default route via `gateway`
 * (its path MTU capped at `routeMtu` when > 0).
 */
export function ifaceConfigure(netns: string | null, ifname: string, cidr: string | null, gateway: string | null, routeMtu = 0): void {
  load().ifaceConfigure(netns, ifname, cidr, gateway, routeMtu);
}

/** Deletes a link (a veth takes its peer along); false when there was none. */
export function linkDelete(netns: string | null, name: string): boolean {
  return load().linkDelete(netns, name);
}

/** Asks `server`:53 for `name` from inside `netns` until an answer with a record comes (true) or `timeoutMs` passes. */
export function dnsProbe(netns: string, server: string, name: string, timeoutMs: number): boolean {
  return load().dnsProbe(netns, server, name, timeoutMs);
}

/** A pseudo-terminal pair (close-on-exec descriptors) of `rows` × `cols` (0 × 0: the kernel's default). */
export function openpty(rows: number, cols: number): { master: number; slave: number } {
  return load().openpty(rows, cols);
}

/** Sets a terminal's size (on a master: the pair's, and the slave's foreground process group gets SIGWINCH). */
export function ptyResize(fd: number, rows: number, cols: number): void {
  load().ptyResize(fd, rows, cols);
}

/** True if `err` is an error from a system call that failed with errno `code` (e.g. 'ENODATA'). */
export function hasErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as { code?: unknown }).code as string);
}

// Linux ABI constants (the same on every architecture Node supports), so importing them does not load the
// addon; test/unit/native.test.ts checks them against the addon's own values.
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MS_SLAVE = 0x80000;
export const MS_SHARED = 0x100000;
export const MS_RELATIME = 0x200000;
export const MS_STRICTATIME = 0x1000000;
export const MNT_FORCE = 0x1;
export const MNT_DETACH = 0x2;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFREG = 0o100000;
export const S_IFSOCK = 0o140000;
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** The addon's own constant values (loads it): for checking the ones above. */
export function nativeConstants(): Record<string, number> {
  const a = load() as unknown as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(a)) if (typeof v === 'number') out[k] = v;
  return out;
}
