// Runs the real product as the bench's server: builds it once (`tsc -p tsconfig.build.json`, what
// `npm run build` does), then starts `node bin/pacsnode.js serve` — the compiled dist/, as
// `npm start` runs it, no tsx — in a fresh temporary directory, reads its URL and DIMSE port from
// its log lines, reads its memory and CPU time from /proc, and stops it (SIGTERM, then SIGKILL) —
// also when the bench itself fails.
//
// The product stops only on a signal, so the server runs under coreutils `timeout`: if the bench
// dies without stopping it (even by SIGKILL), `timeout` sends it SIGTERM after the fixed lifetime
// (maxSeconds) and SIGKILL 10 s later. `timeout` makes itself the leader of a new process group
// (so a Ctrl-C in the terminal reaches the bench, which stops the server with one SIGTERM) and
// waits for its child; the figures are read from that child, the node process.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { envWithoutPacs } from '../test/helpers/tsx-child.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..');
const PRODUCT_BIN = path.join(REPO_ROOT, 'bin', 'pacsnode.js');
/** SIGTERM to SIGKILL, for the bench's stop() and for `timeout --kill-after`. */
const STOP_TIMEOUT_MS = 15_000;
const KILL_AFTER_SECONDS = 10;
/** Lines of the server's stdout and stderr kept for error messages (the rest is drained and dropped). */
const TAIL_LINES = 20;
const MAX_LINE_CHARS = 2000;

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
  /** The node process running pacsnode (not its `timeout` parent). */
  readonly pid: number;
  /** The temporary directory holding the database and blobs. */
  readonly dir: string;
  memory(): Memory;
  /** CPU time the server has used so far (user + system, all threads), in seconds. */
  cpuSeconds(): number;
  /** Stops the server and deletes its directory; safe to call more than once. */
  stop(): Promise<void>;
}

interface Running {
  stop(): Promise<void>;
  /** Synchronous last resort when the bench exits without stopping the server. */
  killNow(): void;
}

/** Every server started and not yet stopped, so that a failing bench can stop them all. */
const running = new Set<Running>();

export async function stopAllServers(): Promise<void> {
  await Promise.allSettled([...running].map((r) => r.stop()));
}

// A bench that exits some other way (process.exit elsewhere, an uncaught error) kills what is left.
process.on('exit', () => {
  for (const r of running) r.killNow();
});

/**
 * Root logger at info — the product logs "pacsnode is running" (with the URL) and "DIMSE listening
 * on port N" there, and nothing else after start-up — and every component at warn, the level the
 * bench has always used: no per-request or per-association lines.
 */
const LOG_LEVEL = 'info,http=warn,dimse=warn,archive=warn,jobs=warn,nodes=warn';

function benchEnv(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  // A developer's own PACS_* settings must not change what is measured
  return {
    ...envWithoutPacs(),
    PACS_SERVER__HTTP_PORT: '0',
    PACS_SERVER__HTTP_HOST: '127.0.0.1',
    PACS_SERVER__DICOM_PORT: '0',
    PACS_STORAGE__GC_INTERVAL_SECS: '0',
    PACS_LOGGING__LEVEL: LOG_LEVEL,
    PACS_LOGGING__FORMAT: 'json',
    ...extra,
  };
}

let build: Promise<void> | undefined;

/** Compiles src/ into dist/ (`tsc -p tsconfig.build.json`, incremental) once per bench run. */
export function buildProduct(): Promise<void> {
  build ??= (async () => {
    const tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
    const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (output += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (output += t));
    const code = await new Promise<number | string>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, signal) => resolve(c ?? signal ?? 'unknown'));
    });
    if (code !== 0) throw new Error(`building the server failed (tsc -p tsconfig.build.json exited ${code}):\n${output.trim()}`);
  })();
  return build;
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

/** /proc/<pid>/stat fields after the parenthesised command name (which may itself hold spaces): [0] is field 3. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export function readCpuSeconds(pid: number): number {
  const fields = statFields(pid);
  // utime and stime are fields 14 and 15
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** The processes whose parent is `pid`. */
function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (Number(statFields(Number(name))[1]) === pid) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The last lines of a stream, kept while everything else is read and dropped. */
class Tail {
  private readonly lines: string[] = [];
  private partial = '';
  constructor(private readonly onLine?: (line: string) => void) {}
  push(text: string): void {
    const parts = (this.partial + text).split('\n');
    this.partial = (parts.pop() ?? '').slice(-MAX_LINE_CHARS);
    for (const line of parts) {
      this.lines.push(line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line);
      if (this.lines.length > TAIL_LINES) this.lines.shift();
      this.onLine?.(line);
    }
  }
  text(): string {
    return [...this.lines, ...(this.partial === '' ? [] : [this.partial])].join('\n');
  }
}

interface Ready {
  url: string;
  dicomPort: number;
  /** pino's `pid` of the lines. */
  pid: number | undefined;
}

/**
 * The Node flags `npm start` runs the server with (package.json `scripts.start`:
 * `node <flags> bin/pacsnode.js serve`): the bench measures the product as it is started.
 */
export function startScriptNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const words = (pkg.scripts?.['start'] ?? '').trim().split(/\s+/);
  const entry = words.findIndex((w) => w.endsWith('bin/pacsnode.js'));
  if (words[0] !== 'node' || entry < 1) throw new Error(`package.json scripts.start is not "node [flags] bin/pacsnode.js …": ${pkg.scripts?.['start'] ?? ''}`);
  return words.slice(1, entry);
}

