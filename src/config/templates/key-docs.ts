// One line of documentation per configuration key, rendered by generate.ts into the commented
// config files. The mapped type makes a key missing here a compile error, so the generated
// files always show every key of schema.ts.
import type { Config } from '../schema.js';

export type CoreSection = Exclude<keyof Config, 'plugins'>;

export interface KeyDoc {
  /** One line: what the key does (the default is rendered by the generator). */
  readonly comment: string;
  /** For keys without a default: a TOML literal shown commented out as an example. */
  readonly example?: string;
}

export interface SectionDoc<S extends CoreSection> {
  readonly comment: string;
  readonly keys: { readonly [K in keyof Config[S]]-?: KeyDoc };
}

export const SECTION_DOCS: { readonly [S in CoreSection]: SectionDoc<S> } = {
  server: {
    comment: 'Network edges: HTTP (DICOMweb at /wado and /dicom-web, REST at /api) and DIMSE.',
    keys: {
      http_port: { comment: 'HTTP port (0 = any free port, for tests).' },
      http_host: { comment: 'Address the HTTP and DIMSE listeners bind to ("0.0.0.0" = all IPv4 interfaces, "127.0.0.1" = this host only).' },
      dicom_port: { comment: 'DIMSE port (0 = any free port, for tests).' },
      ae_title: { comment: 'Our AE title: 1–16 characters, no backslash or control characters.' },
      http_remote_access: {
        comment: 'While no auth plugin is enabled, HTTP requests from non-loopback addresses get 403 REMOTE_ACCESS_DISABLED unless this is true.',
      },
      public_base_url: { comment: 'Base URL for RetrieveURL and BulkDataURI ("" = derived from each request).' },
      trust_proxy: { comment: 'Honour X-Forwarded-* headers; enable only behind a reverse proxy you control.' },
      cors_origins: { comment: 'Origins allowed by CORS (e.g. ["https://viewer.example.org"]); [] = CORS off.' },
      cors_credentials: { comment: 'Allow credentials (cookies, Authorization) in CORS requests.' },
      max_request_bytes: { comment: 'Largest HTTP request body in bytes (STOW-RS uploads); 0 = no limit.' },
      max_instance_bytes: { comment: 'Largest single DICOM instance in bytes; 0 = no limit.' },
      ae_whitelist_enabled: { comment: 'DIMSE: accept associations only from calling AE titles registered as nodes (/api/nodes).' },
      accept_all_transfer_syntaxes: { comment: 'Storage contexts accept every transfer syntax we know; false = only accepted_transfer_syntaxes.' },
      accepted_transfer_syntaxes: { comment: 'Transfer syntax UIDs accepted for storage when accept_all_transfer_syntaxes = false.' },
      preferred_transfer_syntaxes: { comment: 'Our preference order of transfer syntax UIDs; [] = the calling SCU\'s order.' },
      accept_unknown_sop_classes: { comment: 'Accept storage contexts for SOP classes we do not know.' },
      max_associations: { comment: 'Concurrent DIMSE associations; more are rejected (2/3/2).' },
      max_pdu_length: { comment: 'Maximum P-DATA PDU length we advertise, in bytes (1024 to 4294967295).' },
      dimse_timeout_secs: { comment: 'DIMSE idle and ARTIM timeout in seconds.' },
    },
  },
  database: {
    comment: 'Metadata index: SQLite (standalone) or PostgreSQL (production).',
    keys: {
      url: { comment: 'postgres://USER:PASSWORD@HOST:PORT/DB, or sqlite://PATH (sqlite://./rel.db, sqlite:///abs.db, sqlite://:memory:).' },
      max_connections: { comment: 'Connection pool size (PostgreSQL).' },
      run_migrations: { comment: 'Apply pending migrations at start-up (else run `pacsnode migrate`).' },
    },
  },
  storage: {
    comment: 'Blob store for the original DICOM files.',
    keys: {
      backend: { comment: '"filesystem" (see [filesystem_storage]) or "s3" (any S3-compatible object store).' },
      endpoint: { comment: 'S3 endpoint URL; leave out for AWS S3.', example: '"http://localhost:9000"' },
      bucket: { comment: 'S3 bucket (required with backend = "s3").', example: '"pacs"' },
      access_key: { comment: 'S3 access key id; leave out to use the AWS default credential chain.', example: '"CHANGE-ME"' },
      secret_key: {
        comment: 'S3 secret key; prefer the environment (PACS_STORAGE__SECRET_KEY) to a file. Never logged.',
        example: '"CHANGE-ME"',
      },
      region: { comment: 'S3 region.' },
      force_path_style: { comment: 'Path-style S3 URLs (needed by MinIO and most non-AWS stores).' },
      checksum_mode: { comment: 'S3 request checksums: "when_required" (works with every S3 server) or "when_supported".' },
      gc_grace_secs: { comment: 'Unreferenced blobs younger than this many seconds are never collected.' },
      gc_interval_secs: { comment: 'Period of the in-process blob garbage collection in seconds; 0 = off (run `pacsnode gc`).' },
    },
  },
  filesystem_storage: {
    comment: 'Used when storage.backend = "filesystem".',
    keys: {
      root: { comment: 'Directory of the blobs (relative paths resolve against the working directory).' },
      fsync: { comment: 'fsync each blob and its directory before acknowledging (durability; leave on).' },
    },
  },
  dicomweb: {
    comment: 'DICOMweb (QIDO-RS, WADO-RS, STOW-RS).',
    keys: {
      qido_default_limit: { comment: 'QIDO-RS results per page when the request gives no limit (≤ qido_max_limit).' },
      qido_max_limit: { comment: 'Largest QIDO-RS page; a larger limit is capped, not refused.' },
      bulkdata_threshold: { comment: 'Binary values longer than this many bytes become BulkDataURI in metadata.' },
    },
  },
  archive: {
    comment: 'Ingest policy.',
    keys: {
      on_duplicate: { comment: 'An instance received again with different content: "replace" or "reject" (status 0111).' },
      default_character_set: { comment: 'Character set for decoding values when (0008,0005) is absent (index only).' },
      on_patient_mismatch: { comment: 'Patient attributes differ from the stored study: "accept" (warning B000) or "reject" (C410).' },
    },
  },
  logging: {
    comment: 'Logs are structured and never contain patient data or secrets.',
    keys: {
      level: { comment: 'Default level plus per-component overrides, e.g. "info,dimse=debug" (fatal, error, warn, info, debug, trace, silent).' },
      format: { comment: '"json" (one object per line) or "pretty" (human-readable, needs the pino-pretty dev dependency).' },
    },
  },
};
