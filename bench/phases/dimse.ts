// DIMSE C-STORE and C-ECHO with DCMTK's own tools (issue 4): storescu sends 0.5 MB CT files to our
// server and, in the same run, to DCMTK's storescp (writing to disk) for the ratio; then 4
// storescu senders at once, and echoscu round trips while they run. Every tool runs with
// TCP_NODELAY=1 (without it DCMTK keeps Nagle on and loses ~40 ms per exchange) and is killed on
// timeout, at the end of the phase, and by killAllTools() when the bench fails.
//
// C-ECHO is also measured in-process with pacsnode's own SCU (one association per echo, every
// ~100 ms) — without the ~50 ms of echoscu's process start — while the senders run and while one
// very large instance (runLargeInstance: 1 GiB, --quick 256 MiB) is stored, during which the
// server's VmRSS is sampled every 50 ms.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ctPixels, encodeInstance, makePatient, makeSeries, writeLargeInstance, type StudyAttributes } from '../dataset.js';
import { keepAliveAgent, request } from '../http-client.js';
import { readMemory } from '../server-process.js';
import { MB, MiB, nowMs, percentile } from '../stats.js';
import { generateUid } from '../../src/dicom/uids.js';
import { createScu } from '../../src/dimse/scu/index.js';

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
  /**
   * A directory on the filesystem the server stores its blobs and index on (standalone): the
   * flush floor is measured there. Absent (production: S3 and PostgreSQL): not measured.
   */
  readonly flushDir?: string;
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
  /**
   * The same comparison repeated on fresh instances, the order alternating (storescp first, then
   * pacsnode first, …): one storescp run moves by 2× between runs on this machine, so a median
   * says more than the first pair. Informational; the first pair stays the figure of record.
   */
  readonly ratioRounds: readonly number[];
  readonly concurrent: StoreRun & { readonly senders: number };
  /** echoscu wall time, process start included. */
  readonly echo: { readonly count: number; readonly duringStore: number; readonly p50: number; readonly p95: number; readonly max: number };
  /**
   * C-ECHO with pacsnode's own SCU, in the bench process, every ~100 ms while `senders` storescu
   * send another `instances` fresh instances (a second round, without echoscu).
   */
  readonly scuEcho: EchoFigures & { readonly instances: number };
  readonly flushFloor?: FlushFloor;
}

/**
 * The device flushes one stored instance needs in the standalone profile and storescp does not
 * make, timed by themselves on the server's filesystem (synchronous calls in the bench process,
 * medians): the fsync of a 0.5 MB file, the fsync of the directory it was renamed into (SPEC §6),
 * and an fdatasync after appending 4 KiB to a log file (the index's WAL fsync, ADR 0009). They
 * run one after another after an instance's last byte, so pacsnode's time per instance is at
 * least storescp's plus their sum, and `ceiling` = storescp's time per instance (first pair) /
 * (that + the sum) bounds the ratio on this machine even with no CPU spent at all.
 */
export interface FlushFloor {
  readonly samples: number;
  readonly createMs: number;
  readonly fileFsyncMs: number;
  readonly dirFsyncMs: number;
  readonly logFsyncMs: number;
  /** fileFsyncMs + dirFsyncMs + logFsyncMs. */
  readonly flushesMs: number;
  readonly storescpCycleMs: number;
  readonly ceiling: number;
}

/** C-ECHO round trips (association open, C-ECHO, release) in milliseconds. */
export interface EchoFigures {
  /** Successful echoes: the percentiles are theirs. */
  readonly count: number;
  readonly failures: number;
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
  /** The first failure's message, if any. */
  readonly firstError?: string;
}

/** Instances' worth of flushes timed for the flush floor. */
const FLUSH_FLOOR_SAMPLES = 60;
const LOG_APPEND_BYTES = 4096;

/**
 * Times the flushes of FlushFloor in `dir` (a fresh subdirectory, left for the caller to remove
 * with the server's directory: deleting files here would slow the server's next creates, see
 * ADR 0019). Synchronous: nothing else runs in the bench process meanwhile.
 */
