// Composition root: config -> adapters -> archive -> edges -> plugins; close() in reverse on SIGTERM.
// The only place where adapters are chosen (ARCHITECTURE rule 1).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createArchive, type Archive } from './archive/archive.js';
import type { ArchiveSettings } from './archive/context.js';
import { SYSTEM } from './archive/origin.js';
import { databaseKind, sqlitePathFromUrl } from './config/load.js';
import type { Config } from './config/schema.js';
import { createScu } from './dimse/scu/index.js';
import { createDimseServer, createFindHandler, createGetHandler, createMoveHandler } from './dimse/server.js';
import { buildHttpApp } from './http/app.js';
import type { Logger } from './logging.js';
import type { BlobStore } from './storage/blobs.js';
import { createFsBlobStore } from './storage/fs/fs-blob-store.js';
import type { MetadataStore } from './storage/metadata.js';
import { createSqliteStores, type SqliteStores } from './storage/sqlite/sqlite-metadata-store.js';
import type { PostgresStores } from './storage/postgres/postgres-stores.js';
import type { JobStore } from './storage/jobs.js';
import type { NodeStore } from './storage/nodes.js';
import { createJobService, type JobService } from './archive/jobs.js';
import { createNodeService, type NodeService } from './archive/nodes.js';

export interface RunOptions {
  readonly logger: Logger;
  /** Install SIGTERM/SIGINT handlers that close everything (the CLI does; tests do not). */
  readonly handleSignals?: boolean;
}

export interface RunningServer {
  readonly archive: Archive;
  readonly http: FastifyInstance;
  /** e.g. http://127.0.0.1:8042 */
  readonly httpUrl: string;
  /** The DIMSE port actually bound (server.dicom_port, or the ephemeral one for 0). */
  readonly dicomPort: number;
  readonly nodes: NodeService;
  readonly jobs: JobService;
  close(): Promise<void>;
}

export const NOT_FOR_CLINICAL_USE =
  'NOT FOR CLINICAL USE: pacsnode is not a certified medical device and is not validated for diagnostic or therapeutic purposes.';

export function archiveSettings(config: Config): ArchiveSettings {
  return {
    bulkdataThreshold: config.dicomweb.bulkdata_threshold,
    onDuplicate: config.archive.on_duplicate,
    onPatientMismatch: config.archive.on_patient_mismatch,
    defaultCharacterSet: config.archive.default_character_set,
    maxInstanceBytes: config.server.max_instance_bytes,
    gcGraceSecs: config.storage.gc_grace_secs,
    qidoDefaultLimit: config.dicomweb.qido_default_limit,
    qidoMaxLimit: config.dicomweb.qido_max_limit,
  };
}

export interface Stores {
  metadata: MetadataStore;
  blobs: BlobStore;
  nodes: NodeStore;
  jobs: JobStore;
  /** Closes everything opened (the SQLite connection is shared by metadata, nodes and jobs). */
  close(): Promise<void>;
}

/** The configured database's stores, neither created nor migrated beyond what opening does. */
export async function openDatabase(config: Config, logger: Logger): Promise<DatabaseStores> {
  const kind = databaseKind(config.database.url);
  if (kind === 'sqlite') {
    const dbPath = sqlitePathFromUrl(config.database.url, process.cwd());
    if (dbPath !== ':memory:') mkdirSync(path.dirname(dbPath), { recursive: true });
    return createSqliteStores({ path: dbPath });
  }
  const { createPostgresStores } = await import('./storage/postgres/postgres-stores.js');
  return createPostgresStores({
    url: config.database.url,
    maxConnections: config.database.max_connections,
    onIdleError: (err) => logger.warn({ err: err.message }, 'idle database connection lost; the pool replaces it'),
  });
}

/** What openDatabase returns for either engine. */
export type DatabaseStores = SqliteStores | PostgresStores;

/** Opens the configured MetadataStore and BlobStore (and migrates when run_migrations is on). */
export async function openStores(config: Config, logger: Logger, options: { migrate?: boolean } = {}): Promise<Stores> {
  // Blobs first: a missing bucket is a clear start-up error before anything else is touched.
  // The S3 and PostgreSQL adapters (AWS SDK, pg: ~50 MB of memory together) load only when
  // configured: a standalone archive never pays for them.
  let blobs: BlobStore;
  if (config.storage.backend === 's3') {
    const [{ createS3BlobStore }, { s3OptionsFromConfig }] = await Promise.all([
      import('./storage/s3/s3-blob-store.js'),
      import('./storage/s3/s3-config.js'),
    ]);
    blobs = createS3BlobStore(s3OptionsFromConfig(config.storage));
    try {
      await blobs.check();
    } catch (err) {
      await blobs.close();
      throw err;
    }
  } else {
    mkdirSync(config.filesystem_storage.root, { recursive: true });
    blobs = createFsBlobStore({ root: config.filesystem_storage.root, fsync: config.filesystem_storage.fsync });
  }
  let db: DatabaseStores;
  try {
    db = await openDatabase(config, logger);
  } catch (err) {
    await blobs.close();
    throw err;
  }
  try {
    if (options.migrate ?? config.database.run_migrations) await db.migrate();
  } catch (err) {
    await db.close();
    await blobs.close();
    throw err;
  }
  // Never the URL or the keys: they may hold secrets.
  logger.info({ database: databaseKind(config.database.url), storage: config.storage.backend, ...(config.storage.backend === 's3' ? { bucket: config.storage.bucket } : {}) }, 'stores opened');
  const opened = db;
  return {
    metadata: opened.metadata,
    blobs,
    nodes: opened.nodes,
    jobs: opened.jobs,
    async close() {
      await blobs.close();
      await opened.close();
    },
  };
}

