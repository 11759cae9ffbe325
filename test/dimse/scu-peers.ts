// Real DCMTK peers for the SCU tests: storescp (storage SCP writing what it receives, bit-preserving)
// and dcmqrscp (a query/retrieve SCP with its own index, filled with storescu), each on a port
// found free on 127.0.0.1, started with TCP_NODELAY=1 and stopped by the test.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { datasetOf, dcmtk } from './helpers.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, ms = 10_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`peer exited early with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - start > ms) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RunningPeer {
  port: number;
  aeTitle: string;
  dir: string;
  /** Files the peer wrote (storescp). */
  files(): Promise<string[]>;
  stop(): Promise<void>;
}

async function startPeer(tool: string, args: (port: number) => string[], aeTitle: string, dir: string, prepare?: (port: number) => Promise<void>): Promise<RunningPeer> {
  const port = await freePort();
  await prepare?.(port);
  const child = spawn(tool, args(port), { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await waitForPort(port, child);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${tool} did not start: ${(err as Error).message}\n${stderr}`);
  }
  return {
    port,
    aeTitle,
    dir,
    async files() {
      const out: string[] = [];
      const walk = async (d: string): Promise<void> => {
        for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
          if (e.isDirectory()) await walk(path.join(d, e.name));
          else out.push(path.join(d, e.name));
        }
      };
      await walk(dir);
      return out.sort();
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** storescp writing each received instance as received (+B) into a fresh directory. */
export async function startStorescp(options: { aeTitle?: string; acceptAll?: boolean; extra?: string[] } = {}): Promise<RunningPeer> {
  const aeTitle = options.aeTitle ?? 'STORESCP';
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-storescp-'));
  return startPeer(
    'storescp',
    (port) => ['-aet', aeTitle, '-od', dir, '+B', ...(options.acceptAll === true ? ['+xa'] : []), ...(options.extra ?? []), String(port)],
    aeTitle,
    dir,
  );
}

/** dcmqrscp with one storage area for `aeTitle`, any peer allowed, filled with `files` through storescu. */
export async function startQrscp(files: readonly string[], aeTitle = 'QRSCP'): Promise<RunningPeer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-dcmqrscp-'));
  const db = path.join(dir, 'db');
  await mkdir(db);
  const cfg = path.join(dir, 'dcmqrscp.cfg');
  const config = (port: number): string =>
    [
      `NetworkTCPPort = ${port}`,
      'MaxPDUSize = 16384',
      'MaxAssociations = 16',
      'HostTable BEGIN',
      'HostTable END',
      'VendorTable BEGIN',
      'VendorTable END',
      'AETable BEGIN',
      `${aeTitle} ${db} RW (500, 1024mb) ANY`,
      'AETable END',
      '',
    ].join('\n');
  const peer = await startPeer('dcmqrscp', () => ['-c', cfg], aeTitle, dir, (port) => writeFile(cfg, config(port)));
  if (files.length > 0) {
    const r = await dcmtk('storescu', ['-aet', 'LOADER', '-aec', aeTitle, '127.0.0.1', String(peer.port), ...files]);
    if (r.code !== 0) {
      await peer.stop();
      throw new Error(`storescu into dcmqrscp failed: ${r.stderr}`);
    }
  }
  return peer;
}

/** The data set part of a Part-10 file on disk. */
export async function fileDataset(file: string): Promise<Buffer> {
  return datasetOf(await readFile(file));
}