export function measureFlushFloor(dir: string, instanceBytes: number, storescpCycleMs: number, samples = FLUSH_FLOOR_SAMPLES): FlushFloor {
  const base = path.join(dir, `flush-floor-${process.pid}-${Date.now()}`);
  const tmp = path.join(base, 'tmp');
  const final = path.join(base, 'final');
  mkdirSync(tmp, { recursive: true });
  mkdirSync(final);
  const body = Buffer.alloc(instanceBytes, 0x5a);
  const append = Buffer.alloc(LOG_APPEND_BYTES, 0x2a);
  const create: number[] = [];
  const file: number[] = [];
  const dirSync: number[] = [];
  const log: number[] = [];
  const dirFd = openSync(final, 'r');
  const logFd = openSync(path.join(base, 'log'), 'a');
  try {
    for (let i = 0; i < samples; i++) {
      const from = path.join(tmp, `${i}.part`);
      let t = nowMs();
      const fd = openSync(from, 'wx');
      create.push(nowMs() - t);
      try {
        writeSync(fd, body);
        t = nowMs();
        fsyncSync(fd);
        file.push(nowMs() - t);
      } finally {
        closeSync(fd);
      }
      renameSync(from, path.join(final, `${i}.dcm`));
      t = nowMs();
      fsyncSync(dirFd);
      dirSync.push(nowMs() - t);
      writeSync(logFd, append);
      t = nowMs();
      fdatasyncSync(logFd);
      log.push(nowMs() - t);
    }
  } finally {
    closeSync(dirFd);
    closeSync(logFd);
  }
  const fileFsyncMs = percentile(file, 0.5);
  const dirFsyncMs = percentile(dirSync, 0.5);
  const logFsyncMs = percentile(log, 0.5);
  const flushesMs = fileFsyncMs + dirFsyncMs + logFsyncMs;
  return { samples, createMs: percentile(create, 0.5), fileFsyncMs, dirFsyncMs, logFsyncMs, flushesMs, storescpCycleMs, ceiling: storescpCycleMs / (storescpCycleMs + flushesMs) };
}

/** Pairs of storescu runs (pacsnode, storescp) for the median ratio, the first included. */
const RATIO_ROUNDS = 3;
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
const ECHO_INTERVAL_MS = 100;
const ECHO_TIMEOUT_SECS = 10;
/** Instances of the sender round timed with in-process C-ECHOs, at least. */
const SCU_ECHO_MIN_INSTANCES = 100;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * C-ECHO with pacsnode's own SCU in the bench process (`createScu().echo`: a new association each
 * time); the durations are the SCU's own (association request to release). A failed echo is
 * counted, not timed.
 */
class ScuEchoes {
  private readonly scu = createScu({ callingAe: 'BENCHSCU', timeoutSecs: ECHO_TIMEOUT_SECS });
  private readonly ms: number[] = [];
  private failures = 0;
  private firstError: string | undefined;

  constructor(private readonly port: number, private readonly calledAe: string) {}

  async once(): Promise<void> {
    try {
      const r = await this.scu.echo({ host: HOST, port: this.port, calledAe: this.calledAe });
      this.ms.push(r.durationMs);
    } catch (err) {
      this.failures++;
      this.firstError ??= err instanceof Error ? err.message : String(err);
    }
  }

  figures(): EchoFigures {
    return echoFigures(this.ms, this.failures, this.firstError);
  }
}

/** In-process C-ECHOs one after another, one starting every ~intervalMs, while `active()` holds. */
async function echoWhile(port: number, calledAe: string, deadline: number, active: () => boolean, intervalMs = ECHO_INTERVAL_MS): Promise<EchoFigures> {
  const echoes = new ScuEchoes(port, calledAe);
  while (active() && Date.now() < deadline) {
    const started = nowMs();
    await echoes.once();
    const wait = intervalMs - (nowMs() - started);
    if (wait > 0 && active()) await sleep(wait);
  }
  return echoes.figures();
}

