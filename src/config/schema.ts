// The configuration schema: every key of SPEC §2, its type, range and default.
// Pure (no I/O): load.ts reads the TOML layers and the environment and validates them here.
// Keys are the TOML keys (snake_case), so `config.server.http_port` is `[server] http_port`.
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// The Config type (deeply readonly). Written out by hand so the shape is readable in one place;
// the zod schema below is checked against it at compile time (see the assertions at the end).

export interface ServerConfig {
  /** HTTP (DICOMweb, REST) port; 0 = ephemeral (tests). */
  readonly http_port: number;
  /** Bind address of the HTTP and DIMSE listeners. */
  readonly http_host: string;
  /** DIMSE port; 0 = ephemeral (tests). */
  readonly dicom_port: number;
  /** Our AE title: 1–16 characters, no backslash or control characters. */
  readonly ae_title: string;
  /** While no auth plugin is enabled, non-loopback HTTP requests get 403 REMOTE_ACCESS_DISABLED unless true. */
  readonly http_remote_access: boolean;
  /** Base for RetrieveURL / BulkDataURI; "" = derived from the request. */
  readonly public_base_url: string;
  /** Honour X-Forwarded-* headers (only then). */
  readonly trust_proxy: boolean;
  readonly cors_origins: readonly string[];
  readonly cors_credentials: boolean;
  /** 0 = no limit. */
  readonly max_request_bytes: number;
  /** 0 = no limit. */
  readonly max_instance_bytes: number;
  readonly ae_whitelist_enabled: boolean;
  readonly accept_all_transfer_syntaxes: boolean;
  readonly accepted_transfer_syntaxes: readonly string[];
  readonly preferred_transfer_syntaxes: readonly string[];
  readonly accept_unknown_sop_classes: boolean;
  readonly max_associations: number;
  readonly max_pdu_length: number;
  readonly dimse_timeout_secs: number;
}

export interface DatabaseConfig {
  /** `postgres://…` / `postgresql://…` or `sqlite://PATH` (loadConfig makes a relative sqlite path absolute). */
  readonly url: string;
  readonly max_connections: number;
  readonly run_migrations: boolean;
}

export type StorageBackend = 'filesystem' | 's3';
export type ChecksumMode = 'when_required' | 'when_supported';

export interface StorageConfig {
  readonly backend: StorageBackend;
  readonly endpoint?: string;
  readonly bucket?: string;
  readonly access_key?: string;
  readonly secret_key?: string;
  readonly region: string;
  readonly force_path_style: boolean;
  readonly checksum_mode: ChecksumMode;
  /** Unreferenced blobs younger than this are never collected. */
  readonly gc_grace_secs: number;
  /** Period of the in-process gc task; 0 disables it (`pacsnode gc` still works). */
  readonly gc_interval_secs: number;
}

export interface FilesystemStorageConfig {
  /** Absolute after loadConfig (relative paths resolve against the working directory). */
  readonly root: string;
  readonly fsync: boolean;
}

export interface DicomwebConfig {
  readonly qido_default_limit: number;
  readonly qido_max_limit: number;
  readonly bulkdata_threshold: number;
}

export type OnDuplicate = 'replace' | 'reject';
export type OnPatientMismatch = 'accept' | 'reject';

export interface ArchiveConfig {
  readonly on_duplicate: OnDuplicate;
  readonly default_character_set: string;
  readonly on_patient_mismatch: OnPatientMismatch;
}

export type LogFormat = 'json' | 'pretty';

export interface LoggingConfig {
  /** `info` or `info,dimse=debug,http=warn`: a default level plus per-component overrides. */
  readonly level: string;
  readonly format: LogFormat;
}

/** A `[plugins.<id>]` option table, validated by the plugin's own schema when it registers. */
export type PluginOptions = Readonly<Record<string, unknown>>;

export interface PluginsConfig {
  /** Ids from KNOWN_PLUGIN_IDS. */
  readonly enabled: readonly string[];
  /** `[plugins.<id>]` option tables, only for ids in KNOWN_PLUGIN_IDS. Read them with `pluginOptions()`. */
  readonly [pluginId: string]: PluginOptions | readonly string[];
}

export interface Config {
  readonly server: ServerConfig;
  readonly database: DatabaseConfig;
  readonly storage: StorageConfig;
  readonly filesystem_storage: FilesystemStorageConfig;
  readonly dicomweb: DicomwebConfig;
  readonly archive: ArchiveConfig;
  readonly logging: LoggingConfig;
  readonly plugins: PluginsConfig;
}

