// A TypeScript entry run as a child process under tsx in its own temporary directory: it prints one
// JSON line when it is ready, and stop() ends it (SIGTERM, then SIGKILL) and deletes the directory.
// Shared by the tests' pacsnode processes and the bench's server process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TsxChildOptions {
  script: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  /** Prefix of the temporary directory the child runs in. */
  dirPrefix: string;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
  startTimeoutMs?: number;
  /** How long SIGTERM may take before SIGKILL. */
  stopTimeoutMs?: number;
}

export interface TsxChild {
  child: ChildProcess;
  pid: number;
  dir: string;
  /** The first line the child wrote to stdout. */
  firstLine: string;
  /** The last lines the child wrote to stderr (for failure messages). */
  stderr(): string;
  /** Stops the child and deletes its directory; safe to call more than once. */
  stop(): Promise<void>;
}

/** A PACS_-free copy of this process's environment: a developer's own settings must not leak in. */
export function envWithoutPacs(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PACS_')) env[k] = v;
  return env;
}

export async function startTsxChild(options: TsxChildOptions): Promise<TsxChild> {
  const dir = await mkdtemp(path.join(tmpdir(), options.dirPrefix));
  // An absolute loader URL: the child's cwd (the temporary directory) has no node_modules.
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), ...(options.nodeArgs ?? []), options.script, ...options.args], {
    cwd: dir,
    env: options.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    tail.push(text);
    while (tail.length > 40) tail.shift();
  });
  const stderr = (): string => tail.join('').split('\n').slice(-20).join('\n');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        if (!(await waitForExit(child, options.stopTimeoutMs ?? 10_000))) {
          child.kill('SIGKILL');
          await waitForExit(child, 5_000);
        }
      }
      child.stdin?.destroy();
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    })();
    return stopping;
  };

  try {
    const firstLine = await readFirstLine(child, options.startTimeoutMs ?? 60_000, stderr);
    if (child.pid === undefined) throw new Error('the child has no pid');
    return { child, pid: child.pid, dir, firstLine, stderr, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

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

function readFirstLine(child: ChildProcess, timeoutMs: number, stderr: () => string): Promise<string> {
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
      reject(new Error(`the child exited (${signal ?? code}) before it was ready\n${stderr()}`));
    };
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.once('exit', onExit);
  });
}
