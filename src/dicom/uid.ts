/**
 * The one UID validator (SPEC §3), shared by ingest, URL paths and query keys, so an instance that
 * was accepted can always be addressed again with the same rules.
 */

export type UidValidation =
  | { ok: true; uid: string; leadingZero: boolean }
  | { ok: false; reason: UidInvalidReason };

export type UidInvalidReason = 'empty' | 'too_long' | 'invalid_character' | 'empty_component';

const MAX_UID_LENGTH = 64;

/** Strips the padding DICOM allows after a UI value (NUL) and the spaces lenient writers add. */
export function normalizeUid(raw: string): string {
  let end = raw.length;
  while (end > 0) {
    const c = raw.charCodeAt(end - 1);
    if (c !== 0 && c !== 0x20) break;
    end--;
  }
  return end === raw.length ? raw : raw.slice(0, end);
}

/**
 * 1–64 characters of [0-9.] with no empty component. A component with a leading zero ("1.02.3")
 * violates PS3.5 9.1 but is common in the wild: it is accepted and flagged, so ingest can store it
 * with WarningReason B007 instead of refusing the instance.
 */
export function validateUid(raw: string): UidValidation {
  const uid = normalizeUid(raw);
  if (uid.length === 0) return { ok: false, reason: 'empty' };
  if (uid.length > MAX_UID_LENGTH) return { ok: false, reason: 'too_long' };
  let leadingZero = false;
  let componentStart = 0;
  for (let i = 0; i <= uid.length; i++) {
    const c = i < uid.length ? uid.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (i === componentStart) return { ok: false, reason: 'empty_component' };
      if (uid.charCodeAt(componentStart) === 0x30 && i - componentStart > 1) leadingZero = true;
      componentStart = i + 1;
    } else if (c < 0x30 || c > 0x39) {
      return { ok: false, reason: 'invalid_character' };
    }
  }
  return { ok: true, uid, leadingZero };
}

/** Convenience for callers that only need a yes/no (query keys, URL segments). */
export function isValidUid(raw: string): boolean {
  return validateUid(raw).ok;
}

/**
 * A UID that addresses something (a URL path, a REST body, an archive call): valid and without
 * padding. Stored UIDs are kept without their padding, so a padded one names nothing, and its NUL
 * must never reach a database (PostgreSQL refuses U+0000 in text).
 */
export function isAddressableUid(raw: string): boolean {
  return normalizeUid(raw) === raw && isValidUid(raw);
}