// ---------------------------------------------------------------------------------------------
// Plugins

/**
 * Ids of the plugins this build contains. `plugins.enabled` and `[plugins.<id>]` tables accept
 * only these; generate-config lists exactly these. Add an id here when its plugin lands
 * (SPEC §7: basic-auth, audit-logger, admin-dashboard, prometheus-metrics, pacsleaf-viewer, ohif-viewer).
 */
export const KNOWN_PLUGIN_IDS: readonly string[] = Object.freeze([]);

/** The `[plugins.<id>]` table of a plugin (empty when absent). */
export function pluginOptions(config: Config, id: string): PluginOptions {
  if (id === 'enabled') return {};
  const table = config.plugins[id];
  if (table === undefined || Array.isArray(table)) return {};
  return table as PluginOptions;
}

// ---------------------------------------------------------------------------------------------
// Log level syntax: `info,dimse=debug`

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogLevelSpec {
  readonly level: LogLevel;
  /** Per-component overrides, by component name (the `component` binding of a child logger). */
  readonly components: Readonly<Record<string, LogLevel>>;
}

function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

/** Parses `info,dimse=debug`; throws an Error describing the first problem. */
export function parseLogLevel(spec: string): LogLevelSpec {
  let level: LogLevel | undefined;
  const components: Record<string, LogLevel> = {};
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (entry === '') throw new Error('empty entry');
    const eq = entry.indexOf('=');
    if (eq < 0) {
      const l = entry.toLowerCase();
      if (!isLogLevel(l)) throw new Error(`unknown level "${entry}" (one of ${LOG_LEVELS.join(', ')})`);
      if (level !== undefined) throw new Error('more than one default level');
      level = l;
    } else {
      const name = entry.slice(0, eq).trim();
      const l = entry.slice(eq + 1).trim().toLowerCase();
      if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`invalid component name "${name}"`);
      if (!isLogLevel(l)) throw new Error(`unknown level "${l}" for component ${name} (one of ${LOG_LEVELS.join(', ')})`);
      if (name in components) throw new Error(`component ${name} given twice`);
      components[name] = l;
    }
  }
  return { level: level ?? 'info', components };
}

// ---------------------------------------------------------------------------------------------
// Defaults (SPEC §2)

const DEFAULTS: Config = {
  server: {
    http_port: 8042,
    http_host: '0.0.0.0',
    dicom_port: 4242,
    ae_title: 'PACSNODE',
    http_remote_access: false,
    public_base_url: '',
    trust_proxy: false,
    cors_origins: [],
    cors_credentials: false,
    max_request_bytes: 0,
    max_instance_bytes: 0,
    ae_whitelist_enabled: false,
    accept_all_transfer_syntaxes: true,
    accepted_transfer_syntaxes: [],
    preferred_transfer_syntaxes: [],
    accept_unknown_sop_classes: true,
    max_associations: 64,
    max_pdu_length: 65536,
    dimse_timeout_secs: 30,
  },
  database: { url: 'sqlite://./data/pacs.db', max_connections: 20, run_migrations: true },
  storage: {
    backend: 'filesystem',
    region: 'us-east-1',
    force_path_style: true,
    checksum_mode: 'when_required',
    gc_grace_secs: 3600,
    gc_interval_secs: 3600,
  },
  filesystem_storage: { root: './data/blobs', fsync: true },
  dicomweb: { qido_default_limit: 100, qido_max_limit: 1000, bulkdata_threshold: 1024 },
  archive: { on_duplicate: 'replace', default_character_set: 'ISO_IR 100', on_patient_mismatch: 'accept' },
  logging: { level: 'info', format: 'json' },
  plugins: { enabled: [] },
};

// ---------------------------------------------------------------------------------------------
// Schema. Messages are short: load.ts prefixes them with the key path and the source.

const MAX_U32 = 0xffff_ffff;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .number({ error: 'expected an integer' })
    .int({ error: 'expected an integer' })
    .min(min, { error: `must be ≥ ${min}` })
    .max(max, { error: `must be ≤ ${max}` });
const bool = () => z.boolean({ error: 'expected a boolean (true or false)' });
const str = () => z.string({ error: 'expected a string' });
const nonEmpty = () => str().min(1, { error: 'must not be empty' });
const strList = (item: z.ZodString = str()) => z.array(item, { error: 'expected an array of strings' });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `expected one of ${values.map((v) => `"${v}"`).join(', ')}` });

