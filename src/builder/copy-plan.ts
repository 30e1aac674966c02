// COPY and ADD as written, resolved before anything is read: the words expanded, --chmod checked, heredoc files,
// the destination made absolute (a directory when it ends in /), and the sources split into URLs (ADD) and paths.
import path from 'node:path';
import { expandVariables } from '../dockerfile/shell.js';
import type { ParsedCommand, SourceContent } from '../dockerfile/parser.js';
import { BuildError } from './errors.js';

export interface CopyPlan {
  /** The destination as written (expanded) and as an absolute path in the stage (ending in / for a directory). */
  dest: string;
  absDest: string;
  sources: string[];
  /** ADD's http(s) sources. */
  urls: string[];
  /** Paths in the context, or in the stage or image of `from`. */
  local: string[];
  from?: string;
  chown?: string;
  chmodText?: string;
  chmod?: number;
  /** Heredoc files, their variables expanded when their delimiter was not quoted. */
  contents: SourceContent[];
  /** The step's history line. */
  createdBy: string;
}

/** Only `$VAR` / `${…}` expansions in heredoc content: quotes and backslashes stay as written. */
function expandHeredoc(data: string, env: Record<string, string>): string {
  return data.replace(/\\\$|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*/g, (m) => (m === '\\$' ? '$' : expandVariables(m, env)));
}

/** `expand` expands a word with the stage's variables (`env`); `workingDir` is the stage's WORKDIR. */
export function planCopy(cmd: ParsedCommand & { kind: 'COPY' | 'ADD' }, env: Record<string, string>, workingDir: string, expand: (word: string) => string): CopyPlan {
  const kw = cmd.kind;
  const dest = expand(cmd.dest);
  const sources = cmd.sources.map(expand);
  const from = cmd.from !== undefined ? expand(cmd.from) : undefined;
  const chown = cmd.chown ? expand(cmd.chown) : undefined;
  const chmodText = cmd.chmod ? expand(cmd.chmod) : undefined;
  let chmod: number | undefined;
  if (chmodText !== undefined) {
    if (!/^[0-7]{3,4}$/.test(chmodText)) throw new BuildError(`invalid chmod parameter: ${chmodText} (ply supports octal modes)`);
    chmod = parseInt(chmodText, 8);
  }
  const contents = cmd.contents.map((c) => ({ ...c, data: c.expand ? expandHeredoc(c.data, env) : c.data }));
  const dirDest = dest.endsWith('/') || dest === '.' || dest.endsWith('/.') || dest === '..' || dest.endsWith('/..');
  if (sources.length + contents.length > 1 && !dirDest) {
    throw new BuildError(`When using ${kw} with more than one source file, the destination must be a directory and end with a /`);
  }
  let absDest = path.posix.join(dest.startsWith('/') ? '/' : workingDir, dest);
  if (dirDest && !absDest.endsWith('/')) absDest += '/';
  const urls: string[] = [];
  const local: string[] = [];
  for (const s of sources) (kw === 'ADD' && /^https?:\/\//i.test(s) ? urls : local).push(s);
  if (cmd.checksum && (local.length > 0 || urls.length !== 1)) throw new BuildError('checksum can\'t be specified for multiple sources or non-HTTP(S) sources');
  const createdBy = `${kw} ${[...sources, ...contents.map((c) => `<<${c.path}`), dest].join(' ')} # buildkit`;
  return { dest, absDest, sources, urls, local, from, chown, chmodText, chmod, contents, createdBy };
}
