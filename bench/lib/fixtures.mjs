// Fixtures, prepared once and cached under bench/.cache (offline after the first run): the busybox rootfs tar,
// a Debian bookworm minbase rootfs tar (debootstrap, apt caches and lists removed, as in docker base images), its
// gzip and zstd forms (for the decompression limits), and 50 MiB of incompressible files.
import fs from 'node:fs';
import path from 'node:path';
import { bash, log, MiB, sh, StepError } from './util.mjs';

/** The Debian mirror this machine's apt uses (deb822 `URIs:` or one-line `deb URL bookworm`). */
export function debianMirror() {
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of fs.readdirSync('/etc/apt/sources.list.d')) files.push(path.join('/etc/apt/sources.list.d', f));
  } catch {}
  for (const f of files) {
    let text;
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const m of text.matchAll(/^\s*(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/gm)) {
      const url = m[1];
      if (/\/debian\/?$/.test(url) && !/security/.test(url)) return url;
    }
  }
  return 'http://deb.debian.org/debian';
}

export function prepareFixtures(repo, cache) {
  fs.mkdirSync(cache, { recursive: true });
  const fx = {};

  fx.busyboxTar = path.join(cache, 'busybox-rootfs.tar');
  if (!fs.existsSync(fx.busyboxTar)) {
    log('fixture: busybox rootfs');
    sh([path.join(repo, 'test/fixtures/busybox-rootfs.sh'), `${fx.busyboxTar}.tmp`]);
    fs.renameSync(`${fx.busyboxTar}.tmp`, fx.busyboxTar);
  }

  fx.debianTar = path.join(cache, 'debian-bookworm-minbase.tar');
  if (!fs.existsSync(fx.debianTar)) {
    const mirror = debianMirror();
    const dir = fs.mkdtempSync('/dev/shm/ply-bench-debootstrap-');
    log(`fixture: debootstrap --variant=minbase bookworm from ${mirror} (once; about a minute)`);
    try {
      sh(['debootstrap', '--variant=minbase', 'bookworm', dir, mirror], { timeout: 1800 });
      bash(`rm -rf "${dir}"/var/cache/apt/archives/*.deb "${dir}"/var/lib/apt/lists/* "${dir}"/var/log/bootstrap.log`);
      sh(['tar', '--sort=name', '--numeric-owner', '--xattrs', '-C', dir, '-cf', `${fx.debianTar}.tmp`, '.']);
      fs.renameSync(`${fx.debianTar}.tmp`, fx.debianTar);
      fs.writeFileSync(path.join(cache, 'debian-mirror.txt'), `${mirror}\n`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  fx.debianBytes = fs.statSync(fx.debianTar).size;

  fx.debianGz = `${fx.debianTar}.gz`;
  if (!fs.existsSync(fx.debianGz)) bash(`gzip -6 -c "${fx.debianTar}" > "${fx.debianGz}.tmp" && mv "${fx.debianGz}.tmp" "${fx.debianGz}"`);
  fx.debianZst = `${fx.debianTar}.zst`;
  if (!fs.existsSync(fx.debianZst)) bash(`zstd -q -3 -c "${fx.debianTar}" > "${fx.debianZst}.tmp" && mv "${fx.debianZst}.tmp" "${fx.debianZst}"`);

  fx.randomDir = path.join(cache, 'random50');
  const files = Array.from({ length: 5 }, (_, i) => path.join(fx.randomDir, `blob${i}.bin`));
  if (!files.every((f) => fs.existsSync(f) && fs.statSync(f).size === 10 * MiB)) {
    log('fixture: 50 MiB of incompressible files');
    fs.mkdirSync(fx.randomDir, { recursive: true });
    for (const f of files) bash(`head -c ${10 * MiB} /dev/urandom > "${f}"`);
  }
  fx.randomBytes = 50 * MiB;
  if (fx.debianBytes < 50 * MiB) throw new StepError(`the Debian fixture is only ${fx.debianBytes} bytes`);
  return fx;
}

/** Copies the fixtures to the work dir on /dev/shm so reads during timed steps never touch the disk. */
export function stageFixtures(fx, work) {
  const dir = path.join(work, 'fixtures');
  fs.mkdirSync(dir, { recursive: true });
  const out = { ...fx };
  for (const k of ['busyboxTar', 'debianTar', 'debianGz', 'debianZst']) {
    out[k] = path.join(dir, path.basename(fx[k]));
    fs.copyFileSync(fx[k], out[k]);
  }
  out.randomDir = path.join(dir, 'random50');
  sh(['cp', '-a', fx.randomDir, out.randomDir]);
  return out;
}
