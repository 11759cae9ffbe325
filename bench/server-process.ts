// Starts bench/server.ts as a child process in a fresh temporary directory, reads its URL, reads its
// memory from /proc, and stops it (SIGTERM, then SIGKILL) — also when the bench itself fails.
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { envWithoutPacs, startTsxChild } from '../test/helpers/tsx-child.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..');
const SERVER_SCRIPT = path.join(HERE, 'server.ts');

export interface ServerOptions {
  /** PACS_* settings on top of the bench defaults. */
  readonly env?: Readonly<Record<string, string>>;
  /** Write a V8 CPU profile of the server into this directory when it stops. */
  readonly cpuProfDir?: string;
  /** The child stops by itself after this long, whatever happens to the bench. */
  readonly maxSeconds: number;
  readonly startTimeoutMs?: number;
}

export interface Memory {
  /** VmHWM: peak resident set size, in bytes. */
  readonly peakRss: number;
  /** VmRSS: resident set size now, in bytes. */
  readonly rss: number;
}

export interface ServerProcess {
  readonly url: string;
  /** The DIMSE port (C-ECHO, C-STORE, C-FIND) on 127.0.0.1. */
  readonly dicomPort: number;
  readonly pid: number;
  /** The temporary directory holding the database and blobs. */
  readonly dir: string;
  memory(): Memory;
  /** CPU time the server has used so far (user + system, all threads), in seconds. */
  cpuSeconds(): number;
  /** Stops the server and deletes its directory; safe to call more than once. */
  stop(): Promise<void>;
}

/** The stop() of every server started and not yet stopped, so that a failing bench can stop them all. */
const running = new Set<() => Promise<void>>();

export async function stopAllServers(): Promise<void> {
  await Promise.allSettled([...running].map((stop) => stop()));
}

function benchEnv(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  // A developer's own PACS_* settings must not change what is measured
  return {
    ...envWithoutPacs(),
    TSX_TSCONFIG_PATH: path.join(REPO_ROOT, 'tsconfig.json'),
    PACS_SERVER__HTTP_PORT: '0',
    PACS_SERVER__HTTP_HOST: '127.0.0.1',
    PACS_SERVER__DICOM_PORT: '0',
    PACS_STORAGE__GC_INTERVAL_SECS: '0',
    ...extra,
  };
}

export function readMemory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m?.[1]) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]) * 1024;
  };
  return { peakRss: kib('VmHWM'), rss: kib('VmRSS') };
}

/** USER_HZ: the unit of /proc/<pid>/stat times, 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after the parenthesised command name (which may itself hold spaces): utime is field 14
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

export async function startServerProcess(options: ServerOptions): Promise<ServerProcess> {
  const started = await startTsxChild({
    script: SERVER_SCRIPT,
    args: ['--max-seconds', String(Math.ceil(options.maxSeconds))],
    env: benchEnv(options.env ?? {}),
    dirPrefix: 'pacsnode-bench-',
    nodeArgs: options.cpuProfDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir] : [],
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
    stopTimeoutMs: 15_000,
  });
  const stop = async (): Promise<void> => {
    running.delete(stop);
    await started.stop();
  };
  running.add(stop);
  const { pid, dir, firstLine: line } = started;
  try {
    const hello = JSON.parse(line) as { url?: unknown; dicomPort?: unknown; pid?: unknown };
    if (typeof hello.url !== 'string' || typeof hello.dicomPort !== 'number' || hello.pid !== pid) throw new Error(`unexpected first line from the server: ${line}`);
    return { url: hello.url, dicomPort: hello.dicomPort, pid, dir, memory: () => readMemory(pid), cpuSeconds: () => readCpuSeconds(pid), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The main thread's .cpuprofile in a directory (written by the child when it exits). --cpu-prof
 * also profiles worker threads — tsx's module loader runs in one — named
 * CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; the main thread is thread 0.
 */
export async function mainThreadCpuProfile(dir: string): Promise<string | undefined> {
  const files = (await readdir(dir)).filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f)).sort();
  const last = files[files.length - 1];
  return last === undefined ? undefined : path.join(dir, last);
}
