// Starts pacsnode as a child PROCESS (test/helpers/pacsnode-process-entry.ts) in a fresh temporary
// directory and reads its URL from the first line of its stdout. Every child is stopped (SIGTERM,
// then SIGKILL) by close() and, whatever happens, in node:test's `after` at the end of the file;
// the child also stops by itself when its stdin closes or after `maxSeconds`.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');
const ENTRY = path.join(HERE, 'pacsnode-process-entry.ts');

export interface PacsnodeProcess {
  url: string;
  pid: number;
  /** Set when started with `hooks` (see pacsnode-process-entry.ts). */
  hooksUrl?: string;
  /** The last lines the child wrote to stderr (for failure messages). */
  stderr(): string;
  close(): Promise<void>;
}

export interface PacsnodeProcessOptions {
  /** PACS_* settings on top of the test defaults (port 0 on loopback, gc off). */
  env: Record<string, string>;
  hooks?: boolean;
  /** The child stops by itself after this long. Default 300. */
  maxSeconds?: number;
  startTimeoutMs?: number;
}

const running = new Set<() => Promise<void>>();
// Registered at import, on the file's root: runs at the end of the test file, pass or fail.
after(async () => {
  await Promise.allSettled([...running].map((close) => close()));
});

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

export async function startPacsnodeProcess(options: PacsnodeProcessOptions): Promise<PacsnodeProcess> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-proc-'));
  const env: NodeJS.ProcessEnv = {};
  // Only the given configuration: every PACS_* variable is a config key to the child (SPEC §2).
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PACS_')) env[k] = v;
  Object.assign(env, {
    TSX_TSCONFIG_PATH: path.join(REPO_ROOT, 'tsconfig.json'),
    PACS_SERVER__HTTP_PORT: '0',
    PACS_SERVER__HTTP_HOST: '127.0.0.1',
    PACS_SERVER__DICOM_PORT: '0',
    PACS_STORAGE__GC_INTERVAL_SECS: '0',
    PACS_FILESYSTEM_STORAGE__FSYNC: 'false',
    ...options.env,
  });
  // An absolute loader URL: the child's cwd (the temporary directory) has no node_modules.
  const args = [ENTRY, '--max-seconds', String(options.maxSeconds ?? 300), '--log-level', process.env['PACS_TEST_LOG'] ?? 'warn'];
  if (options.hooks) args.push('--hooks');
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), ...args], {
    cwd: dir,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    tail.push(text);
    while (tail.length > 40) tail.shift();
  });
  const stderr = (): string => tail.join('').split('\n').slice(-20).join('\n');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      running.delete(close);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        if (!(await waitForExit(child, 10_000))) {
          child.kill('SIGKILL');
          await waitForExit(child, 5_000);
        }
      }
      child.stdin?.destroy();
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    })();
    return closing;
  };
  running.add(close);

  try {
    const line = await firstLine(child, options.startTimeoutMs ?? 60_000, stderr);
    const hello = JSON.parse(line) as { url?: unknown; pid?: unknown; hooksUrl?: unknown };
    if (typeof hello.url !== 'string' || hello.pid !== child.pid || child.pid === undefined) throw new Error(`unexpected first line from the child: ${line}`);
    return { url: hello.url, pid: child.pid, ...(typeof hello.hooksUrl === 'string' ? { hooksUrl: hello.hooksUrl } : {}), stderr, close };
  } catch (err) {
    await close();
    throw err;
  }
}

function firstLine(child: ChildProcess, timeoutMs: number, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`the child did not start within ${timeoutMs} ms\n${stderr()}`));
    }, timeoutMs);
    const onData = (text: string): void => {
      buffered += text;
      const nl = buffered.indexOf('\n');
      if (nl >= 0) {
        cleanup();
        resolve(buffered.slice(0, nl));
      }
    };
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup();
      reject(new Error(`the child exited (${signal ?? code}) before it was listening\n${stderr()}`));
    };
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.once('exit', onExit);
  });
}
