/**
 * Person Name normalisation for matching (SPEC §3: PN case-insensitive and accent-sensitive).
 * Stored in `*_norm` columns and applied to query values, so SQL compares plain strings
 * (SQLite's LOWER folds ASCII only, hence normalising here and not in SQL).
 *
 * - NFC, then toLowerCase (full Unicode case folding of the platform, accents kept);
 * - trailing empty components (`^`) of each component group and trailing empty groups (`=`) removed,
 *   so `Doe^John^^^` equals `DOE^JOHN`;
 * - surrounding spaces of each component removed.
 */
export function normalizePersonName(value: string): string {
  const groups = value.normalize('NFC').toLowerCase().split('=');
  const normGroups = groups.map((g) => {
    const comps = g.split('^').map((c) => c.trim());
    while (comps.length > 0 && comps[comps.length - 1] === '') comps.pop();
    return comps.join('^');
  });
  while (normGroups.length > 0 && normGroups[normGroups.length - 1] === '') normGroups.pop();
  return normGroups.join('=');
}
