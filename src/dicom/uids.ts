import { randomUUID } from 'node:crypto';

/**
 * Our Implementation Class UID (PS3.7 D.3.3.2), sent in A-ASSOCIATE and written to File Meta
 * (0002,0012). A 2.25 UID (ISO/IEC 9834-8) generated once: it identifies the implementation,
 * so it must never change between runs.
 */
export const IMPLEMENTATION_CLASS_UID = '2.25.114847058732577807476060071028270329921';

/** Implementation Version Name (0002,0013): at most 16 characters of the SH repertoire. */
export const IMPLEMENTATION_VERSION_NAME = 'PACSNODE_0.1';

/**
 * A new globally unique UID: "2.25." and the decimal value of a random (version 4) UUID, as
 * ISO/IEC 9834-8 prescribes. At most 44 characters and never a leading zero, since BigInt
 * formatting has none.
 */
export function generateUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}