export async function startServerProcess(options: ServerOptions): Promise<ServerProcess> {
  await buildProduct();
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-bench-'));
  // `--config` replaces both config.toml layers: a config.toml in the checkout (the product's
  // package root) must not change what is measured. The file is empty: the defaults and PACS_*.
  const configFile = path.join(dir, 'bench-config.toml');
  await writeFile(configFile, '# pacsnode bench: the default configuration, with PACS_* settings from the environment\n');
  const nodeArgs = [
    ...startScriptNodeFlags(),
    ...(options.cpuProfDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir] : []),
    PRODUCT_BIN,
    'serve',
    '--config',
    configFile,
  ];
  const lifetime = Math.max(1, Math.ceil(options.maxSeconds));
  let child: ChildProcess;
  try {
    child = spawn('timeout', ['--signal=TERM', `--kill-after=${KILL_AFTER_SECONDS}s`, `${lifetime}s`, process.execPath, ...nodeArgs], {
      cwd: dir,
      env: benchEnv(options.env ?? {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  let exited = child.exitCode !== null || child.signalCode !== null;
  let spawnError: Error | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', (err) => {
      // spawn failed (no `timeout` on PATH?): there is no process to wait for
      spawnError = err;
      exited = true;
      resolve();
    });
  });

  let ready: Partial<Ready> = {};
  let onReady: (() => void) | undefined;
  const stdout = new Tail((line) => {
    if (onReady === undefined || !line.startsWith('{')) return;
    let entry: { msg?: unknown; url?: unknown; port?: unknown; pid?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    const msg = typeof entry.msg === 'string' ? entry.msg : '';
    const pid = typeof entry.pid === 'number' ? entry.pid : undefined;
    if (msg.startsWith('pacsnode is running') && typeof entry.url === 'string') ready = { ...ready, url: entry.url, pid };
    else if (msg.startsWith('DIMSE listening on port') && typeof entry.port === 'number') ready = { ...ready, dicomPort: entry.port };
    if (ready.url !== undefined && ready.dicomPort !== undefined) onReady();
  });
  const stderr = new Tail();
  // Read to the end, always: a child blocked on a full pipe would stall the figures
  child.stdout?.setEncoding('utf8').on('data', (t: string) => stdout.push(t));
  child.stderr?.setEncoding('utf8').on('data', (t: string) => stderr.push(t));
  const output = (): string => `--- server stderr (last lines) ---\n${stderr.text()}\n--- server stdout (last lines) ---\n${stdout.text()}`;

  let nodePid: number | undefined;
  const signalServer = (signal: NodeJS.Signals): void => {
    try {
      if (nodePid !== undefined) process.kill(nodePid, signal);
      else child.kill(signal); // not yet known: `timeout` passes the signal on
    } catch {
      // already gone
    }
  };
  const waitForExit = (ms: number): Promise<boolean> => {
    if (exited) return Promise.resolve(true);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    return Promise.race([exit.then(() => true), late]).finally(() => clearTimeout(timer));
  };
  let stopping: Promise<void> | undefined;
  const entry: Running = {
    stop() {
      stopping ??= (async () => {
        running.delete(entry);
        if (!exited) {
          // SIGTERM: the product's graceful shutdown, then process.exit (and --cpu-prof writes)
          signalServer('SIGTERM');
          if (!(await waitForExit(STOP_TIMEOUT_MS))) {
            entry.killNow();
            await waitForExit(5_000);
          }
        }
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      })();
      return stopping;
    },
    killNow() {
      if (exited) return;
      // The whole group `timeout` leads: timeout and the server
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        signalServer('SIGKILL');
        child.kill('SIGKILL');
      }
      if (stopping === undefined) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
  running.add(entry);

  try {
    const startTimeoutMs = options.startTimeoutMs ?? 60_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`the server did not report its HTTP URL and DIMSE port within ${startTimeoutMs} ms\n${output()}`)), startTimeoutMs);
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        onReady = undefined;
        if (err) reject(err);
        else resolve();
      };
      onReady = () => finish();
      void exit.then(() => {
        // let the last output arrive before it is shown
        setImmediate(() => finish(spawnError ?? new Error(`the server exited (${child.signalCode ?? child.exitCode}) before it was ready\n${output()}`)));
      });
    });
    const { url, dicomPort } = ready;
    if (url === undefined || dicomPort === undefined || child.pid === undefined) throw new Error(`the server did not start\n${output()}`);
    const children = childPids(child.pid);
    const pid = children[0];
    if (children.length !== 1 || pid === undefined || (ready.pid !== undefined && ready.pid !== pid)) {
      throw new Error(`cannot tell the server's node process: timeout (pid ${child.pid}) has children [${children.join(', ')}], the log says pid ${ready.pid ?? '?'}`);
    }
    nodePid = pid;
    return { url, dicomPort, pid, dir, memory: () => readMemory(pid), cpuSeconds: () => readCpuSeconds(pid), stop: () => entry.stop() };
  } catch (err) {
    await entry.stop();
    throw err;
  }
}

/**
 * The main thread's .cpuprofile in a directory (written by the server when it exits). --cpu-prof
 * also profiles worker threads, if any, named CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile;
 * the main thread is thread 0.
 */
export async function mainThreadCpuProfile(dir: string): Promise<string | undefined> {
  const files = (await readdir(dir)).filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f)).sort();
  const last = files[files.length - 1];
  return last === undefined ? undefined : path.join(dir, last);
}
