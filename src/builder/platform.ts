// The platform a build targets (--platform: the host's, or one an emulator is registered for) and the automatic
// platform ARGs it gives the Dockerfile.
import fs from 'node:fs';
import { formatPlatform, parsePlatform } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';
import { BuildError } from './errors.js';

/**
 * The platform --platform asks for: the host's, or another one when binfmt_misc has an emulator registered for
 * its architecture (RUN steps then run through it); anything else is a clear error.
 */
export function targetPlatform(value: string, host: Platform): Platform {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length !== 1) throw new BuildError(`ply builds one platform at a time: --platform ${value} names ${list.length}`);
  const p = parsePlatform(list[0]!);
  if (p.architecture === host.architecture && (!p.variant || !host.variant || p.variant === host.variant)) return { ...host, ...p };
  if (emulatorRegistered(p.architecture)) return p;
  throw new BuildError(
    `cannot build for ${formatPlatform(p)}: ply builds for the native platform (${formatPlatform(host)}) unless an emulator for ${p.architecture} is registered (binfmt_misc, e.g. qemu-user-static)`,
  );
}

const QEMU_NAMES: Record<string, string> = { arm64: 'aarch64', amd64: 'x86_64', arm: 'arm', '386': 'i386', ppc64le: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

function emulatorRegistered(arch: string): boolean {
  const entry = `/proc/sys/fs/binfmt_misc/qemu-${QEMU_NAMES[arch] ?? arch}`;
  try {
    return fs.readFileSync(entry, 'utf8').startsWith('enabled');
  } catch {
    return false;
  }
}

/** The automatic platform ARGs (buildkit's TARGETPLATFORM, BUILDARCH, …) for the platform the build targets. */
export function automaticArgs(p: Platform): Map<string, string> {
  const m = new Map<string, string>();
  for (const prefix of ['TARGET', 'BUILD']) {
    m.set(`${prefix}PLATFORM`, formatPlatform(p));
    m.set(`${prefix}OS`, p.os);
    m.set(`${prefix}ARCH`, p.architecture);
    m.set(`${prefix}VARIANT`, p.variant ?? '');
  }
  return m;
}
