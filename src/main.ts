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
import { buildHttpApp } from './http/app.js';
import type { Logger } from './logging.js';
import type { BlobStore } from './storage/blobs.js';
import { createFsBlobStore } from './storage/fs/fs-blob-store.js';
import type { MetadataStore } from './storage/metadata.js';
import { createSqliteStores } from './storage/sqlite/sqlite-metadata-store.js';
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

/** Opens the configured MetadataStore and BlobStore (and migrates when run_migrations is on). */
export async function openStores(config: Config, logger: Logger, options: { migrate?: boolean } = {}): Promise<Stores> {
  if (databaseKind(config.database.url) !== 'sqlite') {
    throw new Error('database.url: PostgreSQL arrives with the production profile; use sqlite://PATH for now');
  }
  if (config.storage.backend !== 'filesystem') {
    throw new Error('storage.backend: S3 arrives with the production profile; use "filesystem" for now');
  }
  const dbPath = sqlitePathFromUrl(config.database.url, process.cwd());
  if (dbPath !== ':memory:') mkdirSync(path.dirname(dbPath), { recursive: true });
  mkdirSync(config.filesystem_storage.root, { recursive: true });
  const sqlite = createSqliteStores({ path: dbPath });
  try {
    if (options.migrate ?? config.database.run_migrations) await sqlite.migrate();
  } catch (err) {
    await sqlite.close();
    throw err;
  }
  const blobs = createFsBlobStore({ root: config.filesystem_storage.root, fsync: config.filesystem_storage.fsync });
  logger.info({ database: 'sqlite', storage: 'filesystem' }, 'stores opened');
  return {
    metadata: sqlite.metadata,
    blobs,
    nodes: sqlite.nodes,
    jobs: sqlite.jobs,
    async close() {
      await blobs.close();
      await sqlite.close();
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
  const http = await buildHttpApp({ archive, config, logger: logger.child({ component: 'http' }), nodes, jobs });
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
  closers.push(() => http.close());
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.http_port;
  const shownHost = config.server.http_host === '0.0.0.0' || config.server.http_host === '::' ? '127.0.0.1' : config.server.http_host;
  const httpUrl = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  logger.info({ url: httpUrl }, `pacsnode is running: DICOMweb ${httpUrl}/wado (also ${httpUrl}/dicom-web), health ${httpUrl}/health`);
  logger.info({ port: config.server.dicom_port, aeTitle: config.server.ae_title }, 'DIMSE: not yet available');

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
  return { archive, http, httpUrl, nodes, jobs, close };
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
