// The stages a build runs: stage references by name or index, the stages a target needs, and BuildKit's
// numbering of the steps it shows (`[stage 2/5] RUN …`).
import { parseRunMount } from '../dockerfile/mounts.js';
import { expandVariables } from '../dockerfile/shell.js';
import type { Dockerfile, Stage } from '../dockerfile/parser.js';
import { parseNormalized } from '../reference/reference.js';

/** An earlier stage by (case-insensitive) name. */
export function stageByName(df: Dockerfile, name: string, before: number): Stage | undefined {
  const n = name.toLowerCase();
  return df.stages.find((s) => s.index < before && s.name === n);
}

/** COPY --from: an earlier stage by name or index. */
export function stageRef(df: Dockerfile, from: string, before: number): Stage | undefined {
  if (/^\d+$/.test(from)) {
    const i = Number(from);
    return i < before ? df.stages[i] : undefined;
  }
  return stageByName(df, from, before);
}

/**
 * The stages the target needs, in file order: its FROM <stage>, COPY --from=<stage> and RUN --mount from=<stage>,
 * transitively. `bases`: each stage's FROM expanded; `metaEnv`: the global ARGs.
 */
export function neededStages(df: Dockerfile, target: Stage, bases: string[], metaEnv: Record<string, string>): Stage[] {
  const needed = new Set<number>();
  const visit = (s: Stage) => {
    if (needed.has(s.index)) return;
    needed.add(s.index);
    const baseStage = stageByName(df, bases[s.index]!, s.index);
    if (baseStage) visit(baseStage);
    for (const c of s.commands) {
      const froms: string[] = [];
      if ((c.kind === 'COPY' || c.kind === 'ADD') && c.from !== undefined) froms.push(c.from);
      if (c.kind === 'RUN') {
        for (const m of c.mounts) {
          try {
            const from = parseRunMount(m, (w) => w).from;
            if (from !== undefined) froms.push(from);
          } catch {
            // reported when the step runs
          }
        }
      }
      for (const f of froms) {
        let from: string;
        try {
          from = expandVariables(f, metaEnv);
        } catch {
          continue;
        }
        const dep = stageRef(df, from, s.index);
        if (dep) visit(dep);
      }
    }
  };
  visit(target);
  return df.stages.filter((s) => needed.has(s.index));
}

/** A FROM name as BuildKit prints it (docker.io/library/busybox:latest). */
export function normalizedBase(name: string): string {
  try {
    const r = parseNormalized(name);
    return `${r.domain}/${r.path}${r.digest ? `@${r.digest}` : `:${r.tag ?? 'latest'}`}`;
  } catch {
    return name;
  }
}

/** Instructions BuildKit shows as numbered steps (the others only change the config). */
const VERTEX_KINDS = new Set(['RUN', 'COPY', 'ADD', 'WORKDIR']);

/** BuildKit's vertex numbering for the stages a build runs: `[name n/total]` per stage. */
export class Vertices {
  private readonly stages = new Map<number, { name: string; total: number; fromImage: boolean }>();

  constructor(df: Dockerfile, order: Stage[], bases: string[]) {
    for (const s of order) {
      const base = bases[s.index]!;
      const fromImage = base.toLowerCase() !== 'scratch' && !stageByName(df, base, s.index);
      const total = (fromImage ? 1 : 0) + s.commands.filter((c) => VERTEX_KINDS.has(c.instruction.keyword)).length;
      // One stage: no name; unnamed stages of a multi-stage file are stage-N (as buildkit prints them).
      const name = df.stages.length === 1 ? '' : (s.name ?? `stage-${s.index}`);
      this.stages.set(s.index, { name, total, fromImage });
    }
  }

  /** The BuildKit label of a stage's FROM (`index` -1) or command; undefined for instructions with no vertex. */
  label(stage: Stage, index: number, text: string): string | undefined {
    const v = this.stages.get(stage.index);
    if (!v) return undefined;
    let n: number;
    if (index < 0) {
      if (!v.fromImage) return undefined;
      n = 1;
    } else {
      const cmd = stage.commands[index]!;
      if (!VERTEX_KINDS.has(cmd.instruction.keyword)) return undefined;
      n = (v.fromImage ? 1 : 0) + stage.commands.slice(0, index + 1).filter((c) => VERTEX_KINDS.has(c.instruction.keyword)).length;
    }
    const width = String(v.total).length;
    return `[${v.name ? `${v.name} ` : ''}${String(n).padStart(width)}/${v.total}] ${text}`;
  }
}
