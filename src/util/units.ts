// go-units (github.com/docker/go-units) durations, as dockerd writes them in a container's Status and the docker
// CLI in its CREATED columns: shared by the engine and the faces.

/**
 * go-units HumanDuration of a duration in milliseconds: 'Less than a second', '1 second',
 * '45 seconds', 'About a minute', '35 minutes', 'About an hour', '2 hours' … '47 hours',
 * '2 days' … '13 days', '2 weeks' … '8 weeks', '2 months' … '24 months', '2 years'.
 * Hours are rounded (+0.5); days, weeks, months and years are whole hours divided down (floored).
 */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(Math.trunc(ms / 3_600_000) / 24 / 365)} years`;
}

/**
 * go-units RAMInBytes: '16m', '1.5g', '512k', '1024', '2GiB' in binary units (k = 1024); -1 stays -1 (unlimited).
 * Throws with go-units' message for anything else.
 */
export function ramInBytes(s: string): number {
  if (s === '-1') return -1;
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (!m) throw new Error(`invalid size: '${s}'`);
  const n = Number(m[1]);
  if (!Number.isFinite(n)) throw new Error(`invalid size: '${s}'`);
  const exp = m[2] ? 'kmgtp'.indexOf(m[2].toLowerCase()) + 1 : 0;
  return Math.floor(n * 1024 ** exp);
}
