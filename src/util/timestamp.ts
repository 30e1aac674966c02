// docker's --since/--until values (`docker events`, `docker logs`): a Go duration before now ('10m', '1h30m'),
// an RFC 3339 time or a shorter form of one (a date, a date and hour, no zone = local time), or Unix seconds with
// an optional fraction ('1700000000.5'). The port of moby's timestamp.GetTimestamp; times come back as nanoseconds
// since the epoch (bigint: Unix nanoseconds pass 2^53).
import { InvalidArgumentError } from '../errors.js';
import { parseGoDuration } from '../gotemplate/gofmt.js';

/** Go's time.ParseDuration in nanoseconds, or undefined when `s` is not a duration. */
export function durationOrUndefined(s: string): number | undefined {
  try {
    return parseGoDuration(s);
  } catch {
    return undefined;
  }
}

/** Unix seconds with an optional fraction ('1700000000', '1700000000.123456789'), as docker's API takes them. */
export function parseUnixTimestamp(s: string): bigint | undefined {
  const m = /^(-?\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) return undefined;
  const frac = (m[2] ?? '').slice(0, 9).padEnd(9, '0');
  const sec = BigInt(m[1]!);
  return sec * 1_000_000_000n + (sec < 0n ? -1n : 1n) * BigInt(frac || '0');
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?(Z|z|[+-]\d{2}:\d{2})?$/;

/**
 * docker's GetTimestamp: `value` relative to `now` (a duration), an RFC 3339-like time, or Unix seconds.
 * Throws InvalidArgumentError with docker's message when it is none of them.
 */
export function parseTimestamp(value: string, now: number = Date.now()): bigint {
  const d = durationOrUndefined(value);
  if (d !== undefined && value !== '0') return BigInt(Math.round(now * 1e6 - d));
  const t = DATE_RE.exec(value);
  if (t) {
    const [, y, mo, da, h, mi, se, frac, zone] = t;
    const fields = [Number(y), Number(mo), Number(da), Number(h ?? 0), Number(mi ?? 0), Number(se ?? 0)] as const;
    const problem =
      fields[1] < 1 || fields[1] > 12 ? 'month out of range'
      : fields[2] < 1 || fields[2] > daysIn(fields[0], fields[1]) ? 'day out of range'
      : fields[3] > 23 ? 'hour out of range'
      : fields[4] > 59 ? 'minute out of range'
      : fields[5] > 59 ? 'second out of range'
      : undefined;
    if (problem) throw new InvalidArgumentError(`parsing time "${value}": ${problem}`);
    let ms: number;
    if (zone === undefined) {
      ms = new Date(fields[0], fields[1] - 1, fields[2], fields[3], fields[4], fields[5]).getTime();
    } else {
      ms = Date.UTC(fields[0], fields[1] - 1, fields[2], fields[3], fields[4], fields[5]);
      if (zone !== 'Z' && zone !== 'z') {
        const sign = zone[0] === '-' ? -1 : 1;
        ms -= sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
      }
    }
    return BigInt(ms) * 1_000_000n + BigInt((frac ?? '').padEnd(9, '0') || '0');
  }
  // Something with a '-' was meant as a date: docker reports the parser's complaint.
  if (value.includes('-') && !/^-?\d+(\.\d*)?$/.test(value)) throw new InvalidArgumentError(`parsing time "${value}": cannot parse "${value}" as RFC 3339`);
  const unix = parseUnixTimestamp(value);
  if (unix === undefined) throw new InvalidArgumentError(`failed to parse value as time or duration: "${value}"`);
  return unix;
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}