function echoFigures(ms: readonly number[], failures: number, firstError: string | undefined): EchoFigures {
  return {
    count: ms.length,
    failures,
    p50: percentile(ms, 0.5),
    p95: percentile(ms, 0.95),
    max: ms.length > 0 ? Math.max(...ms) : Number.NaN,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}

export function formatFlushFloor(f: FlushFloor): string {
  return (
    `flushes per instance on the server's filesystem (medians of ${f.samples}): file fsync ${f.fileFsyncMs.toFixed(2)} ms, ` +
    `directory fsync ${f.dirFsyncMs.toFixed(2)} ms, 4 KiB log fdatasync ${f.logFsyncMs.toFixed(2)} ms (file create ${f.createMs.toFixed(2)} ms); ` +
    `storescp ${f.storescpCycleMs.toFixed(2)} ms per instance → ratio ceiling ${f.ceiling.toFixed(2)}`
  );
}

export function formatEcho(e: EchoFigures): string {
  return `p50 ${e.p50.toFixed(1)} ms, p95 ${e.p95.toFixed(1)} ms, max ${e.max.toFixed(1)} ms (n=${e.count}${e.failures > 0 ? `, ${e.failures} failed: ${e.firstError ?? '?'}` : ''})`;
}

async function storescu(o: Pick<DimseOptions, 'deadline'>, port: number, calledAe: string, files: readonly string[], socketTimeoutSecs = 60): Promise<number> {
  // -xe: all uncompressed transfer syntaxes proposed, explicit VR little endian first
  const args = ['-aec', calledAe, '-xe', '-to', '10', '-ta', '30', '-ts', String(socketTimeoutSecs), HOST, String(port), ...files];
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

    let flushFloor: FlushFloor | undefined;
    if (o.flushDir !== undefined) {
      flushFloor = measureFlushFloor(o.flushDir, Math.round(first.bytes / first.files.length), 1000 / reference.instancesPerSecond);
      o.log(`  ${formatFlushFloor(flushFloor)}`);
    }

    const ratioRounds = [ours.megabytesPerSecond / reference.megabytesPerSecond];
    for (let round = 1; round < RATIO_ROUNDS; round++) {
      const data = await writeDataset(path.join(dir, `r${round}`), o.instances, 10 + round);
      const runOurs = async (): Promise<StoreRun> => storeRun(data.files.length, data.bytes, await storescu(o, o.dicomPort, o.calledAe, data.files));
      const runTheirs = async (): Promise<StoreRun> => {
        await mkdir(outDir);
        try {
          return await runAgainstStorescp(o, data, outDir);
        } finally {
          await rm(outDir, { recursive: true, force: true });
        }
      };
      let a: StoreRun;
      let b: StoreRun;
      if (round % 2 === 1) {
        b = await runTheirs();
        a = await runOurs();
      } else {
        a = await runOurs();
        b = await runTheirs();
      }
      await rm(path.join(dir, `r${round}`), { recursive: true, force: true });
      ratioRounds.push(a.megabytesPerSecond / b.megabytesPerSecond);
      o.log(`  round ${round + 1} (${round % 2 === 1 ? 'storescp first' : 'pacsnode first'}): pacsnode ${a.instancesPerSecond.toFixed(1)} instances/s, storescp ${b.instancesPerSecond.toFixed(1)} instances/s, ratio ${(a.megabytesPerSecond / b.megabytesPerSecond).toFixed(2)}`);
    }

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
    o.log(`  echoscu (incl. process start): p50 ${echo.p50.toFixed(1)} ms, p95 ${echo.p95.toFixed(1)} ms (${duringStore} of ${echo.count} during the store)`);

    // The same load again on fresh instances (at least SCU_ECHO_MIN_INSTANCES, so that even --quick
    // gets a few dozen echoes), now with only the in-process C-ECHO every ~100 ms: no echoscu
    // process starts on the same cores
    const thirdCount = Math.max(o.instances, SCU_ECHO_MIN_INSTANCES);
    o.log(`  writing ${thirdCount} more CT instances (0.5 MB) as files`);
    const third = await writeDataset(path.join(dir, 'c'), thirdCount, 3);
    const perSender3 = Math.ceil(third.files.length / o.senders);
    let storing3 = true;
    const senders3 = Promise.all(
      Array.from({ length: o.senders }, (_, s) => storescu(o, o.dicomPort, o.calledAe, third.files.slice(s * perSender3, (s + 1) * perSender3))),
    ).finally(() => {
      storing3 = false;
    });
    senders3.catch(() => undefined);
    const scuEcho = { ...(await echoWhile(o.dicomPort, o.calledAe, o.deadline, () => storing3)), instances: third.files.length };
    await senders3;
    o.log(`  C-ECHO in-process during ${o.senders} senders of another ${third.files.length} instances: ${formatEcho(scuEcho)}`);
    return { ours, storescp: reference, ratio: ours.megabytesPerSecond / reference.megabytesPerSecond, ratioRounds, concurrent, echo, scuEcho, ...(flushFloor ? { flushFloor } : {}) };
  } finally {
    killAllTools();
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

// ---------------------------------------------------------------------------------------------
// One very large instance: the server's memory while it receives it

const GiB = 1024 * MiB;
/** Free space wanted in the temporary directory (and the server's, if elsewhere) before writing. */
const MIN_FREE_BYTES = 3 * GiB;
const LARGE_ROWS = 512;
const LARGE_COLUMNS = 512;
const RSS_SAMPLE_MS = 50;
/** storescu's socket timeout for the large instance: the C-STORE-RSP follows the server's fsync of it. */
const LARGE_SOCKET_TIMEOUT_SECS = 180;

export interface LargeInstanceOptions {
  /** Target file size; rounded down to whole 512×512 16-bit frames (512 KiB each). */
  readonly bytes: number;
  readonly dicomPort: number;
  readonly calledAe: string;
  /** The server's pid, for /proc/<pid>/status. */
  readonly serverPid: number;
  /** The server's data directory (its free space is checked too). */
  readonly serverDir: string;
  /** `<server>/dicom-web`, for the QIDO-RS check that the instance was stored. */
  readonly dicomWebUrl: string;
  readonly deadline: number;
  readonly log: (text: string) => void;
}

export interface LargeInstanceFigures {
  /** File size sent (Part-10, File Meta included). */
  readonly bytes: number;
  readonly frames: number;
  readonly sopInstanceUid: string;
  readonly generateSeconds: number;
  /** storescu's wall time (process start to exit, so the C-STORE-RSP after the server's fsync is in). */
  readonly seconds: number;
  readonly megabytesPerSecond: number;
  /** Server VmRSS just before storescu starts. */
  readonly baselineRss: number;
  /** Highest server VmRSS sampled (every 50 ms) during the transfer: absolute, not minus the baseline. */
  readonly peakRss: number;
  readonly rssSamples: number;
  /** Server VmHWM before and after: a higher `after` means the all-time peak was set during this store. */
  readonly hwmBefore: number;
  readonly hwmAfter: number;
  /** Server VmRSS once the store is answered. */
  readonly rssAfter: number;
  /** In-process C-ECHO every ~100 ms during the transfer. */
  readonly scuEcho: EchoFigures;
}

export type LargeInstanceResult = { readonly skipped: string } | LargeInstanceFigures;

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** QIDO-RS: the instance is indexed with its SOP Instance UID and its Number of Frames. */
async function checkStored(dicomWebUrl: string, sopInstanceUid: string, frames: number): Promise<void> {
  const agent = keepAliveAgent(1);
  try {
    const url = `${dicomWebUrl}/instances?SOPInstanceUID=${encodeURIComponent(sopInstanceUid)}&includefield=00280008`;
    const res = await request(url, { agent, headers: { accept: 'application/dicom+json' }, timeoutMs: 30_000, collect: true });
    if (res.status !== 200) throw new Error(`QIDO-RS lookup of the large instance answered ${res.status}`);
    const found = JSON.parse((res.body ?? Buffer.alloc(0)).toString('utf8')) as { '00080018'?: { Value?: unknown[] }; '00280008'?: { Value?: unknown[] } }[];
    const match = found.find((d) => d['00080018']?.Value?.[0] === sopInstanceUid);
    if (!match) throw new Error(`QIDO-RS does not find the large instance ${sopInstanceUid}`);
    const nf = match['00280008']?.Value?.[0];
    if (nf !== undefined && Number(nf) !== frames) throw new Error(`QIDO-RS gives the large instance ${String(nf)} frames, not ${frames}`);
  } finally {
    agent.destroy();
  }
}

/**
 * Writes one multi-frame instance of ~o.bytes to a temporary file (streaming), sends it with
 * storescu and samples the server's VmRSS every 50 ms meanwhile, with in-process C-ECHOs every
 * ~100 ms; checks it was stored (storescu without errors, then QIDO-RS) and deletes the file.
 * Skipped (with the reason) when the disk has less than 3 GiB free.
 */
export async function runLargeInstance(o: LargeInstanceOptions): Promise<LargeInstanceResult> {
  for (const dir of new Set([os.tmpdir(), o.serverDir])) {
    const free = await freeBytes(dir);
    if (free < MIN_FREE_BYTES) return { skipped: `only ${(free / GiB).toFixed(1)} GiB free in ${dir} (want ${MIN_FREE_BYTES / GiB} GiB)` };
  }
  const frameBytes = LARGE_ROWS * LARGE_COLUMNS * 2;
  const frames = Math.max(1, Math.floor(o.bytes / frameBytes));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pacsnode-bench-large-'));
  try {
    const generated = nowMs();
    const file = path.join(dir, 'large.dcm');
    const study: StudyAttributes = {
      patient: makePatient(3_000_000),
      studyUid: generateUid(),
      studyDate: '20240317',
      studyTime: '101500',
      accessionNumber: 'DSLARGE0001',
      studyId: '1',
      description: 'MULTIFRAME LARGE DIMSE',
      modality: 'CT',
    };
    const instance = await writeLargeInstance(file, {
      study,
      series: makeSeries(1),
      rows: LARGE_ROWS,
      columns: LARGE_COLUMNS,
      frames,
      framePixels: [1, 2, 3, 4].map((s) => ctPixels(LARGE_ROWS, LARGE_COLUMNS, 100 + s)),
    });
    const generateSeconds = (nowMs() - generated) / 1000;
    o.log(`  wrote ${(instance.bytes / MiB).toFixed(0)} MiB (${frames} frames of 512×512×16 bit) in ${generateSeconds.toFixed(1)} s`);

    const before = readMemory(o.serverPid);
    let peakRss = before.rss;
    let rssSamples = 0;
    let samplingError: string | undefined;
    const sampler = setInterval(() => {
      try {
        const m = readMemory(o.serverPid);
        rssSamples++;
        if (m.rss > peakRss) peakRss = m.rss;
      } catch (err) {
        samplingError ??= err instanceof Error ? err.message : String(err);
      }
    }, RSS_SAMPLE_MS);
    let storing = true;
    const store = storescu(o, o.dicomPort, o.calledAe, [file], LARGE_SOCKET_TIMEOUT_SECS).finally(() => {
      storing = false;
    });
    store.catch(() => undefined);
    const echoes = echoWhile(o.dicomPort, o.calledAe, o.deadline, () => storing);
    let ms: number;
    try {
      ms = await store;
    } finally {
      clearInterval(sampler);
    }
    const scuEcho = await echoes;
    // The sample at the very end, too (a store shorter than one interval still has one)
    const after = readMemory(o.serverPid);
    rssSamples++;
    peakRss = Math.max(peakRss, after.rss);
    if (samplingError !== undefined) throw new Error(`reading the server's memory failed: ${samplingError}`);
    await checkStored(o.dicomWebUrl, instance.sopInstanceUid, frames);
    const seconds = ms / 1000;
    return {
      bytes: instance.bytes,
      frames,
      sopInstanceUid: instance.sopInstanceUid,
      generateSeconds,
      seconds,
      megabytesPerSecond: instance.bytes / MB / seconds,
      baselineRss: before.rss,
      peakRss,
      rssSamples,
      hwmBefore: before.peakRss,
      hwmAfter: after.peakRss,
      rssAfter: after.rss,
      scuEcho,
    };
  } finally {
    killAllTools();
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}
