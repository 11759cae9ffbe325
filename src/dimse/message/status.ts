/**
 * DIMSE status codes (PS3.7 Annex C, PS3.4 Annexes B and C), and the one table that maps the
 * archive's neutral ingest outcome to a C-STORE status (ARCHITECTURE rule 7); findFailure maps the
 * errors of archive.query to C-FIND failure statuses.
 */
import { isArchiveError } from '../../archive/errors.js';
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
  /** The Message ID is that of an operation still running (PS3.7 C.5.1). */
  DUPLICATE_INVOCATION: 0x0210,
  /** Refused: not authorized (PS3.7 C.5.x general status). */
  NOT_AUTHORIZED: 0x0124,
  /** C-FIND failure "Unable to process" (C000–CFFF): the query failed while it was being run. */
  UNABLE_TO_PROCESS: 0xc001,
} as const;

/**
 * How a C-STORE-RSP status counts (PS3.7 C.1-C.3, PS3.4 B.2.3): 0000 success; the warning
 * statuses 0001, 0107 (attribute list error), 0116 (attribute value out of range) and Bxxx;
 * anything else failure.
 */
export function storeOutcomeOf(status: number): 'success' | 'warning' | 'failure' {
  if (status === Status.SUCCESS) return 'success';
  if (status === 0x0001 || status === 0x0107 || status === 0x0116 || (status & 0xf000) === 0xb000) return 'warning';
  return 'failure';
}

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

/** A failed C-FIND's status, and the key to name in Offending Element (0000,0901) when one is at fault. */
export interface FindFailure {
  status: number;
  /** The offending key as the archive named it (a tag of 8 hex digits, or a keyword). */
  key?: string;
  /**
   * The Error Comment (0000,0902) to send: the archive's own message for an ArchiveError (written
   * for the caller: the key at fault, the unavailable store), a fixed text for anything else. An
   * unexpected error's message is a driver's or the runtime's ("too many SQL variables", a
   * PostgreSQL error quoting a value): it goes to the server log, never to the peer.
   */
  comment: string;
}

/** Error Comment of a failure the archive did not anticipate (its cause is in the server log). */
export const INTERNAL_ERROR_COMMENT = 'internal error while processing the query';

/**
 * The C-FIND failure status of an error of archive.query (PS3.4 C.4.1.1.4): a key the query model
 * refuses (bad value, bad UID) makes the identifier not match the SOP class (A900); a refused
 * principal 0124; an unavailable store A700; anything else "unable to process" (C001).
 */
export function findFailure(err: unknown): FindFailure {
  if (!isArchiveError(err)) return { status: Status.UNABLE_TO_PROCESS, comment: INTERNAL_ERROR_COMMENT };
  const key = typeof err.details?.['key'] === 'string' ? err.details['key'] : undefined;
  const comment = err.message;
  switch (err.code) {
    case 'INVALID_QUERY':
    case 'INVALID_UID':
    case 'INVALID_PARAMETER':
      return { status: Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, comment, ...(key !== undefined ? { key } : {}) };
    case 'FORBIDDEN':
    case 'UNAUTHORIZED':
      return { status: Status.NOT_AUTHORIZED, comment };
    case 'DATABASE_UNAVAILABLE':
    case 'STORAGE_UNAVAILABLE':
      return { status: Status.OUT_OF_RESOURCES, comment };
    default:
      return { status: Status.UNABLE_TO_PROCESS, comment };
  }
}
