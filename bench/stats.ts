// Small numeric helpers for the figures.

/** The q-quantile (0..1) by the nearest-rank method: the value below which q of the samples fall. */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

export function mean(samples: readonly number[]): number {
  return samples.length === 0 ? Number.NaN : samples.reduce((a, b) => a + b, 0) / samples.length;
}

export const MB = 1_000_000;
export const MiB = 1024 * 1024;

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
