// The `created_by` of a config instruction's history entry, worded as BuildKit writes it (`ENV A=1`,
// `CMD ["sh" "-c" "x"]`, `VOLUME [/data]`): the history `docker history` shows, and part of the step's key.
import { expandWords, parseKeyValues } from '../dockerfile/shell.js';
import type { Instruction } from '../dockerfile/parser.js';
import type { ContainerConfig } from '../oci/types.js';

/** Go's %q of a string list, as buildkit's history shows CMD and ENTRYPOINT. */
function goQuoteList(list: readonly string[] | null | undefined): string {
  return `[${(list ?? []).map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** The history line of a config instruction that turned `before` into `after`; `env` expands its words. */
export function configCreatedBy(ins: Instruction, before: ContainerConfig, after: ContainerConfig, env: Record<string, string>): string {
  switch (ins.keyword) {
    case 'ENV':
    case 'LABEL':
      return `${ins.keyword} ${parseKeyValues(ins.args, ins.keyword, env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`;
    case 'CMD':
      return `CMD ${goQuoteList(after.Cmd)}`;
    case 'ENTRYPOINT':
      return `ENTRYPOINT ${goQuoteList(after.Entrypoint)}`;
    case 'EXPOSE':
      return `EXPOSE ${expandWords(ins.args, env).join(' ')}`;
    case 'USER':
      return `USER ${after.User ?? ''}`;
    case 'WORKDIR':
      return `WORKDIR ${after.WorkingDir ?? '/'}`;
    case 'VOLUME':
      return `VOLUME [${Object.keys(after.Volumes ?? {})
        .filter((v) => !(v in (before.Volumes ?? {})))
        .join(' ')}]`;
    case 'STOPSIGNAL':
      return `STOPSIGNAL ${after.StopSignal ?? ''}`;
    case 'ONBUILD':
      return `ONBUILD ${(after.OnBuild ?? [])[(after.OnBuild ?? []).length - 1] ?? ''}`;
    default:
      return ins.original;
  }
}
