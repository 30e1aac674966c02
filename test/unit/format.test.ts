import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { formatFixed, formatG } from '../../src/gotemplate/gofmt.js';
import {
  bytesSize,
  createdSince,
  dockerTime,
  goTimeString,
  humanDuration,
  humanSize,
  humanSizeWithPrecision,
  rfc3339Nano,
  shortId,
  truncateCommand,
} from '../../src/cli/format.js';

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
const MONTH = 30 * DAY;
const YEAR = 365 * DAY;

describe('formatG (Go %g)', () => {
  it('formats with a precision like %.4g, trimming zeros', () => {
    assert.equal(formatG(12.345678, 4), '12.35');
    assert.equal(formatG(100, 4), '100');
    assert.equal(formatG(1.5, 4), '1.5');
    assert.equal(formatG(0, 4), '0');
    assert.equal(formatG(-12345, 4), '-1.234e+04');
    assert.equal(formatG(999.96, 4), '1000');
  });
  it('rounds exact halves to even, like Go', () => {
    assert.equal(formatG(100.25, 4), '100.2');
    assert.equal(formatG(100.75, 4), '100.8');
    assert.equal(formatG(2.5, 1), '2');
    assert.equal(formatFixed(2.5, 0, 'f'), '2');
    assert.equal(formatFixed(1.005, 2, 'f'), '1.00'); // 1.005 is 1.00499… in binary
  });
  it('uses the shortest form with exponent thresholds -4 and 21/6 for %v', () => {
    assert.equal(formatG(1e6), '1e+06');
    assert.equal(formatG(123456), '123456');
    assert.equal(formatG(0.0001), '0.0001');
    assert.equal(formatG(0.00001), '1e-05');
    assert.equal(formatG(NaN), 'NaN');
    assert.equal(formatG(-Infinity), '-Inf');
  });
});

describe('humanSize (go-units HumanSize)', () => {
  it('uses decimal units with 4 significant digits', () => {
    assert.equal(humanSize(0), '0B');
    assert.equal(humanSize(1), '1B');
    assert.equal(humanSize(999), '999B');
    assert.equal(humanSize(1000), '1kB');
    assert.equal(humanSize(5600), '5.6kB');
    assert.equal(humanSize(12345), '12.35kB');
    assert.equal(humanSize(12345678), '12.35MB');
    assert.equal(humanSize(130_000_000), '130MB');
    assert.equal(humanSize(1_500_000_000), '1.5GB');
    assert.equal(humanSize(2.5e12), '2.5TB');
  });
  it('keeps go-units edge cases', () => {
    assert.equal(humanSize(999_960), '1000kB'); // rounds up without moving to the next unit
    assert.equal(humanSize(100_250), '100.2kB'); // exact half, rounded to even
    assert.equal(humanSize(1e30), '1e+06YB');
  });
  it('humanSizeWithPrecision(…, 3) is what docker images prints', () => {
    assert.equal(humanSizeWithPrecision(12345678, 3), '12.3MB');
    assert.equal(humanSizeWithPrecision(7_800_000, 3), '7.8MB');
    assert.equal(humanSizeWithPrecision(77_861_230, 3), '77.9MB');
    assert.equal(humanSizeWithPrecision(1_234_567_890, 3), '1.23GB');
  });
});

describe('bytesSize (go-units BytesSize)', () => {
  it('uses binary units', () => {
    assert.equal(bytesSize(0), '0B');
    assert.equal(bytesSize(1000), '1000B');
    assert.equal(bytesSize(1024), '1KiB');
    assert.equal(bytesSize(1536 * 1024), '1.5MiB');
    assert.equal(bytesSize(2 ** 30 * 7.75), '7.75GiB');
    assert.equal(bytesSize(44 * 1024 + 100), '44.1KiB');
  });
});

describe('humanDuration (go-units HumanDuration)', () => {
  const cases: Array<[number, string]> = [
    [450, 'Less than a second'],
    [-5 * SEC, 'Less than a second'],
    [1 * SEC, '1 second'],
    [1999, '1 second'],
    [45 * SEC, '45 seconds'],
    [59 * SEC, '59 seconds'],
    [60 * SEC, 'About a minute'],
    [119 * SEC, 'About a minute'],
    [3 * MIN, '3 minutes'],
    [35 * MIN + 40 * SEC, '35 minutes'],
    [59 * MIN, '59 minutes'],
    [1 * HOUR, 'About an hour'],
    [1 * HOUR + 29 * MIN, 'About an hour'],
    [1 * HOUR + 31 * MIN, '2 hours'],
    [3 * HOUR + 29 * MIN, '3 hours'],
    [3 * HOUR + 31 * MIN, '4 hours'],
    [24 * HOUR, '24 hours'],
    [DAY + 12 * HOUR, '36 hours'],
    [47 * HOUR + 29 * MIN, '47 hours'],
    [2 * DAY, '2 days'],
    [7 * DAY, '7 days'],
    [13 * DAY + 5 * HOUR, '13 days'],
    [2 * WEEK, '2 weeks'],
    [2 * WEEK + 4 * DAY, '2 weeks'],
    [3 * WEEK, '3 weeks'],
    [1 * MONTH, '4 weeks'],
    [MONTH + 2 * WEEK, '6 weeks'],
    [2 * MONTH, '2 months'],
    [3 * MONTH + 1 * WEEK, '3 months'],
    [13 * MONTH, '13 months'],
    [24 * MONTH, '24 months'],
    [24 * MONTH + 2 * WEEK, '2 years'],
    [3 * YEAR + 2 * MONTH, '3 years'],
  ];
  for (const [ms, want] of cases) {
    it(`${ms}ms → ${want}`, () => assert.equal(humanDuration(ms), want));
  }
});

