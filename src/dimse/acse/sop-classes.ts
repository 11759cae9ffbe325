/**
 * The SOP classes negotiation needs to tell apart (PS3.4): the services we implement, and which
 * abstract syntaxes are storage. Storage SOP classes are recognised by their registry root rather
 * than listed one by one: every "...5.1.4.1.1.x" UID is a Storage SOP Class (PS3.4 B.5), and new
 * ones appear with each edition.
 */

export const VERIFICATION = '1.2.840.10008.1.1';

export const PATIENT_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.1.1';
export const PATIENT_ROOT_MOVE = '1.2.840.10008.5.1.4.1.2.1.2';
export const PATIENT_ROOT_GET = '1.2.840.10008.5.1.4.1.2.1.3';
export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
export const STUDY_ROOT_MOVE = '1.2.840.10008.5.1.4.1.2.2.2';
export const STUDY_ROOT_GET = '1.2.840.10008.5.1.4.1.2.2.3';

export const FIND_SOP_CLASSES: ReadonlySet<string> = new Set([PATIENT_ROOT_FIND, STUDY_ROOT_FIND]);
export const MOVE_SOP_CLASSES: ReadonlySet<string> = new Set([PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE]);
export const GET_SOP_CLASSES: ReadonlySet<string> = new Set([PATIENT_ROOT_GET, STUDY_ROOT_GET]);

const STORAGE_ROOT = '1.2.840.10008.5.1.4.1.1.';

/** Storage SOP classes outside the 5.1.4.1.1 root (PS3.4 Table B.5-1). */
const OTHER_STORAGE: ReadonlySet<string> = new Set([
  '1.2.840.10008.5.1.4.34.7', // RT Beams Delivery Instruction
  '1.2.840.10008.5.1.4.34.10', // RT Brachy Application Setup Delivery Instruction
  '1.2.840.10008.5.1.4.38.1', // Hanging Protocol
  '1.2.840.10008.5.1.4.39.1', // Color Palette
  '1.2.840.10008.5.1.4.43.1', // Generic Implant Template
  '1.2.840.10008.5.1.4.44.1', // Implant Assembly Template
  '1.2.840.10008.5.1.4.45.1', // Implant Template Group
]);

/**
 * Query/retrieve and management SOP classes registered under the storage root itself (PS3.4 HH
 * Protocol Approval Q/R, JJ Inventory Q/R): never storage.
 */
const NOT_STORAGE_IN_STORAGE_ROOT: ReadonlySet<string> = new Set([
  '1.2.840.10008.5.1.4.1.1.200.4', // Protocol Approval Information Model - FIND
  '1.2.840.10008.5.1.4.1.1.200.5', // Protocol Approval Information Model - MOVE
  '1.2.840.10008.5.1.4.1.1.200.6', // Protocol Approval Information Model - GET
  '1.2.840.10008.5.1.4.1.1.201.1.1', // Storage Management SOP Instance (a well-known instance, not a class)
  '1.2.840.10008.5.1.4.1.1.201.2', // Inventory - FIND
  '1.2.840.10008.5.1.4.1.1.201.3', // Inventory - MOVE
  '1.2.840.10008.5.1.4.1.1.201.4', // Inventory - GET
  '1.2.840.10008.5.1.4.1.1.201.5', // Inventory Creation
  '1.2.840.10008.5.1.4.1.1.201.6', // Repository Query
]);

/**
 * Registry branches of services that are not storage (verification, storage commitment, print,
 * query/retrieve, worklists, procedure steps ...): never accepted as "unknown storage".
 */
const NON_STORAGE_ROOTS: readonly string[] = [
  '1.2.840.10008.1.',
  '1.2.840.10008.3.',
  '1.2.840.10008.5.1.1.',
  '1.2.840.10008.5.1.4.1.2.',
  '1.2.840.10008.5.1.4.20.', // Defined Procedure Protocol Q/R
  '1.2.840.10008.5.1.4.31',
  '1.2.840.10008.5.1.4.32',
  '1.2.840.10008.5.1.4.33',
  '1.2.840.10008.5.1.4.34.',
  '1.2.840.10008.5.1.4.37',
  '1.2.840.10008.5.1.4.38.',
  '1.2.840.10008.5.1.4.39.',
  '1.2.840.10008.5.1.4.41',
  '1.2.840.10008.5.1.4.42',
  '1.2.840.10008.5.1.4.43.',
  '1.2.840.10008.5.1.4.44.',
  '1.2.840.10008.5.1.4.45.',
];

export function isStorageSopClass(uid: string): boolean {
  return (uid.startsWith(STORAGE_ROOT) && !NOT_STORAGE_IN_STORAGE_ROOT.has(uid)) || OTHER_STORAGE.has(uid);
}

/** A service of the standard that is not storage (whether or not we implement it). */
export function isNonStorageService(uid: string): boolean {
  return (
    uid === VERIFICATION ||
    NOT_STORAGE_IN_STORAGE_ROOT.has(uid) ||
    (!isStorageSopClass(uid) && NON_STORAGE_ROOTS.some((root) => uid.startsWith(root)))
  );
}

/** What a presentation context is for, once accepted. */
export type ServiceKind = 'verification' | 'find' | 'move' | 'get' | 'storage';

/** The FIND SOP class of the same information model as a MOVE or GET SOP class (they share the levels and keys). */
export const FIND_OF_RETRIEVE: Readonly<Record<string, string>> = Object.freeze({
  [PATIENT_ROOT_MOVE]: PATIENT_ROOT_FIND,
  [PATIENT_ROOT_GET]: PATIENT_ROOT_FIND,
  [STUDY_ROOT_MOVE]: STUDY_ROOT_FIND,
  [STUDY_ROOT_GET]: STUDY_ROOT_FIND,
});
