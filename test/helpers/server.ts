// Starts a real pacsnode server (standalone profile: SQLite file + filesystem blobs) on 127.0.0.1,
// port 0, in a fresh temporary directory. Every test that starts one must call close().
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startServer, type RunningServer } from '../../src/main.js';

export interface TestServer {
  url: string;
  dir: string;
  config: Config;
  server: RunningServer;
  close(): Promise<void>;
}

/** `env` uses the PACS_ environment syntax, e.g. { PACS_SERVER__MAX_REQUEST_BYTES: '1000' }. */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-test-'));
  const config = loadConfig({
    env: {
      PACS_SERVER__HTTP_PORT: '0',
      PACS_SERVER__HTTP_HOST: '127.0.0.1',
      PACS_SERVER__DICOM_PORT: '0',
      PACS_STORAGE__GC_INTERVAL_SECS: '0',
      PACS_FILESYSTEM_STORAGE__FSYNC: 'false',
      ...env,
    },
    cwd: dir,
    packageRoot: dir,
  });
  const server = await startServer(config, { logger: pino({ level: process.env['PACS_TEST_LOG'] ?? 'silent' }) });
  return {
    url: server.httpUrl,
    dir,
    config,
    server,
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
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
