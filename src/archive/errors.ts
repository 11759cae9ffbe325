import { DicomQueryError } from '../dicom/errors.js';
import { StorageError } from '../storage/errors.js';

/**
 * The core's typed errors. Codes are stable (docs/errors.md); edges map them once
 * (http/errors.ts -> HTTP status, dimse/message/status.ts -> DIMSE status). No HTTP or DIMSE numbers here.
 */
export const ArchiveErrorCode = {
  INVALID_UID: 'INVALID_UID',
  INVALID_QUERY: 'INVALID_QUERY',
  INVALID_PARAMETER: 'INVALID_PARAMETER',
  NOT_FOUND: 'NOT_FOUND',
  NOT_ACCEPTABLE: 'NOT_ACCEPTABLE',
  FORBIDDEN: 'FORBIDDEN',
  UNAUTHORIZED: 'UNAUTHORIZED',
  CONFLICT: 'CONFLICT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  BAD_REQUEST: 'BAD_REQUEST',
  STORAGE_UNAVAILABLE: 'STORAGE_UNAVAILABLE',
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type ArchiveErrorCode = (typeof ArchiveErrorCode)[keyof typeof ArchiveErrorCode];

export class ArchiveError extends Error {
  readonly code: ArchiveErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ArchiveErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'ArchiveError';
    this.code = code;
    this.details = details;
  }
}

export function isArchiveError(e: unknown): e is ArchiveError {
  return e instanceof ArchiveError;
}

/**
 * Errors from the layers below (storage adapters, DICOM query parsing) become ArchiveErrors at the
 * archive boundary, so each edge maps one error type.
 */
export function toArchiveError(err: unknown): unknown {
  if (err instanceof ArchiveError) return err;
  if (err instanceof StorageError) return new ArchiveError(err.code, err.message, err.details);
  if (err instanceof DicomQueryError) return new ArchiveError('INVALID_QUERY', err.message, { key: err.key });
  return err;
}
