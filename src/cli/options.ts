// Helpers for commander options shared by the command modules.

/** Collects a repeatable option (`-c A -c B`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
