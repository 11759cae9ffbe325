// DCMTK dcmqrscp as a C-MOVE/C-GET peer for the retrieve SCU tests: its storage area holds exact
// copies of the given files, indexed with dcmqridx (so what it holds is byte for byte what we
// generated, compressed files included), and its HostTable names the move destinations.
// Started on a free 127.0.0.1 port with TCP_NODELAY=1; stop() kills it and deletes its directory.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dcmtk } from './helpers.js';
import { freePort } from './scu-peers.js';

export interface MoveDestination {
  aeTitle: string;
  port: number;
  host?: string;
}

export interface RetrieveScp {
  port: number;
  aeTitle: string;
  /** The storage area: `<sopUid>.dcm` for each file given. */
  storage: string;
  /** The file dcmqrscp holds for a SOP Instance UID. */
  fileOf(sopUid: string): string;
  /** What dcmqrscp wrote to stderr (verbose), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

async function waitForPort(port: number, exited: () => boolean, ms = 10_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (exited()) throw new Error('exited early');
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

export async function startRetrieveScp(options: {
  files: readonly { path: string; sopUid: string }[];
  destinations?: readonly MoveDestination[];
  aeTitle?: string;
  /** Extra dcmqrscp options. */
  extra?: readonly string[];
}): Promise<RetrieveScp> {
  const aeTitle = options.aeTitle ?? 'QRSCP';
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-qr-retrieve-'));
  const storage = path.join(dir, 'db');
  await mkdir(storage);
  const held: string[] = [];
  for (const f of options.files) {
    const to = path.join(storage, `${f.sopUid}.dcm`);
    await copyFile(f.path, to);
    held.push(to);
  }
  // dcmqridx registers files in the storage area's index.dat (before dcmqrscp runs).
  for (let i = 0; i < held.length; i += 200) {
    const r = await dcmtk('dcmqridx', [storage, ...held.slice(i, i + 200)]);
    if (r.code !== 0) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`dcmqridx failed: ${r.stderr}`);
    }
  }
  const port = await freePort();
  const hosts = (options.destinations ?? []).map((d, i) => `dest${i} = (${d.aeTitle}, ${d.host ?? '127.0.0.1'}, ${d.port})`);
  const cfg = path.join(dir, 'dcmqrscp.cfg');
  await writeFile(
    cfg,
    [
      `NetworkTCPPort = ${port}`,
      'MaxPDUSize = 16384',
      'MaxAssociations = 16',
      'HostTable BEGIN',
      ...hosts,
      'HostTable END',
      'VendorTable BEGIN',
      'VendorTable END',
      'AETable BEGIN',
      `${aeTitle} ${storage} RW (2000, 1024mb) ANY`,
      'AETable END',
      '',
    ].join('\n'),
  );
  const child = spawn('dcmqrscp', ['-c', cfg, '-v', ...(options.extra ?? [])], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (d: Buffer): void => {
    lines.push(d.toString());
    while (lines.length > 400) lines.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, () => child.exitCode !== null);
  } catch (err) {
    await stop();
    throw new Error(`dcmqrscp did not start: ${(err as Error).message}\n${lines.join('')}`);
  }
  return {
    port,
    aeTitle,
    storage,
    fileOf: (sopUid) => path.join(storage, `${sopUid}.dcm`),
    log: () => lines.join(''),
    stop,
  };
}
