// The process logger: structured JSON (pino), one child per component.
//
// PHI MUST NEVER BE LOGGED: no patient names, patient IDs, birth dates or other header values
// that identify a person. Log UIDs (study/series/SOP instance), AE titles, remote addresses,
// durations, byte counts and error codes instead (SPEC §8, ARCHITECTURE "Style").
// Secrets are kept out by `redact` below and by logging `redactConfig(config)`, never the config.
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { parseLogLevel, type LoggingConfig, type LogLevel } from './config/schema.js';

export type { Logger } from 'pino';

export interface CreateLoggerOptions {
  /** Where lines go; stdout when absent. Tests pass a stream to capture them. */
  readonly destination?: DestinationStream;
}

/** Paths pino replaces with `[Redacted]` before anything is written. */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'password',
  'secret_key',
  'token',
  '*.password',
  '*.secret_key',
  '*.token',
];

const componentLevels = new WeakMap<Logger, Readonly<Record<string, LogLevel>>>();

/**
 * The root logger for `config.logging`. `level` is `info` or `info,dimse=debug`: the default level
 * plus per-component overrides, applied to every child whose `component` binding is named
 * (`componentLogger(root, 'dimse')` or `root.child({ component: 'dimse' })`).
 */
export function createLogger(logging: LoggingConfig, options: CreateLoggerOptions = {}): Logger {
  const spec = parseLogLevel(logging.level);
  const overrides = spec.components;
  const pinoOptions: LoggerOptions = {
    level: spec.level,
    redact: { paths: [...REDACT_PATHS] },
    timestamp: pino.stdTimeFunctions.isoTime,
    // `level` is the line's severity: a logged object's own `level` (a query level, say) would be
    // written as a second `level` key, which JSON readers take instead of the severity.
    formatters: { log: (object) => ('level' in object ? renameLevel(object) : object) },
    onChild: (child) => {
      const name: unknown = child.bindings().component;
      const level = typeof name === 'string' ? overrides[name] : undefined;
      if (level !== undefined) child.level = level;
    },
  };
  const destination = (logging.format === 'pretty' ? prettyStream(options.destination) : undefined) ?? options.destination;
  const root = destination === undefined ? pino(pinoOptions) : pino(pinoOptions, destination);
  componentLevels.set(root, overrides);
  return root;
}

function renameLevel(object: Record<string, unknown>): Record<string, unknown> {
  const { level, ...rest } = object;
  return { ...rest, fieldLevel: level };
}

/** A child logger for one component (`dimse`, `http`, `archive`, `storage`, a plugin id …). */
export function componentLogger(root: Logger, name: string): Logger {
  return root.child({ component: name });
}

/** The level a component gets from the root's `logging.level` (its override, else the root level). */
export function componentLevel(root: Logger, name: string): string {
  return componentLevels.get(root)?.[name] ?? root.level;
}

type PrettyFactory = (options: { destination?: DestinationStream | number; colorize?: boolean; sync?: boolean }) => DestinationStream;

/**
 * pino-pretty is a dev dependency: use it when it is installed, else fall back to JSON. It runs
 * in-process as a synchronous stream (not a worker transport) so the last lines before an exit
 * are not lost.
 */
function prettyStream(destination: DestinationStream | undefined): DestinationStream | undefined {
  let factory: PrettyFactory;
  try {
    const mod = createRequire(import.meta.url)('pino-pretty') as PrettyFactory | { default: PrettyFactory };
    factory = typeof mod === 'function' ? mod : mod.default;
  } catch {
    return undefined;
  }
  return factory({
    destination: destination ?? 1,
    colorize: destination === undefined && process.stdout.isTTY === true,
    sync: true,
  });
}
