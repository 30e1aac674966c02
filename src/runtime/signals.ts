// Signal names and numbers (Linux, x86_64 numbering), parsed the way `docker kill -s` / `--stop-signal` accept them.

import { InvalidArgumentError } from '../errors.js';

/** Real-time signal range as the kernel sees it. (glibc reserves 32 and 33 for itself; SIGRTMIN is 34 for programs.) */
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

/** Canonical names (without the SIG prefix) of signals 1..31, indexed by number. */
const NAMES: readonly string[] = [
  '',
  'HUP', // 1
  'INT', // 2
  'QUIT', // 3
  'ILL', // 4
  'TRAP', // 5
  'ABRT', // 6
  'BUS', // 7
  'FPE', // 8
  'KILL', // 9
  'USR1', // 10
  'SEGV', // 11
  'USR2', // 12
  'PIPE', // 13
  'ALRM', // 14
  'TERM', // 15
  'STKFLT', // 16
  'CHLD', // 17
  'CONT', // 18
  'STOP', // 19
  'TSTP', // 20
  'TTIN', // 21
  'TTOU', // 22
  'URG', // 23
  'XCPU', // 24
  'XFSZ', // 25
  'VTALRM', // 26
  'PROF', // 27
  'WINCH', // 28
  'IO', // 29
  'PWR', // 30
  'SYS', // 31
];

/** Name (without SIG) → number, including the aliases docker's signal map knows. */
const BY_NAME: ReadonlyMap<string, number> = new Map<string, number>([
  ...NAMES.map((n, i) => [n, i] as [string, number]).filter(([n]) => n !== ''),
  ['IOT', 6],
  ['CLD', 17],
  ['POLL', 29],
]);

function invalid(s: string): InvalidArgumentError {
  return new InvalidArgumentError(`Invalid signal: ${s}`);
}

/**
 * Parses 'SIGTERM', 'TERM', 'sigterm', '15', 'SIGRTMIN+3', 'RTMAX-2' into a signal number (1..64).
 * Throws InvalidArgumentError `Invalid signal: X` (dockerd's words) for anything else (including 0, as docker does).
 */
export function parseSignal(s: string): number {
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= SIGRTMAX) return n;
    throw invalid(s);
  }
  let name = s.toUpperCase();
  if (name.startsWith('SIG')) name = name.slice(3);
  const fixed = BY_NAME.get(name);
  if (fixed !== undefined) return fixed;
  const rt = /^RT(MIN|MAX)(?:([+-])([0-9]+))?$/.exec(name);
  if (rt) {
    const base = rt[1] === 'MIN' ? SIGRTMIN : SIGRTMAX;
    const off = rt[3] === undefined ? 0 : Number(rt[3]);
    // RTMIN counts up, RTMAX counts down (as in `kill -l`); the other direction is not a valid spelling.
    if (rt[2] !== undefined && (rt[1] === 'MIN') !== (rt[2] === '+')) throw invalid(s);
    const n = rt[1] === 'MIN' ? base + off : base - off;
    if (n >= SIGRTMIN && n <= SIGRTMAX) return n;
  }
  throw invalid(s);
}

/** 15 → 'SIGTERM', 34 → 'SIGRTMIN', 36 → 'SIGRTMIN+2', 62 → 'SIGRTMAX-2'. Throws InvalidArgumentError outside 1..64. */
export function signalName(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > SIGRTMAX) throw invalid(String(n));
  if (n < NAMES.length) return `SIG${NAMES[n]}`;
  if (n < SIGRTMIN) return `SIG${n}`; // 32, 33: reserved by glibc, no name
  if (n === SIGRTMIN) return 'SIGRTMIN';
  if (n === SIGRTMAX) return 'SIGRTMAX';
  // Same split as `kill -l`: the lower half counts from RTMIN, the upper half down from RTMAX.
  return n - SIGRTMIN <= (SIGRTMAX - SIGRTMIN) / 2 ? `SIGRTMIN+${n - SIGRTMIN}` : `SIGRTMAX-${SIGRTMAX - n}`;
}

/** Signals a foreground runtime (`runc run`, `runc exec`) passes on to the container, or acts on (SIGWINCH). */
const PROXIED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
let inWorker = false;

/** Marks this process as a service worker: it runs in its own session, so signals reach it only from its client. */
export function enableSignalProxy(): void {
  inWorker = true;
}

/**
 * How a foreground runtime is started so that signals sent to ply reach the container once (docker's sig-proxy):
 * a runtime that reads the terminal shares ply's process group, where the terminal's own signals (Ctrl-C, resize)
 * reach it directly; any other runs in its own session and ply passes on what it gets. A service worker always
 * passes signals on (a terminal never signals it; its client forwards what it gets).
 */
export function runtimeSignals(usesTerminal: boolean): { ownSession: boolean; proxy: boolean } {
  return { ownSession: !usesTerminal, proxy: inWorker || !usesTerminal };
}

/** While a foreground runtime process runs, passes the signals this process gets on to it; returns the undo. */
export function proxySignals(child: { kill(signal: NodeJS.Signals): boolean }, proxy = true): () => void {
  if (!proxy) return () => undefined;
  const handlers = PROXIED.map((sig) => {
    const h = (): void => void child.kill(sig);
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}
