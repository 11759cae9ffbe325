// Shutdown while a `?wait=true` job request is open: the server stops the job (the HTTP server
// waits for requests in flight, and this one waits for its job), instead of waiting for the job's
// own timeouts or being killed.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { simpleInstance } from '../helpers/corpus.js';
import { request, stow } from '../helpers/http.js';
import { startTestServer } from '../helpers/server.js';

describe('shutdown with a ?wait=true job request open', () => {
  it('ends the job and closes within a few seconds, though the peer never answers', { timeout: 60_000 }, async () => {
    // A "node" that accepts TCP connections and never says a word (no A-ASSOCIATE-AC).
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const s = await startTestServer({ PACS_SERVER__DIMSE_TIMEOUT_SECS: '40' }, { profile: 'standalone' });
    let closed = false;
    try {
      const inst = simpleInstance({});
      assert.equal((await stow(`${s.url}/wado/studies`, [inst.bytes])).status, 200);
      const reg = await request(`${s.url}/api/nodes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ae_title: 'HUNG', host: '127.0.0.1', port }) });
      assert.ok(reg.status === 200 || reg.status === 201, reg.body.toString());
      const waiting = request(`${s.url}/api/nodes/HUNG/store?wait=true`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ level: 'STUDY', study_uid: inst.studyUid }),
        timeoutMs: 50_000,
      }).catch((err: unknown) => err);
      while (sockets.length === 0) await new Promise((r) => setTimeout(r, 20));
      const started = Date.now();
      await s.close();
      closed = true;
      const took = Date.now() - started;
      assert.ok(took < 10_000, `close took ${took} ms (the DIMSE timeout is 40 s)`);
      const answer = await waiting;
      if (!(answer instanceof Error)) {
        assert.equal((answer as { status: number }).status, 200);
        const job = JSON.parse((answer as { body: Buffer }).body.toString()) as { state: string; error: string | null };
        assert.equal(job.state, 'failed');
        assert.match(job.error ?? '', /interrupted/);
      }
    } finally {
      if (!closed) await s.close();
      for (const sk of sockets) sk.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});
