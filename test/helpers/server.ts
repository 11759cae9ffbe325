// Starts a real pacsnode server on 127.0.0.1, port 0, in a fresh temporary directory, on one of the
// two deployment profiles of SPEC §1:
//   standalone — SQLite file + filesystem blobs (the default);
//   production — a fresh PostgreSQL database (test/helpers/postgres.ts) + an s3rver bucket
//                (test/helpers/s3rver.ts), both removed again by close().
// PACS_TEST_PROFILE=production switches the default for a whole run (read only here). Every test
// that starts a server must call close().
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { createS3BlobStore } from '../../src/storage/s3/s3-blob-store.js';
import { s3OptionsFromConfig } from '../../src/storage/s3/s3-config.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { startS3rver, type RunningS3rver } from './s3rver.js';

export type TestProfile = 'standalone' | 'production';

export interface TestServer {
  url: string;
  dir: string;
  config: Config;
  server: RunningServer;
  profile: TestProfile;
  /** Committed blobs in the server's BlobStore (profile-neutral: lists the store). */
  countBlobs(): Promise<number>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Default: PACS_TEST_PROFILE, else standalone. */
  profile?: TestProfile;
}

/** The profile of this run: PACS_TEST_PROFILE (standalone | production), standalone when unset. */
export function defaultTestProfile(): TestProfile {
  const value = process.env['PACS_TEST_PROFILE'];
  if (value === undefined || value === '' || value === 'standalone') return 'standalone';
  if (value === 'production') return 'production';
  throw new Error(`PACS_TEST_PROFILE must be standalone or production (got ${value})`);
}

/** The backing services of a production-profile server: a fresh database and an s3rver bucket. */
export interface ProductionBackends {
  /** PACS_* settings pointing a server at them. */
  env: Record<string, string>;
  database: TestDatabase;
  s3: RunningS3rver;
  close(): Promise<void>;
}

export async function startProductionBackends(): Promise<ProductionBackends> {
  const s3 = await startS3rver({ bucket: 'pacsnode' });
  let database: TestDatabase;
  try {
    database = await createTestDatabase('pacsnode_e2e');
  } catch (err) {
    await s3.close();
    throw err;
  }
  return {
    env: {
      PACS_DATABASE__URL: database.url,
      PACS_DATABASE__MAX_CONNECTIONS: '10',
      PACS_STORAGE__BACKEND: 's3',
      PACS_STORAGE__ENDPOINT: s3.endpoint,
      PACS_STORAGE__BUCKET: s3.bucket,
      PACS_STORAGE__ACCESS_KEY: s3.accessKey,
      PACS_STORAGE__SECRET_KEY: s3.secretKey,
    },
    database,
    s3,
    async close() {
      await database.drop().catch(() => undefined);
      await s3.close();
    },
  };
}

/** `env` uses the PACS_ environment syntax, e.g. { PACS_SERVER__MAX_REQUEST_BYTES: '1000' }. */
export async function startTestServer(env: Record<string, string> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const profile = options.profile ?? defaultTestProfile();
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-test-'));
  let backends: ProductionBackends | undefined;
  const cleanup = async (): Promise<void> => {
    await backends?.close();
    await rm(dir, { recursive: true, force: true });
  };
  let config: Config;
  let server: RunningServer;
  try {
    if (profile === 'production') backends = await startProductionBackends();
    config = loadConfig({
      env: {
        PACS_SERVER__HTTP_PORT: '0',
        PACS_SERVER__HTTP_HOST: '127.0.0.1',
        PACS_SERVER__DICOM_PORT: '0',
        PACS_STORAGE__GC_INTERVAL_SECS: '0',
        PACS_FILESYSTEM_STORAGE__FSYNC: 'false',
        ...backends?.env,
        ...env,
      },
      cwd: dir,
      packageRoot: dir,
    });
    server = await startServer(config, { logger: pino({ level: process.env['PACS_TEST_LOG'] ?? 'silent' }) });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const serverConfig = config;
  return {
    url: server.httpUrl,
    dir,
    config,
    server,
    profile,
    countBlobs: () => countBlobs(serverConfig),
    async close() {
      try {
        await server.close();
      } finally {
        await cleanup();
      }
    },
  };
}

/** Committed blobs of the configured store: files under the blob root, or objects in the bucket. */
export async function countBlobs(config: Config): Promise<number> {
  if (config.storage.backend !== 's3') return (await countFiles(config.filesystem_storage.root)).blobs;
  const store = createS3BlobStore(s3OptionsFromConfig(config.storage));
  try {
    let n = 0;
    for await (const _ of store.list()) n++;
    return n;
  } finally {
    await store.close();
  }
}

/** Files under the blob root (committed blobs and temporaries), for before/after counts. */
export async function countFiles(root: string): Promise<{ blobs: number; temporaries: number; tempBytes: number }> {
  let blobs = 0;
  let temporaries = 0;
  let tempBytes = 0;
  async function walk(dir: string, inTmp: boolean): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p, inTmp || e.name === '.tmp');
      else if (inTmp) {
        temporaries++;
        tempBytes += (await stat(p)).size;
      } else blobs++;
    }
  }
  await walk(root, false);
  return { blobs, temporaries, tempBytes };
}
