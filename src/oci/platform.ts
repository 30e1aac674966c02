// Platforms (os/architecture/variant) as OCI and docker name them: the host's, parsing --platform, printing one.
import { InvalidArgumentError } from '../errors.js';
import type { Platform } from './types.js';

const GO_ARCH: Record<string, Platform> = {
  x64: { os: 'linux', architecture: 'amd64' },
  arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
  ia32: { os: 'linux', architecture: '386' },
  ppc64: { os: 'linux', architecture: 'ppc64le' },
  s390x: { os: 'linux', architecture: 's390x' },
  riscv64: { os: 'linux', architecture: 'riscv64' },
};

/** The host's platform in OCI terms (Go's GOARCH names). */
export function hostPlatform(): Platform {
  return GO_ARCH[process.arch] ?? { os: 'linux', architecture: process.arch };
}

/** Parses `os[/arch[/variant]]` as docker's --platform does. */
export function parsePlatform(s: string): Platform {
  const parts = s.toLowerCase().split('/');
  const host = hostPlatform();
  if (parts.length > 3 || parts.some((p) => p === '' || !/^[a-z0-9._-]+$/.test(p))) {
    throw new InvalidArgumentError(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  const [os, arch, variant] = parts as [string, string | undefined, string | undefined];
  if (os !== 'linux') throw new InvalidArgumentError(`"${s}": operating system "${os}" is not supported`);
  const architecture = normalizeArch(arch ?? host.architecture);
  const p: Platform = { os, architecture };
  if (variant) p.variant = variant;
  else if (architecture === 'arm64' && arch === undefined) p.variant = host.variant;
  return p;
}

function normalizeArch(a: string): string {
  switch (a) {
    case 'x86_64':
    case 'x86-64':
      return 'amd64';
    case 'aarch64':
      return 'arm64';
    case 'i386':
      return '386';
    default:
      return a;
  }
}

/** `os/arch[/variant]`, as docker prints a platform. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}
