// DIMSE C-STORE and C-ECHO with DCMTK's own tools (issue 4): storescu sends 0.5 MB CT files to our
// server and, in the same run, to DCMTK's storescp (writing to disk) for the ratio; then 4
// storescu senders at once, and echoscu round trips while they run. Every tool runs with
// TCP_NODELAY=1 (without it DCMTK keeps Nagle on and loses ~40 ms per exchange) and is killed on
// timeout, at the end of the phase, and by killAllTools() when the bench fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ctPixels, encodeInstance, makePatient, makeSeries, type StudyAttributes } from '../dataset.js';
import { MB, nowMs, percentile } from '../stats.js';
import { generateUid } from '../../src/dicom/uids.js';

export interface DimseOptions {
  /** Instances per run (each 0.5 MB), split in studies of 50. */
  readonly instances: number;
  readonly senders: number;
  readonly echoes: number;
  readonly dicomPort: number;
  readonly calledAe: string;
  /** Absolute deadline (ms since epoch): every tool is bounded by it. */
  readonly deadline: number;
  readonly log: (text: string) => void;
}

export interface StoreRun {
  readonly instances: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly instancesPerSecond: number;
  readonly megabytesPerSecond: number;
}

export interface DimseFigures {
  readonly ours: StoreRun;
  readonly storescp: StoreRun;
  /** ours MB/s / storescp MB/s. */
  readonly ratio: number;
  readonly concurrent: StoreRun & { readonly senders: number };
  readonly echo: { readonly count: number; readonly duringStore: number; readonly p50: number; readonly p95: number; readonly max: number };
}

const ROWS = 512;
const COLUMNS = 512;
const STUDY_SIZE = 50;
const HOST = '127.0.0.1';

/** Tools still running: killed by killAllTools() (failure) and at the end of the phase. */
const children = new Set<ChildProcess>();

export function killAllTools(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

interface Dataset {
  readonly files: readonly string[];
  readonly bytes: number;
}

/** `count` fresh CT instances (fresh UIDs) as Part-10 files in `dir`. */
async function writeDataset(dir: string, count: number, seed: number): Promise<Dataset> {
  await mkdir(dir, { recursive: true });
  const pixelSets = [1, 2, 3, 4].map((s) => ctPixels(ROWS, COLUMNS, s + seed));
  const files: string[] = [];
  let bytes = 0;
  let study: StudyAttributes | undefined;
  let series = makeSeries(1);
  for (let i = 0; i < count; i++) {
    const s = Math.floor(i / STUDY_SIZE);
    if (i % STUDY_SIZE === 0) {
      study = {
        patient: makePatient(2_000_000 + seed * 10_000 + s),
        studyUid: generateUid(),
        studyDate: '20240316',
        studyTime: '091500',
        accessionNumber: `DS${String(seed * 10_000 + s).padStart(8, '0')}`,
        studyId: String(s),
        description: 'CT CHEST DIMSE',
        modality: 'CT',
      };
      series = makeSeries(1);
    }
    if (!study) throw new Error('unreachable: no study');
    const inst = encodeInstance({ study, series, instanceNumber: (i % STUDY_SIZE) + 1, rows: ROWS, columns: COLUMNS, pixels: pixelSets[s % pixelSets.length] as Buffer });
    const file = path.join(dir, `${String(i).padStart(5, '0')}.dcm`);
    await writeFile(file, Buffer.concat(inst.chunks as Buffer[]));
    files.push(file);
    bytes += inst.bytes;
  }
  return { files, bytes };
}

interface ToolResult {
  readonly ms: number;
  readonly stderr: string;
}

/** Runs a DCMTK tool to its end (TCP_NODELAY=1), killing it past timeoutMs; fails on a non-zero exit. */
function runTool(command: string, args: readonly string[], timeoutMs: number): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const started = nowMs();
    const child = spawn(command, args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let output = '';
    const keep = (text: string): void => {
      output = (output + text).slice(-4000);
    };
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(1, timeoutMs));
    child.once('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      reject(new Error(`${command}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const ms = nowMs() - started;
      if (code === 0) resolve({ ms, stderr: output });
      else reject(new Error(`${command} ${signal === 'SIGKILL' ? `killed after ${timeoutMs} ms` : `exited with ${signal ?? code}`}\n${output.split('\n').slice(-15).join('\n')}`));
    });
  });
}

function remainingMs(deadline: number, capMs: number): number {
  const left = deadline - Date.now();
  if (left <= 0) throw new Error('DIMSE: time budget exceeded');
  return Math.min(left, capMs);
}

const STORE_TIMEOUT_MS = 300_000;

