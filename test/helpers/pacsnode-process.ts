// Starts pacsnode as a child PROCESS (test/helpers/pacsnode-process-entry.ts) in a fresh temporary
// directory and reads its URL from the first line of its stdout. Every child is stopped (SIGTERM,
// then SIGKILL) by close() and, whatever happens, in node:test's `after` at the end of the file;
// the child also stops by itself when its stdin closes or after `maxSeconds`.
import path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { envWithoutPacs, startTsxChild } from './tsx-child.js';

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

export async function startPacsnodeProcess(options: PacsnodeProcessOptions): Promise<PacsnodeProcess> {
  // Only the given configuration: every PACS_* variable is a config key to the child (SPEC §2).
  const env: NodeJS.ProcessEnv = {
    ...envWithoutPacs(),
    TSX_TSCONFIG_PATH: path.join(REPO_ROOT, 'tsconfig.json'),
    PACS_SERVER__HTTP_PORT: '0',
    PACS_SERVER__HTTP_HOST: '127.0.0.1',
    PACS_SERVER__DICOM_PORT: '0',
    PACS_STORAGE__GC_INTERVAL_SECS: '0',
    PACS_FILESYSTEM_STORAGE__FSYNC: 'false',
    ...options.env,
  };
  const args = ['--max-seconds', String(options.maxSeconds ?? 300), '--log-level', process.env['PACS_TEST_LOG'] ?? 'warn'];
  if (options.hooks) args.push('--hooks');
  const started = await startTsxChild({ script: ENTRY, args, env, dirPrefix: 'pacsnode-proc-', startTimeoutMs: options.startTimeoutMs ?? 60_000 });
  const close = async (): Promise<void> => {
    running.delete(close);
    await started.stop();
  };
  running.add(close);
  const { pid, firstLine: line, stderr } = started;
  try {
    const hello = JSON.parse(line) as { url?: unknown; pid?: unknown; hooksUrl?: unknown };
    if (typeof hello.url !== 'string' || hello.pid !== pid) throw new Error(`unexpected first line from the child: ${line}`);
    return { url: hello.url, pid, ...(typeof hello.hooksUrl === 'string' ? { hooksUrl: hello.hooksUrl } : {}), stderr, close };
  } catch (err) {
    await close();
    throw err;
  }
}
