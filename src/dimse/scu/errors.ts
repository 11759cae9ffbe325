/**
 * Why an SCU operation failed, as a stable code (the REST edge and the CLI report it; no PHI in
 * messages: AE titles, addresses, UIDs and statuses only).
 */
export type ScuErrorCode =
  /** The TCP connection could not be opened. */
  | 'CONNECT_FAILED'
  /** A-ASSOCIATE-RJ: details carry result, source and reason. */
  | 'ASSOCIATION_REJECTED'
  /** A-ABORT, or the connection closed while an operation was in progress. */
  | 'ASSOCIATION_ABORTED'
  /** The peer accepted none of the presentation contexts the operation needs. */
  | 'NO_PRESENTATION_CONTEXT'
  /** No answer (or no progress) within dimse_timeout_secs. */
  | 'TIMEOUT'
  /** The peer answered with a failure status: details.status. */
  | 'DIMSE_FAILURE'
  /** The peer sent something we cannot understand. */
  | 'PROTOCOL_ERROR'
  /** The caller's AbortSignal fired. */
  | 'CANCELLED'
  /** The request itself is invalid (unknown key, bad level, bad AE title). */
  | 'INVALID_REQUEST';

export class ScuError extends Error {
  readonly code: ScuErrorCode;
  readonly details: Record<string, unknown>;
  constructor(code: ScuErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ScuError';
    this.code = code;
    this.details = details;
  }
}

/**
 * The text of a failure for logs: never a peer's Error Comment (free text a peer may fill with
 * the values it refused - a birth date, a name), only our own words, codes and the status.
 */
export function logDetail(err: unknown): string {
  if (err instanceof ScuError && err.code === 'DIMSE_FAILURE') {
    const status = err.details['status'];
    return typeof status === 'number' ? `DIMSE failure status 0x${status.toString(16).padStart(4, '0')}` : 'DIMSE failure';
  }
  return err instanceof Error ? err.message : String(err);
}

export function isScuError(err: unknown): err is ScuError {
  return err instanceof ScuError;
}
