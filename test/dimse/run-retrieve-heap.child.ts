// Run as a child process by scu-retrieve-peer-data.test.ts (with --expose-gc, outside node:test,
// whose async context tracking keeps a little per promise): how much heap runRetrieve keeps while
// a node sends pending responses, one progress report each. Prints {"growth": bytes}.
import type { JobRunContext } from '../../src/archive/jobs.js';
import { runRetrieve, type NodeRetrieveCounts } from '../../src/http/api/node-retrieve.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const reports = Number(process.argv[2] ?? 300_000);
const run = {
  jobId: 'j',
  request: {},
  signal: new AbortController().signal,
  // as the job service answers between writes: coalesced, resolved at once
  progress: async () => undefined,
} as unknown as JobRunContext;
let growth = 0;
await runRetrieve(run, async (onProgress: (p: NodeRetrieveCounts) => void) => {
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < reports; i++) onProgress({ remaining: reports - i, completed: i, failed: 0, warning: 0 });
  // the reports settle, as they would between pending responses
  await new Promise((r) => setImmediate(r));
  gc();
  growth = process.memoryUsage().heapUsed - before;
  return { completed: reports, failed: 0, warning: 0, failedUids: [], status: 0, cancelled: false };
});
process.stdout.write(`${JSON.stringify({ growth })}\n`);