export async function startServer(config: Config, options: RunOptions): Promise<RunningServer> {
  const { logger } = options;
  logger.warn({}, NOT_FOR_CLINICAL_USE);
  const stores = await openStores(config, logger);
  const { metadata, blobs } = stores;
  const archive = createArchive({ metadata, blobs, settings: archiveSettings(config), logger: logger.child({ component: 'archive' }) });
  if (config.server.http_remote_access) {
    logger.warn({}, 'server.http_remote_access = true and no auth plugin is enabled: anyone who can reach the port can read and delete images');
  }
  const nodes = createNodeService({ store: stores.nodes, logger: logger.child({ component: 'nodes' }) });
  const jobs = createJobService({ store: stores.jobs, logger: logger.child({ component: 'jobs' }) });
  const scu = createScu({
    callingAe: config.server.ae_title,
    timeoutSecs: config.server.dimse_timeout_secs,
    maxPduLength: config.server.max_pdu_length,
    logger: logger.child({ component: 'dimse' }),
  });
  const http = await buildHttpApp({ archive, config, logger: logger.child({ component: 'http' }), nodes, jobs, scu });
  let gcTimer: NodeJS.Timeout | undefined;
  const closers: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    if (gcTimer) clearInterval(gcTimer);
    for (const c of closers.reverse()) {
      await c().catch((err: unknown) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'close failed'));
    }
    closers.length = 0;
  };
  // Closed in reverse: the HTTP server, running jobs, then the stores.
  closers.push(() => stores.close(), () => jobs.close());
  try {
    await http.listen({ port: config.server.http_port, host: config.server.http_host });
  } catch (err) {
    await close();
    throw err;
  }
  // HTTP and the running jobs close together: Fastify waits for requests in flight, and a
  // `?wait=true` request waits for its job, which only jobs.close() stops (aborts).
  closers.push(async () => {
    await Promise.all([http.close(), jobs.close()]);
  });
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.http_port;
  const shownHost = config.server.http_host === '0.0.0.0' || config.server.http_host === '::' ? '127.0.0.1' : config.server.http_host;
  const httpUrl = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  logger.info({ url: httpUrl }, `pacsnode is running: DICOMweb ${httpUrl}/wado (also ${httpUrl}/dicom-web), health ${httpUrl}/health`);

  const dimseLogger = logger.child({ component: 'dimse' });
  const dimse = createDimseServer({
    archive,
    nodes,
    policy: {
      aeTitle: config.server.ae_title,
      whitelist: config.server.ae_whitelist_enabled,
      acceptAll: config.server.accept_all_transfer_syntaxes,
      accepted: config.server.accepted_transfer_syntaxes,
      preferred: config.server.preferred_transfer_syntaxes,
      acceptUnknownSopClasses: config.server.accept_unknown_sop_classes,
      maxAssociations: config.server.max_associations,
      maxPduLength: config.server.max_pdu_length,
      timeoutSecs: config.server.dimse_timeout_secs,
    },
    logger: dimseLogger,
    find: createFindHandler({ archive, aeTitle: config.server.ae_title }),
    // C-MOVE destinations are registered nodes with move_destination; sub-operations go out as server.ae_title.
    move: createMoveHandler({
      archive,
      destinations: nodes,
      scu: {
        callingAe: config.server.ae_title,
        timeoutMs: config.server.dimse_timeout_secs * 1000,
        maxPduLength: config.server.max_pdu_length,
        logger: dimseLogger,
      },
    }),
    get: createGetHandler({ archive }),
  });
  let dicomPort: number;
  try {
    ({ port: dicomPort } = await dimse.listen(config.server.dicom_port, config.server.http_host));
  } catch (err) {
    await close();
    throw err;
  }
  // Closed first on shutdown (closers run in reverse): associations drain before HTTP and the stores.
  closers.push(() => dimse.close());
  logger.info({ port: dicomPort, aeTitle: config.server.ae_title }, `DIMSE listening on port ${dicomPort} as ${config.server.ae_title} (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET)`);

  const interval = config.storage.gc_interval_secs;
  if (interval > 0) {
    gcTimer = setInterval(() => {
      archive
        .gc({ principal: SYSTEM, origin: { protocol: 'internal' } })
        .then((r) => logger.info({ ...r }, 'periodic gc done'))
        .catch((err: unknown) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'periodic gc failed'));
    }, interval * 1000);
    gcTimer.unref();
  }

  if (options.handleSignals) {
    const onSignal = (signal: string): void => {
      logger.info({ signal }, 'shutting down');
      const timeout = setTimeout(() => process.exit(1), 10_000);
      timeout.unref();
      void close().then(() => process.exit(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  return { archive, http, httpUrl, dicomPort, nodes, jobs, close };
}

export async function runMigrate(config: Config, options: RunOptions): Promise<void> {
  const stores = await openStores(config, options.logger, { migrate: true });
  await stores.close();
  options.logger.info({}, 'migrations applied');
}

export async function runGc(config: Config, options: RunOptions): Promise<void> {
  const stores = await openStores(config, options.logger);
  const { metadata, blobs } = stores;
  try {
    const archive = createArchive({ metadata, blobs, settings: archiveSettings(config), logger: options.logger });
    const result = await archive.gc({ principal: SYSTEM, origin: { protocol: 'cli' } });
    options.logger.info({ ...result }, 'gc done');
  } finally {
    await stores.close();
  }
}
