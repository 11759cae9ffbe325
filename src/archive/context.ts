import type { Origin, Principal } from './origin.js';

/** Passed to every archive call: who and through which door (authorization and audit use it). */
export interface CallContext {
  principal: Principal;
  origin: Origin;
}

/** Structural logger interface (pino-compatible) so the core does not depend on a logging library. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** The archive's own settings, mapped from the config in main.ts (the core never sees the config file). */
export interface ArchiveSettings {
  bulkdataThreshold: number;
  onDuplicate: 'replace' | 'reject';
  onPatientMismatch: 'accept' | 'reject';
  defaultCharacterSet: string;
  /** 0 = no limit */
  maxInstanceBytes: number;
  gcGraceSecs: number;
  qidoDefaultLimit: number;
  qidoMaxLimit: number;
}

export const DEFAULT_ARCHIVE_SETTINGS: ArchiveSettings = Object.freeze({
  bulkdataThreshold: 1024,
  onDuplicate: 'replace',
  onPatientMismatch: 'accept',
  defaultCharacterSet: 'ISO_IR 100',
  maxInstanceBytes: 0,
  gcGraceSecs: 3600,
  qidoDefaultLimit: 100,
  qidoMaxLimit: 1000,
});