const port = () => int(0, 65535);
// PS3.5 UI: digits and dots, no empty component, at most 64 characters.
const uid = () =>
  str().regex(/^(?=.{1,64}$)[0-9]+(\.[0-9]+)*$/, { error: 'expected a UID (digits and dots, 1–64 characters)' });

const aeTitle = () =>
  str()
    .min(1, { error: 'must be 1–16 characters' })
    .max(16, { error: 'must be 1–16 characters' })
    // eslint-disable-next-line no-control-regex
    .regex(/^[^\\\u0000-\u001f\u007f]*$/, { error: 'must not contain a backslash or control characters' })
    .refine((s) => s.trim() !== '', { error: 'must not be blank' });

const httpUrlOrEmpty = () =>
  str().refine(
    (s) => {
      if (s === '') return true;
      try {
        const u = new URL(s);
        return u.protocol === 'http:' || u.protocol === 'https:';
      } catch {
        return false;
      }
    },
    { error: 'expected "" or an absolute http(s) URL' },
  );

const databaseUrl = () =>
  nonEmpty().regex(/^(postgres|postgresql|sqlite):\/\/./, {
    error: 'expected postgres://… or sqlite://PATH (sqlite://./rel.db, sqlite:///abs.db, sqlite://:memory:)',
  });

const logLevel = () =>
  str().superRefine((s, ctx) => {
    try {
      parseLogLevel(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `invalid level "${s}": ${(err as Error).message}` });
    }
  });

const d = DEFAULTS;

export const serverSchema = z.strictObject({
  http_port: port().default(d.server.http_port),
  http_host: nonEmpty().default(d.server.http_host),
  dicom_port: port().default(d.server.dicom_port),
  ae_title: aeTitle().default(d.server.ae_title),
  http_remote_access: bool().default(d.server.http_remote_access),
  public_base_url: httpUrlOrEmpty().default(d.server.public_base_url),
  trust_proxy: bool().default(d.server.trust_proxy),
  cors_origins: strList(nonEmpty()).default(() => []),
  cors_credentials: bool().default(d.server.cors_credentials),
  max_request_bytes: int(0).default(d.server.max_request_bytes),
  max_instance_bytes: int(0).default(d.server.max_instance_bytes),
  ae_whitelist_enabled: bool().default(d.server.ae_whitelist_enabled),
  accept_all_transfer_syntaxes: bool().default(d.server.accept_all_transfer_syntaxes),
  accepted_transfer_syntaxes: strList(uid()).default(() => []),
  preferred_transfer_syntaxes: strList(uid()).default(() => []),
  accept_unknown_sop_classes: bool().default(d.server.accept_unknown_sop_classes),
  max_associations: int(1).default(d.server.max_associations),
  // PS3.8 allows any length; below 1 KiB nothing useful fits, above 2^32-1 the field overflows.
  max_pdu_length: int(1024, MAX_U32).default(d.server.max_pdu_length),
  dimse_timeout_secs: int(1).default(d.server.dimse_timeout_secs),
});

export const databaseSchema = z.strictObject({
  url: databaseUrl().default(d.database.url),
  max_connections: int(1).default(d.database.max_connections),
  run_migrations: bool().default(d.database.run_migrations),
});

export const storageSchema = z
  .strictObject({
    backend: oneOf(['filesystem', 's3']).default(d.storage.backend),
    endpoint: httpUrlOrEmpty().optional(),
    bucket: nonEmpty().optional(),
    access_key: str().optional(),
    secret_key: str().optional(),
    region: nonEmpty().default(d.storage.region),
    force_path_style: bool().default(d.storage.force_path_style),
    checksum_mode: oneOf(['when_required', 'when_supported']).default(d.storage.checksum_mode),
    gc_grace_secs: int(0).default(d.storage.gc_grace_secs),
    gc_interval_secs: int(0).default(d.storage.gc_interval_secs),
  })
  .superRefine((s, ctx) => {
    if (s.backend === 's3' && s.bucket === undefined) {
      ctx.addIssue({ code: 'custom', path: ['bucket'], message: 'required when storage.backend = "s3"' });
    }
  });

export const filesystemStorageSchema = z.strictObject({
  root: nonEmpty().default(d.filesystem_storage.root),
  fsync: bool().default(d.filesystem_storage.fsync),
});