describe('createdSince', () => {
  it('appends "ago" and works on whole seconds like the engine API', () => {
    const now = new Date('2026-11-26T23:00:52Z');
    assert.equal(createdSince(new Date(now.getTime() - 3 * HOUR), now), '3 hours ago');
    assert.equal(createdSince(new Date(now.getTime() - 2 * WEEK), now), '2 weeks ago');
    assert.equal(createdSince(now, now), 'Less than a second ago');
    // created at …:51.900 counts as …:51 → 1.5 s → "1 second"
    const later = new Date(now.getTime() + 500);
    assert.equal(createdSince(new Date(now.getTime() - 100), later), '1 second ago');
  });
});

describe('times', () => {
  const d = new Date('2026-11-26T23:00:52.250Z');
  it('dockerTime prints Go time.Time.String() without fractions', () => {
    assert.equal(dockerTime(d, 'UTC'), '2026-11-26 23:00:52 +0000 UTC');
    assert.equal(goTimeString(d, 'UTC'), '2026-11-26 23:00:52.25 +0000 UTC');
    assert.match(dockerTime(d), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [-+]\d{4} \S+$/);
  });
  it('dockerTime uses tzdata abbreviations and offsets', { skip: !existsSync('/usr/share/zoneinfo/Europe/Berlin') }, () => {
    assert.equal(dockerTime(d, 'Europe/Berlin'), '2026-11-27 00:00:52 +0100 CET');
    assert.equal(dockerTime(new Date('2026-07-01T12:00:00Z'), 'Europe/Berlin'), '2026-07-01 14:00:00 +0200 CEST');
    assert.equal(dockerTime(d, 'America/New_York'), '2026-11-26 18:00:52 -0500 EST');
    assert.equal(dockerTime(d, 'Asia/Kolkata'), '2026-11-27 04:30:52 +0530 IST');
  });
  it('rfc3339Nano trims fractional zeros and prints Z for UTC', () => {
    assert.equal(rfc3339Nano(d), '2026-11-26T23:00:52.25Z');
    assert.equal(rfc3339Nano(new Date('2024-01-02T03:04:05Z')), '2024-01-02T03:04:05Z');
    assert.equal(rfc3339Nano('2024-01-02T03:04:05.123456789Z'), '2024-01-02T03:04:05.123456789Z');
    assert.equal(rfc3339Nano('2024-01-02T03:04:05.120000000Z'), '2024-01-02T03:04:05.12Z');
    assert.equal(rfc3339Nano('2024-01-02T03:04:05.000Z'), '2024-01-02T03:04:05Z');
    assert.equal(rfc3339Nano('2024-01-02T03:04:05+00:00'), '2024-01-02T03:04:05Z');
    assert.equal(rfc3339Nano('2024-01-02T03:04:05.5+02:00'), '2024-01-02T03:04:05.5+02:00');
  });
});

describe('shortId and truncateCommand', () => {
  it('shortId drops the algorithm and keeps 12 characters', () => {
    assert.equal(shortId('sha256:abcdef0123456789abcdef'), 'abcdef012345');
    assert.equal(shortId('abcdef0123456789'), 'abcdef012345');
    assert.equal(shortId('abc'), 'abc');
  });
  it('truncateCommand behaves like docker Ellipsis', () => {
    assert.equal(truncateCommand('/bin/sh -c echo hello world', 20), '/bin/sh -c echo hel…');
    assert.equal(truncateCommand('/bin/sh -c echo hello world', 20).length, 20);
    assert.equal(truncateCommand('short', 20), 'short');
    assert.equal(truncateCommand('exactly', 7), 'exactly');
    assert.equal(truncateCommand('abc', 1), 'a');
    assert.equal(truncateCommand('abc', 0), '');
    assert.equal(truncateCommand('中文中文中文中文中文中文', 10), '中文中文…'); // wide runes count 2
    assert.equal(truncateCommand('héllo wörld', 6), 'héllo…');
  });
});
