/**
 * Errors thrown by storage adapters. The codes are a subset of the archive's (archive/errors.ts
 * converts them), so the storage layer needs nothing from the core it serves (ARCHITECTURE rule 1).
 */
export type StorageErrorCode = 'NOT_FOUND' | 'INVALID_PARAMETER' | 'INVALID_QUERY' | 'STORAGE_UNAVAILABLE' | 'DATABASE_UNAVAILABLE';

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: StorageErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'StorageError';
    this.code = code;
    this.details = details;
  }
}

export function isStorageError(e: unknown): e is StorageError {
  return e instanceof StorageError;
}
