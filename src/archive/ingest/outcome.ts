/**
 * Neutral per-instance ingest outcome. Edges map it: STOW-RS FailureReason/WarningReason
 * (http/dicomweb/stow.ts) and C-STORE status (dimse/message/status.ts).
 */
export const IngestFailure = {
  /** A700 / A7xx: out of resources (disk full, over max_instance_bytes). */
  OUT_OF_RESOURCES: 'OUT_OF_RESOURCES',
  /** A900: a required attribute is missing or invalid. */
  MISSING_ATTRIBUTE: 'MISSING_ATTRIBUTE',
  /** C000: not a parseable Part-10 file. */
  NOT_PARSEABLE: 'NOT_PARSEABLE',
  /** C122: transfer syntax not supported. */
  TRANSFER_SYNTAX_NOT_SUPPORTED: 'TRANSFER_SYNTAX_NOT_SUPPORTED',
  /** 0122: SOP class refused. */
  SOP_CLASS_REFUSED: 'SOP_CLASS_REFUSED',
  /** A901: the instance is outside the study named in the URL. */
  STUDY_MISMATCH: 'STUDY_MISMATCH',
  /** C410: the study belongs to another patient (on_patient_mismatch = reject). */
  PATIENT_MISMATCH: 'PATIENT_MISMATCH',
  /** 0111: the SOP Instance UID exists (on_duplicate = reject). */
  DUPLICATE: 'DUPLICATE',
  /** 0110: any other failure. */
  PROCESSING_FAILURE: 'PROCESSING_FAILURE',
} as const;
export type IngestFailure = (typeof IngestFailure)[keyof typeof IngestFailure];

export const IngestWarning = {
  /** B000: coercion of data elements, or a patient mismatch accepted. */
  COERCED: 'COERCED',
  /** B006: elements discarded. */
  ELEMENTS_DISCARDED: 'ELEMENTS_DISCARDED',
  /** B007: stored although an indexed value is invalid (left unindexed), e.g. a UID with a leading-zero component. */
  INVALID_INDEXED_VALUE: 'INVALID_INDEXED_VALUE',
} as const;
export type IngestWarning = (typeof IngestWarning)[keyof typeof IngestWarning];

export interface IngestOutcome {
  ok: boolean;
  failure?: IngestFailure;
  warnings: IngestWarning[];
  /** Human-readable reason (no PHI). */
  message?: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
  studyUid?: string;
  seriesUid?: string;
  transferSyntaxUid?: string;
  /** 'stored' new, 'duplicate' same bytes already stored, 'replaced' other bytes replaced the old. */
  disposition?: 'stored' | 'duplicate' | 'replaced';
  size?: number;
}
