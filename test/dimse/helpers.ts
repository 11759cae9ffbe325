// A DIMSE server on 127.0.0.1 port 0 over a real archive (SQLite file + filesystem blobs) in a
// fresh temporary directory, and small wrappers around the DCMTK tools (TCP_NODELAY=1, timeouts).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createArchive, type Archive } from '../../src/archive/archive.js';
import { DEFAULT_ARCHIVE_SETTINGS, silentLogger, type Logger } from '../../src/archive/context.js';
import type { KnownNode } from '../../src/dimse/acse/ae-filter.js';
import type { FindHandler } from '../../src/dimse/scp/acceptor.js';
import { createDimseServer, type DimsePolicy, type DimseServer } from '../../src/dimse/server.js';
import type { BlobStore } from '../../src/storage/blobs.js';
import { createFsBlobStore } from '../../src/storage/fs/fs-blob-store.js';
import type { MetadataStore } from '../../src/storage/metadata.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';

export const AE = 'PACSNODE';

export const DEFAULT_POLICY: DimsePolicy = {
  aeTitle: AE,
  whitelist: false,
  acceptAll: true,
  accepted: [],
  preferred: [],
  acceptUnknownSopClasses: true,
  maxAssociations: 8,
  maxPduLength: 65536,
  timeoutSecs: 5,
};

export interface TestDimse {
  archive: Archive;
  metadata: MetadataStore;
  blobs: BlobStore;
  server: DimseServer;
  port: number;
  dir: string;
  close(): Promise<void>;
}

export async function startDimse(options: {
  policy?: Partial<DimsePolicy>;
  nodes?: Record<string, KnownNode>;
  wrapBlobs?: (b: BlobStore) => BlobStore;
  find?: (archive: Archive) => FindHandler;
  logger?: Logger;
} = {}): Promise<TestDimse> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-dimse-'));
  const metadata = createSqliteMetadataStore({ path: path.join(dir, 'pacs.db') });
  await metadata.migrate();
  const fsBlobs = createFsBlobStore({ root: path.join(dir, 'blobs'), fsync: false });
  const blobs = options.wrapBlobs ? options.wrapBlobs(fsBlobs) : fsBlobs;
  const archive = createArchive({ metadata, blobs, settings: DEFAULT_ARCHIVE_SETTINGS, logger: silentLogger });
  const nodes = options.nodes;
  const server = createDimseServer({
    archive,
    policy: { ...DEFAULT_POLICY, ...options.policy },
    logger: options.logger ?? silentLogger,
    ...(nodes ? { nodes: { find: async (_ctx, ae) => nodes[ae] } } : {}),
    ...(options.find ? { find: options.find(archive) } : {}),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  return {
    archive,
    metadata,
    blobs,
    server,
    port,
    dir,
    async close() {
      await server.close({ drainMs: 1000 });
      await metadata.close();
      await fsBlobs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a DCMTK tool with Nagle off (CLIENTS.md) and a hard timeout. */
export function dcmtk(tool: string, args: readonly string[], timeoutMs = 30_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(tool, [...args], { env: { ...process.env, TCP_NODELAY: '1' }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** The dataset part of a Part-10 file: after the preamble, DICM and the File Meta group. */
export function datasetOf(part10: Buffer): Buffer {
  let o = 132;
  while (o + 8 <= part10.length && part10.readUInt16LE(o) === 0x0002) {
    const vr = part10.toString('latin1', o + 4, o + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr);
    o += long ? 12 + part10.readUInt32LE(o + 8) : 8 + part10.readUInt16LE(o + 6);
  }
  return part10.subarray(o);
}
