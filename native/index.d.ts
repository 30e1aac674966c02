/** Errors thrown by ply-native carry the errno name (e.g. 'EEXIST') in `code` and the number in `errno`. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

/** mknod(2): `mode` includes the file type bits (S_IFCHR, S_IFBLK, S_IFIFO, S_IFREG, S_IFSOCK). */
export function mknod(path: string, mode: number, major: number, minor: number): void;
/** lsetxattr(2): set an extended attribute without following a final symlink. */
export function lsetxattr(path: string, name: string, value: Buffer | Uint8Array): void;
/** fsetxattr(2): set an extended attribute on an open file. */
export function fsetxattr(fd: number, name: string, value: Buffer | Uint8Array): void;
/** lgetxattr(2): the attribute's value, or null when it is not set (ENODATA). */
export function lgetxattr(path: string, name: string): Buffer | null;
/** llistxattr(2): the attribute names, without following a final symlink. */
export function llistxattr(path: string): string[];
/** lremovexattr(2): remove an attribute without following a final symlink. */
export function lremovexattr(path: string, name: string): void;
/** mount(2). `fstype` and `data` may be null. */
export function mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): void;
/** umount2(2). */
export function umount2(target: string, flags: number): void;

/** A non-blocking, close-on-exec unix socket listening on `path`. */
export function unixListen(path: string, backlog: number): number;
/** Accepts one connection within `timeoutMs` (null if none, or another process won it), with its peer's credentials. */
export function unixAccept(fd: number, timeoutMs: number): { fd: number; uid: number; pid: number } | null;
/** recvmsg(2) of up to `maxBytes` with the descriptors passed along (close-on-exec); null if nothing came in time; empty data = EOF. */
export function recvFds(fd: number, maxBytes: number, timeoutMs: number): { data: Buffer; fds: number[] } | null;
/** dup2(2). */
export function dup2(from: number, to: number): void;
/** Close-on-exec on every descriptor >= fd (close_range(2) with CLOSE_RANGE_CLOEXEC). */
export function cloexecFrom(fd: number): void;
/** setrlimit(2) of this process; -1 = unlimited. */
export function setrlimit(resource: number, soft: number, hard: number): void;

/** openat2(2) (close-on-exec): `resolve` holds RESOLVE_* flags, e.g. RESOLVE_IN_ROOT to resolve as if `dirfd` were `/`. */
export function openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
/** flock(2); false when LOCK_NB was given and another open file holds a conflicting lock. */
export function flock(fd: number, operation: number): boolean;

/** A pseudo-terminal pair (close-on-exec descriptors) of `rows` × `cols` (0 × 0: left as the kernel makes it). */
export function openpty(rows: number, cols: number): { master: number; slave: number };
/** TIOCSWINSZ: the terminal's size (on a master, the pair's; the slave's foreground process group gets SIGWINCH). */
export function ptyResize(fd: number, rows: number, cols: number): void;

export const MS_RDONLY: number;
export const MS_NOSUID: number;
export const MS_NODEV: number;
export const MS_NOEXEC: number;
export const MS_REMOUNT: number;
export const MS_BIND: number;
export const MS_REC: number;
export const MS_PRIVATE: number;
export const MS_SLAVE: number;
export const MS_SHARED: number;
export const MS_STRICTATIME: number;
export const MS_RELATIME: number;
export const MNT_FORCE: number;
export const MNT_DETACH: number;
export const S_IFCHR: number;
export const S_IFBLK: number;
export const S_IFIFO: number;
export const S_IFREG: number;
export const S_IFSOCK: number;
export const RESOLVE_NO_XDEV: number;
export const RESOLVE_NO_MAGICLINKS: number;
export const RESOLVE_NO_SYMLINKS: number;
export const RESOLVE_BENEATH: number;
export const RESOLVE_IN_ROOT: number;
export const LOCK_SH: number;
export const LOCK_EX: number;
export const LOCK_NB: number;
export const LOCK_UN: number;

/** A new network namespace, held by the returned close-on-exec descriptor (/proc/self/fd/N names it). */
export function netnsCreate(): number;
/** A bridge named `name` (kept if it exists) with the address `cidr` (a.b.c.d/len), brought up. */
export function bridgeCreate(name: string, cidr: string | null, mtu: number): void;
/** A veth pair: `host` on the bridge `master` and up; `peer` created inside the namespace file `netns`. */
export function vethCreate(host: string, peer: string, netns: string, master: string, mtu: number, mac: string | null): void;
/** Inside `netns` (null: here): lo up, `cidr` on `ifname`, `ifname` up, default route via `gateway` (path MTU `routeMtu` when > 0). */
export function ifaceConfigure(netns: string | null, ifname: string, cidr: string | null, gateway: string | null, routeMtu: number): void;
/** Deletes a link (a veth takes its peer along); false when there was none. */
export function linkDelete(netns: string | null, name: string): boolean;
/** Asks `server`:53 for `name` from inside `netns` until an answer with a record comes (true) or `timeoutMs` passes. */
export function dnsProbe(netns: string, server: string, name: string, timeoutMs: number): boolean;
