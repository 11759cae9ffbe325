// The printed table: each figure beside its aim (issue 2) and PASS/MISS.

export interface Row {
  readonly figure: string;
  readonly value: number;
  readonly unit: string;
  readonly digits?: number;
  /** The aim, when the issue sets one. */
  readonly aim?: { readonly op: '>=' | '<=' | '<'; readonly value: number };
}

export type Verdict = 'PASS' | 'MISS' | '';

export function verdict(row: Row): Verdict {
  if (!row.aim) return '';
  if (!Number.isFinite(row.value)) return 'MISS';
  switch (row.aim.op) {
    case '>=':
      return row.value >= row.aim.value ? 'PASS' : 'MISS';
    case '<=':
      return row.value <= row.aim.value ? 'PASS' : 'MISS';
    case '<':
      return row.value < row.aim.value ? 'PASS' : 'MISS';
  }
}

const OP_TEXT = { '>=': '≥', '<=': '≤', '<': '<' } as const;

export function formatTable(title: string, rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.figure,
    `${Number.isFinite(r.value) ? r.value.toFixed(r.digits ?? 1) : 'n/a'} ${r.unit}`.trim(),
    r.aim ? `${OP_TEXT[r.aim.op]} ${r.aim.value} ${r.unit}`.trim() : '',
    verdict(r),
  ]);
  const withAims = rows.some((r) => r.aim !== undefined);
  const header = withAims ? ['Figure', 'Value', 'Aim', ''] : ['Figure', 'Value'];
  if (!withAims) for (const c of cells) c.length = 2;
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]): string =>
    c.map((text, i) => (i === 1 ? text.padStart(widths[i] ?? 0) : text.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [title, rule, line(header), rule, ...cells.map(line), rule].join('\n');
}
