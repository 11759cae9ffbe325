// A pacsnode server as a child process, for tests that need several PROCESSES on one archive
// (test/helpers/pacsnode-process.ts starts it).
//
//   node --import tsx test/helpers/pacsnode-process-entry.ts --max-seconds N [--hooks] [--log-level L]
//
// Configuration comes from the PACS_* environment; the working directory is both cwd and package
// root. Prints one JSON line on stdout, {"url", "pid", "hooksUrl"?}, once listening; logs go to
// stderr. Stops on SIGTERM/SIGINT, when stdin closes (the test process is gone), or after
// --max-seconds.
//
// --hooks adds test-only hooks on a second loopback port (never on the pacsnode app, and
// nothing of this lives in src/):
//   POST {hooksUrl}/__test/job  {"steps": n, "stepMs": ms}
//     starts a job in THIS process through JobService.startJob: every step adds 1 to `completed`
//     and takes 1 from `remaining`; it stops early when the job is cancelled (from any instance).
//     Answers 201 {"id"}.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import type { CallContext } from '../../src/archive/context.js';
import { SYSTEM } from '../../src/archive/origin.js';
import { loadConfig } from '../../src/config/load.js';
import { startServer, type RunningServer } from '../../src/main.js';

// Switches are arguments, not environment: every PACS_* variable is configuration (SPEC §2).
function option(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

function maxSeconds(argv: readonly string[]): number {
  const value = Number(option(argv, '--max-seconds') ?? 300);
  if (!Number.isFinite(value) || value <= 0) throw new Error('--max-seconds needs a positive number');
  return value;
}

const HOOK_CONTEXT: CallContext = { principal: SYSTEM, origin: { protocol: 'internal' } };

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function positiveInt(value: unknown, fallback: number, max: number): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && value <= max ? value : fallback;
}

async function startHooks(server: RunningServer): Promise<http.Server> {
  const hooks = http.createServer((req, res) => {
    const answer = (status: number, body: object): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/__test/job') return answer(404, { error: 'unknown hook' });
    readBody(req)
      .then(async (text) => {
        const input = (text === '' ? {} : JSON.parse(text)) as { steps?: unknown; stepMs?: unknown };
        const steps = positiveInt(input.steps, 20, 10_000);
        const stepMs = positiveInt(input.stepMs, 100, 10_000);
        const started = await server.jobs.startJob(HOOK_CONTEXT, 'test-steps', { steps, stepMs }, async (run) => {
          await run.progress({ set: { remaining: steps, completed: 0 } });
          for (let i = 0; i < steps && !run.signal.aborted; i++) {
            await delay(stepMs, undefined, { signal: run.signal }).catch(() => undefined);
            if (run.signal.aborted) break;
            await run.progress({ add: { completed: 1, remaining: -1 } });
          }
        });
        answer(201, { id: started.job.id });
      })
      .catch((err: unknown) => answer(500, { error: err instanceof Error ? err.message : String(err) }));
  });
  await new Promise<void>((resolve, reject) => {
    hooks.once('error', reject);
    hooks.listen(0, '127.0.0.1', () => resolve());
  });
  return hooks;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const lifetime = maxSeconds(argv);
  const cwd = process.cwd();
  const config = loadConfig({ env: process.env, cwd, packageRoot: cwd });
  const logger = pino({ level: option(argv, '--log-level') ?? 'warn' }, pino.destination({ fd: 2, sync: true }));
  const server = await startServer(config, { logger });
  const hooks = argv.includes('--hooks') ? await startHooks(server) : undefined;

  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(code === 0 ? 1 : code), 10_000).unref();
    hooks?.closeAllConnections();
    hooks?.close();
    void server.close().finally(() => process.exit(code));
  };
  process.once('SIGTERM', () => stop(0));
  process.once('SIGINT', () => stop(0));
  process.stdin.on('end', () => stop(0));
  process.stdin.on('close', () => stop(0));
  process.stdin.resume();
  setTimeout(() => {
    logger.error({ seconds: lifetime }, 'test server: lifetime exceeded, stopping');
    stop(3);
  }, lifetime * 1000).unref();

  const hooksAddress = hooks?.address() as AddressInfo | undefined;
  const hello = { url: server.httpUrl, pid: process.pid, ...(hooksAddress ? { hooksUrl: `http://127.0.0.1:${hooksAddress.port}` } : {}) };
  process.stdout.write(`${JSON.stringify(hello)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`test server failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
