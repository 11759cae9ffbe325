// The backing services of `npm run bench -- --profile production`: a fresh PostgreSQL database
// (created through the maintenance database of PACS_BENCH_POSTGRES_URL, default the local server
// with trust auth, and dropped at the end) and an s3rver bucket on loopback in a temporary
// directory. s3rver runs in the bench process: its CPU time counts as the load generator's.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import S3rver from 's3rver';

const SERVER_URL = process.env['PACS_BENCH_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const BUCKET = 'pacsnode-bench';

export interface ProductionBackends {
  /** PACS_* settings pointing the server at them. */
  readonly env: Readonly<Record<string, string>>;
  /** postgres:// URL of the bench database. */
  readonly databaseUrl: string;
  readonly databaseName: string;
  /** Drops the database and stops s3rver; safe to call more than once. */
  close(): Promise<void>;
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Runs ANALYZE on the bench database (what autovacuum does shortly after a bulk load). */
export async function analyze(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('ANALYZE');
  } finally {
    await client.end();
  }
}

export async function startProductionBackends(): Promise<ProductionBackends> {
  const name = `pacsnode_bench_${randomBytes(6).toString('hex')}`;
  const directory = await mkdtemp(path.join(tmpdir(), 'pacsnode-bench-s3-'));
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: BUCKET }] });
  let address;
  try {
    address = await s3.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  try {
    await admin(`CREATE DATABASE ${name}`);
  } catch (err) {
    await s3.close().catch(() => undefined);
    await rm(directory, { recursive: true, force: true });
    throw new Error(`could not create the bench database on ${new URL(SERVER_URL).host} (set PACS_BENCH_POSTGRES_URL): ${err instanceof Error ? err.message : String(err)}`);
  }
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  let closing: Promise<void> | undefined;
  return {
    env: {
      PACS_DATABASE__URL: databaseUrl,
      PACS_STORAGE__BACKEND: 's3',
      PACS_STORAGE__ENDPOINT: `http://127.0.0.1:${address.port}`,
      PACS_STORAGE__BUCKET: BUCKET,
      PACS_STORAGE__ACCESS_KEY: 'S3RVER',
      PACS_STORAGE__SECRET_KEY: 'S3RVER',
    },
    databaseUrl,
    databaseName: name,
    close() {
      closing ??= (async () => {
        await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((err: unknown) => {
          process.stderr.write(`could not drop the bench database ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
        });
        await s3.close().catch(() => undefined);
        await rm(directory, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
