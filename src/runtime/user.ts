// Resolves `-u/--user` (or the image's User) against the container's own /etc/passwd and /etc/group,
// with the semantics of runc's libcontainer/user.GetExecUser as docker uses it (daemon/oci_linux.go getUser).
//
// The files are read from INSIDE the rootfs: every path component is resolved chroot-style, so a symlink
// (absolute or with `..`) can never lead out of the rootfs to a host file.

import fs from 'node:fs';
import { InvalidArgumentError } from '../errors.js';
import { resolveInRoot } from '../util/rootpath.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /**
   * The supplementary group list for the runtime (OCI process.user.additionalGids), as docker builds it:
   * the primary gid first, then — only when no group was given explicitly and a passwd entry matched —
   * the gids of the /etc/group entries that list the user by name. Duplicates removed.
   */
  additionalGids: number[];
  /** The passwd home directory, or '/' when the user has no passwd entry (runc's default). */
  home: string;
}

const MIN_ID = 0;
const MAX_ID = 2 ** 31 - 1;
const MAX_FILE = 16 << 20; // refuse absurdly large passwd/group files

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Go's strconv.Atoi-style integer check (optional sign, digits). */
function parseIntArg(s: string): number | undefined {
  return /^[+-]?[0-9]+$/.test(s) ? Number(s) : undefined;
}

/** Like parseLine's int fields: a malformed number reads as 0. */
function intField(s: string | undefined): number {
  const n = s === undefined ? NaN : parseIntArg(s.trim());
  return n === undefined || !Number.isFinite(n) ? 0 : n;
}

function rangeCheck(id: number): void {
  if (!(id >= MIN_ID && id <= MAX_ID)) throw new InvalidArgumentError(`uids and gids must be in range ${MIN_ID}-${MAX_ID}`);
}

/** Reads a regular file inside the rootfs (chroot-style resolution); undefined when missing or not a regular file. */
function readInRoot(rootfs: string, file: string): string | undefined {
  let fd: number;
  try {
    const p = resolveInRoot(rootfs, file);
    // O_NOFOLLOW: the final component was just resolved to a non-symlink; refuse if it changed meanwhile.
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > MAX_FILE) return undefined;
    return fs.readFileSync(fd, 'utf8');
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function parsePasswd(text: string): PasswdEntry[] {
  return lines(text).map((l) => {
    const f = l.split(':');
    return { name: f[0] ?? '', uid: intField(f[2]), gid: intField(f[3]), home: f[5] ?? '' };
  });
}

function parseGroup(text: string): GroupEntry[] {
  return lines(text).map((l) => {
    const f = l.split(':');
    return { name: f[0] ?? '', gid: intField(f[2]), members: (f[3] ?? '').split(',').map((m) => m.trim()) };
  });
}

/**
 * docker semantics for `--user`:
 *   ''            → uid 0 (its passwd entry, if any, gives gid, home and supplementary groups)
 *   'name'/'uid'  → looked up in /etc/passwd; a numeric uid without an entry is allowed (gid 0, home '/')
 *   'u:g'         → the group part is a group name or gid (a numeric gid without an entry is allowed);
 *                   with an explicit group no supplementary groups are added
 * Unknown names throw InvalidArgumentError `unable to find user NAME: no matching entries in passwd file`
 * (or `unable to find group G: no matching entries in group file`) — docker prints these; `docker run` exits
 * 125 and `docker exec` 126 with them (the CLI's run and exec set those codes).
 */
export function resolveUser(rootfs: string, user: string | undefined): ResolvedUser {
  const spec = user ?? '';
  const parts = spec.split(':');
  const userArg = parts[0] ?? '';
  const groupArg = parts[1] ?? '';
  const uidArg = parseIntArg(userArg);
  const gidArg = parseIntArg(groupArg);

  const passwdText = readInRoot(rootfs, '/etc/passwd');
  const groupText = readInRoot(rootfs, '/etc/group');
  const passwd = passwdText === undefined ? [] : parsePasswd(passwdText);

  let uid = 0;
  let gid = 0;
  let home = '/';
  let matchedName: string | undefined;

  const match = passwd.find((u) => (userArg === '' ? u.uid === 0 : uidArg !== undefined ? u.uid === uidArg : u.name === userArg));
  if (match) {
    matchedName = match.name;
    uid = match.uid;
    gid = match.gid;
    home = match.home || '/';
  } else if (userArg !== '') {
    if (uidArg === undefined) throw new InvalidArgumentError(`unable to find user ${userArg}: no matching entries in passwd file`);
    rangeCheck(uidArg);
    uid = uidArg;
  }

  const sgids: number[] = [];
  if (groupArg !== '' || matchedName !== undefined) {
    const groups = groupText === undefined ? [] : parseGroup(groupText);
    if (groupArg !== '') {
      const g = groups.find((e) => (gidArg !== undefined ? e.gid === gidArg : e.name === groupArg));
      if (g) gid = g.gid;
      else {
        if (gidArg === undefined) throw new InvalidArgumentError(`unable to find group ${groupArg}: no matching entries in group file`);
        rangeCheck(gidArg);
        gid = gidArg;
      }
    } else {
      for (const g of groups) if (g.members.includes(matchedName!)) sgids.push(g.gid);
    }
  }
  rangeCheck(uid);
  rangeCheck(gid);

  const additionalGids: number[] = [];
  for (const g of [gid, ...sgids]) if (!additionalGids.includes(g)) additionalGids.push(g);
  return { uid, gid, additionalGids, home };
}