export const dicomwebSchema = z
  .strictObject({
    qido_default_limit: int(1).default(d.dicomweb.qido_default_limit),
    qido_max_limit: int(1).default(d.dicomweb.qido_max_limit),
    bulkdata_threshold: int(0).default(d.dicomweb.bulkdata_threshold),
  })
  .superRefine((s, ctx) => {
    if (s.qido_default_limit > s.qido_max_limit) {
      ctx.addIssue({
        code: 'custom',
        path: ['qido_default_limit'],
        message: `must be ≤ dicomweb.qido_max_limit (${s.qido_max_limit})`,
      });
    }
  });

export const archiveSchema = z.strictObject({
  on_duplicate: oneOf(['replace', 'reject']).default(d.archive.on_duplicate),
  default_character_set: nonEmpty().default(d.archive.default_character_set),
  on_patient_mismatch: oneOf(['accept', 'reject']).default(d.archive.on_patient_mismatch),
});

export const loggingSchema = z.strictObject({
  level: logLevel().default(d.logging.level),
  format: oneOf(['json', 'pretty']).default(d.logging.format),
});

const knownPluginsText = (): string =>
  KNOWN_PLUGIN_IDS.length === 0 ? 'this build has no plugins' : `known plugins: ${KNOWN_PLUGIN_IDS.join(', ')}`;

export const pluginsSchema = z
  .object({ enabled: strList().default(() => []) })
  .catchall(z.record(z.string(), z.unknown(), { error: 'expected a table of plugin options' }))
  .superRefine((p, ctx) => {
    p.enabled.forEach((id, i) => {
      if (!KNOWN_PLUGIN_IDS.includes(id)) {
        ctx.addIssue({ code: 'custom', path: ['enabled', i], message: `unknown plugin id "${id}" (${knownPluginsText()})` });
      } else if (p.enabled.indexOf(id) !== i) {
        ctx.addIssue({ code: 'custom', path: ['enabled', i], message: `plugin "${id}" listed twice` });
      }
    });
    for (const key of Object.keys(p)) {
      if (key !== 'enabled' && !KNOWN_PLUGIN_IDS.includes(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `unknown plugin id "${key}" (${knownPluginsText()})` });
      }
    }
  });

/** The table schemas by section name; load.ts walks them to resolve environment variable names. */
export const SECTION_SCHEMAS = {
  server: serverSchema,
  database: databaseSchema,
  storage: storageSchema,
  filesystem_storage: filesystemStorageSchema,
  dicomweb: dicomwebSchema,
  archive: archiveSchema,
  logging: loggingSchema,
  plugins: pluginsSchema,
} as const;

export type SectionName = keyof typeof SECTION_SCHEMAS;
export const SECTION_NAMES = Object.freeze(Object.keys(SECTION_SCHEMAS) as SectionName[]);

/** Every section is optional in a file (`.prefault({})` fills in the per-key defaults). */
export const configSchema = z.strictObject({
  server: serverSchema.prefault({}),
  database: databaseSchema.prefault({}),
  storage: storageSchema.prefault({}),
  filesystem_storage: filesystemStorageSchema.prefault({}),
  dicomweb: dicomwebSchema.prefault({}),
  archive: archiveSchema.prefault({}),
  logging: loggingSchema.prefault({}),
  plugins: pluginsSchema.prefault({}),
});

/** The documented defaults (paths still relative, as written in a config file). A fresh mutable-free copy. */
export function defaultConfig(): Config {
  return deepFreeze(configSchema.parse({}) as Config);
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Compile-time check that the schema produces exactly the hand-written shape.

type Mutable<T> = T extends readonly (infer U)[]
  ? Mutable<U>[]
  : T extends object
    ? { -readonly [K in keyof T]: Mutable<T[K]> }
    : T;
type Equals<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

export type _SchemaMatchesConfig = [
  Assert<Equals<z.output<typeof serverSchema>, Mutable<ServerConfig>>>,
  Assert<Equals<z.output<typeof databaseSchema>, Mutable<DatabaseConfig>>>,
  Assert<Equals<z.output<typeof storageSchema>, Mutable<StorageConfig>>>,
  Assert<Equals<z.output<typeof filesystemStorageSchema>, Mutable<FilesystemStorageConfig>>>,
  Assert<Equals<z.output<typeof dicomwebSchema>, Mutable<DicomwebConfig>>>,
  Assert<Equals<z.output<typeof archiveSchema>, Mutable<ArchiveConfig>>>,
  Assert<Equals<z.output<typeof loggingSchema>, Mutable<LoggingConfig>>>,
  Assert<Equals<z.output<typeof pluginsSchema>['enabled'], string[]>>,
];
