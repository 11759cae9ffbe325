/**
 * DIMSE status codes (PS3.7 Annex C, PS3.4 Annexes B and C), and the one table that maps the
 * archive's neutral ingest outcome to a C-STORE status (ARCHITECTURE rule 7).
 */
import { IngestFailure, IngestWarning, type IngestOutcome } from '../../archive/ingest/outcome.js';

export const Status = {
  SUCCESS: 0x0000,
  PENDING: 0xff00,
  /** C-FIND pending: optional keys were not supported for existence and/or matching. */
  PENDING_WARNING: 0xff01,
  CANCEL: 0xfe00,
  /** Warning: coercion of data elements (C-STORE); sub-operations complete with failures (C-MOVE/C-GET). */
  WARNING_COERCION: 0xb000,
  WARNING_ELEMENTS_DISCARDED: 0xb006,
  WARNING_DATA_SET_DOES_NOT_MATCH: 0xb007,
  OUT_OF_RESOURCES: 0xa700,
  /** C-FIND/C-MOVE/C-GET: unable to calculate the number of matches. */
  OUT_OF_RESOURCES_MATCHES: 0xa701,
  MOVE_DESTINATION_UNKNOWN: 0xa801,
  DATA_SET_DOES_NOT_MATCH_SOP_CLASS: 0xa900,
  IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS: 0xa900,
  STUDY_MISMATCH: 0xa901,
  CANNOT_UNDERSTAND: 0xc000,
  TRANSFER_SYNTAX_NOT_SUPPORTED: 0xc122,
  PATIENT_MISMATCH: 0xc410,
  DUPLICATE_SOP_INSTANCE: 0x0111,
  PROCESSING_FAILURE: 0x0110,
  SOP_CLASS_NOT_SUPPORTED: 0x0122,
  UNRECOGNIZED_OPERATION: 0x0211,
} as const;

/** The C-STORE failure status of each IngestFailure. */
const STORE_FAILURE: Readonly<Record<IngestFailure, number>> = {
  [IngestFailure.OUT_OF_RESOURCES]: Status.OUT_OF_RESOURCES,
  [IngestFailure.MISSING_ATTRIBUTE]: Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
  [IngestFailure.NOT_PARSEABLE]: Status.CANNOT_UNDERSTAND,
  [IngestFailure.TRANSFER_SYNTAX_NOT_SUPPORTED]: Status.TRANSFER_SYNTAX_NOT_SUPPORTED,
  [IngestFailure.SOP_CLASS_REFUSED]: Status.SOP_CLASS_NOT_SUPPORTED,
  [IngestFailure.STUDY_MISMATCH]: Status.STUDY_MISMATCH,
  [IngestFailure.PATIENT_MISMATCH]: Status.PATIENT_MISMATCH,
  [IngestFailure.DUPLICATE]: Status.DUPLICATE_SOP_INSTANCE,
  [IngestFailure.PROCESSING_FAILURE]: Status.PROCESSING_FAILURE,
};

/** Warnings in the order of precedence: a response carries one status, the most telling one. */
const STORE_WARNINGS: readonly (readonly [IngestWarning, number])[] = [
  [IngestWarning.COERCED, Status.WARNING_COERCION],
  [IngestWarning.INVALID_INDEXED_VALUE, Status.WARNING_DATA_SET_DOES_NOT_MATCH],
  [IngestWarning.ELEMENTS_DISCARDED, Status.WARNING_ELEMENTS_DISCARDED],
];

/** The C-STORE-RSP status for an ingest outcome. */
export function storeStatus(outcome: IngestOutcome): number {
  if (!outcome.ok) return STORE_FAILURE[outcome.failure ?? IngestFailure.PROCESSING_FAILURE];
  for (const [warning, status] of STORE_WARNINGS) if (outcome.warnings.includes(warning)) return status;
  return Status.SUCCESS;
}

export function isFailure(status: number): boolean {
  return status !== Status.SUCCESS && status !== Status.PENDING && status !== Status.PENDING_WARNING && status !== Status.CANCEL && (status & 0xf000) !== 0xb000;
}