async function storescu(o: DimseOptions, port: number, calledAe: string, files: readonly string[]): Promise<number> {
  // -xe: all uncompressed transfer syntaxes proposed, explicit VR little endian first
  const args = ['-aec', calledAe, '-xe', '-to', '10', '-ta', '30', '-ts', '60', HOST, String(port), ...files];
  const result = await runTool('storescu', args, remainingMs(o.deadline, STORE_TIMEOUT_MS));
  // storescu exits 0 even when single stores fail: their errors are on its output
  if (/^E: /m.test(result.stderr)) throw new Error(`storescu reported errors:\n${result.stderr.split('\n').slice(-15).join('\n')}`);
  return result.ms;
}

function storeRun(instances: number, bytes: number, ms: number): StoreRun {
  const seconds = ms / 1000;
  return { instances, bytes, seconds, instancesPerSecond: instances / seconds, megabytesPerSecond: bytes / MB / seconds };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

async function waitForListening(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('storescp exited before it was listening');
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, HOST);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`storescp did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** DCMTK's storescp writing every instance to `outDir` (one association at a time, as used here). */
async function runAgainstStorescp(o: DimseOptions, data: Dataset, outDir: string): Promise<StoreRun> {
  const port = await freePort();
  const child = spawn('storescp', ['-od', outDir, '-aet', 'STORESCP', '-ta', '30', '-ts', '60', String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  try {
    await waitForListening(port, child, 10_000);
    if (spawnError) throw spawnError;
    const ms = await storescu(o, port, 'STORESCP', data.files);
    const written = (await readdir(outDir)).length;
    if (written !== data.files.length) throw new Error(`storescp wrote ${written} of ${data.files.length} files`);
    return storeRun(data.files.length, data.bytes, ms);
  } finally {
    await stopChild(child);
  }
}

export async function runDimse(o: DimseOptions): Promise<DimseFigures> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacsnode-bench-dimse-'));
  try {
    o.log(`  writing ${o.instances} × 2 CT instances (0.5 MB) as files`);
    const first = await writeDataset(path.join(dir, 'a'), o.instances, 1);
    const second = await writeDataset(path.join(dir, 'b'), o.instances, 2);

    const oursMs = await storescu(o, o.dicomPort, o.calledAe, first.files);
    const ours = storeRun(first.files.length, first.bytes, oursMs);
    o.log(`  storescu → pacsnode: ${ours.instancesPerSecond.toFixed(1)} instances/s, ${ours.megabytesPerSecond.toFixed(1)} MB/s`);

    const outDir = path.join(dir, 'storescp');
    await mkdir(outDir);
    const reference = await runAgainstStorescp(o, first, outDir);
    await rm(outDir, { recursive: true, force: true });
    o.log(`  storescu → storescp: ${reference.instancesPerSecond.toFixed(1)} instances/s, ${reference.megabytesPerSecond.toFixed(1)} MB/s`);

    // Concurrent senders on fresh instances, echoscu round trips meanwhile
    const perSender = Math.ceil(second.files.length / o.senders);
    const started = nowMs();
    let storing = true;
    let storeEnded = Number.NaN;
    const senders = Promise.all(
      Array.from({ length: o.senders }, (_, s) => storescu(o, o.dicomPort, o.calledAe, second.files.slice(s * perSender, (s + 1) * perSender))),
    ).finally(() => {
      storing = false;
      storeEnded = nowMs();
    });
    // Keep a rejection from going unhandled while the echoes run; it is rethrown below
    senders.catch(() => undefined);
    const echoMs: number[] = [];
    let duringStore = 0;
    for (let i = 0; i < o.echoes; i++) {
      const during = storing;
      const r = await runTool('echoscu', ['-aec', o.calledAe, '-to', '10', '-ta', '10', HOST, String(o.dicomPort)], remainingMs(o.deadline, 30_000));
      echoMs.push(r.ms);
      if (during && storing) duringStore++;
    }
    await senders;
    const concurrentMs = storeEnded - started;
    const concurrent = { ...storeRun(second.files.length, second.bytes, concurrentMs), senders: o.senders };
    o.log(`  ${o.senders} storescu senders → pacsnode: ${concurrent.instancesPerSecond.toFixed(1)} instances/s, ${concurrent.megabytesPerSecond.toFixed(1)} MB/s`);
    const echo = { count: echoMs.length, duringStore, p50: percentile(echoMs, 0.5), p95: percentile(echoMs, 0.95), max: Math.max(...echoMs) };
    o.log(`  echoscu: p50 ${echo.p50.toFixed(1)} ms, p95 ${echo.p95.toFixed(1)} ms (${duringStore} of ${echo.count} during the store)`);
    return { ours, storescp: reference, ratio: ours.megabytesPerSecond / reference.megabytesPerSecond, concurrent, echo };
  } finally {
    killAllTools();
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}
