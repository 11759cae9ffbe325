/**
 * An unexpected error's text as it may be logged. A database driver's message can quote the value
 * it failed on (PostgreSQL: `value "…" is out of range for type integer`, `invalid input syntax
 * for type integer: "…"`), and that value can be a query key holding patient data, which is never
 * logged: every double-quoted part is masked. Bounded in length.
 */
export function loggableError(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const masked = text.replace(/"(?:[^"\\]|\\.)*"?/g, '"…"');
  return masked.length > 500 ? `${masked.slice(0, 500)}…` : masked;
}
