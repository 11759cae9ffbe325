/**
 * DICOM JSON model (PS3.18 Annex F) — the internal metadata form of pacsnode.
 * Tags are 8 upper-case hex digits ("0020000D"). Keyword views exist only in tests and UIs.
 */
export type Tag = string;

export type VR =
  | 'AE' | 'AS' | 'AT' | 'CS' | 'DA' | 'DS' | 'DT' | 'FD' | 'FL' | 'IS' | 'LO' | 'LT' | 'OB' | 'OD'
  | 'OF' | 'OL' | 'OV' | 'OW' | 'PN' | 'SH' | 'SL' | 'SQ' | 'SS' | 'ST' | 'SV' | 'TM' | 'UC' | 'UI'
  | 'UL' | 'UN' | 'UR' | 'US' | 'UT' | 'UV';

/** A Person Name value in DICOM JSON: up to three component groups. */
export interface PersonName {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

export type DicomJsonValue = string | number | PersonName | DicomJsonDataset | null;

/**
 * Location of a binary value inside the stored Part-10 blob (bytes [offset, offset+length)).
 * Stored in the index instead of the value when the value is longer than bulkdata_threshold;
 * edges turn it into a BulkDataURI. `length` is undefined for undefined-length (encapsulated) values.
 */
export interface BulkRef {
  offset: number;
  length?: number;
}

export interface DicomJsonElement {
  vr: VR;
  Value?: DicomJsonValue[];
  InlineBinary?: string;
  BulkDataURI?: string;
  /** pacsnode-internal: where the value lies in the blob. Never emitted as-is by an edge. */
  _bulk?: BulkRef;
}

export type DicomJsonDataset = Record<Tag, DicomJsonElement>;
