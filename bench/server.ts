// The server under test, run as a child process of bench/run.ts so that its memory can be read
// from /proc/<pid>/status and the load generator does not share its event loop.
//
//   node --import tsx bench/server.ts [--max-seconds N]
//
// Configuration comes from the PACS_* environment the parent passes (SPEC §2); the working
// directory (a fresh temporary directory) is both cwd and package root, so no config.toml of the
// checkout is read and the database and blobs land in <cwd>/data. Prints one JSON line on stdout,
// {"url": ..., "dicomPort": ..., "pid": ...}, once listening (HTTP and DIMSE). Stops on SIGTERM/SIGINT, when its stdin closes (the
// parent is gone), or after --max-seconds, whichever comes first.
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.js';
import { startServer } from '../src/main.js';

function maxSeconds(argv: readonly string[]): number {
  const i = argv.indexOf('--max-seconds');
  const value = i >= 0 ? Number(argv[i + 1]) : 3600;
  if (!Number.isFinite(value) || value <= 0) throw new Error('--max-seconds needs a positive number');
  return value;
}

async function main(): Promise<void> {
  const lifetime = maxSeconds(process.argv.slice(2));
  const cwd = process.cwd();
  const config = loadConfig({ env: process.env, cwd, packageRoot: cwd });
  // Logs go to stderr: stdout carries only the one line the parent reads.
  const logger = pino({ level: 'warn' }, pino.destination({ fd: 2, sync: true }));
  const server = await startServer(config, { logger });

  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    const hard = setTimeout(() => process.exit(code === 0 ? 1 : code), 10_000);
    hard.unref();
    // process.exit (not a natural end) so that --cpu-prof writes its profile deterministically
    void server.close().finally(() => process.exit(code));
  };
  process.once('SIGTERM', () => stop(0));
  process.once('SIGINT', () => stop(0));
  process.stdin.on('end', () => stop(0));
  process.stdin.on('close', () => stop(0));
  process.stdin.resume();
  const lifetimeTimer = setTimeout(() => {
    logger.error({ seconds: lifetime }, 'bench server: lifetime exceeded, stopping');
    stop(3);
  }, lifetime * 1000);
  lifetimeTimer.unref();

  process.stdout.write(`${JSON.stringify({ url: server.httpUrl, dicomPort: server.dicomPort, pid: process.pid })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench server failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
