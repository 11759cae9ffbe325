import assert from 'node:assert/strict';
import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pumpInto } from '../../src/util/streams.js';

/** A Writable collecting what it is given; `failAt` makes the n-th write fail. */
function collector(options: { failAt?: number; finalDelayMs?: number } = {}): Writable & { chunks: Buffer[]; finished: boolean } {
  const chunks: Buffer[] = [];
  let writes = 0;
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes++;
      if (options.failAt === writes) {
        cb(new Error('disk full'));
        return;
      }
      chunks.push(chunk);
      cb();
    },
    final(cb) {
      setTimeout(() => {
        state.finished = true;
        cb();
      }, options.finalDelayMs ?? 0);
    },
  });
  const state = Object.assign(w, { chunks, finished: false });
  return state;
}

const listeners = (s: Readable | Writable): number =>
  (['error', 'close', 'finish', 'end', 'data', 'drain', 'unpipe'] as const).reduce((n, e) => n + s.listenerCount(e), 0);

describe('pumpInto', () => {
  it('copies every chunk and resolves only once the destination has finished, leaving no listener behind', async () => {
    const body = Readable.from([Buffer.from('ab'), Buffer.from('cd'), Buffer.from('ef')]);
    const out = collector({ finalDelayMs: 30 });
    const before = listeners(out);
    await pumpInto(body, out);
    assert.equal(out.finished, true, 'resolved before final() completed');
    assert.equal(Buffer.concat(out.chunks).toString(), 'abcdef');
    assert.equal(listeners(out), before);
  });

  it('rejects with the body error and destroys the destination', async () => {
    const body = new PassThrough();
    const out = collector();
    const pending = pumpInto(body, out);
    body.write(Buffer.from('x'));
    body.destroy(new Error('upload broke'));
    await assert.rejects(pending, /upload broke/);
    assert.equal(out.destroyed, true);
  });

  it('rejects with the destination error and destroys the body', async () => {
    const body = new PassThrough();
    const out = collector({ failAt: 2 });
    const pending = pumpInto(body, out);
    body.write(Buffer.from('1'));
    body.write(Buffer.from('2'));
    await assert.rejects(pending, /disk full/);
    assert.equal(body.destroyed, true);
  });

  it('rejects with an AbortError carrying the reason when the signal aborts, and at once when it already has', async () => {
    const body = new PassThrough();
    const out = collector();
    const ac = new AbortController();
    const pending = pumpInto(body, out, ac.signal);
    body.write(Buffer.from('x'));
    ac.abort(new Error('client went away'));
    await assert.rejects(pending, (e: unknown) => e instanceof Error && e.name === 'AbortError' && (e.cause as Error).message === 'client went away');
    assert.equal(body.destroyed && out.destroyed, true);

    const pre = new AbortController();
    pre.abort();
    await assert.rejects(pumpInto(new PassThrough(), collector(), pre.signal), { name: 'AbortError' });
  });

  it('rejects when the body closes before its end, and when it was destroyed before the call', async () => {
    const body = new PassThrough();
    const pending = pumpInto(body, collector());
    body.write(Buffer.from('x'));
    body.destroy();
    await assert.rejects(pending, /closed before its end/);

    const gone = new PassThrough();
    gone.on('error', () => {});
    gone.destroy(new Error('failed while the file was opened'));
    await new Promise((r) => setImmediate(r));
    await assert.rejects(pumpInto(gone, collector()), /failed while the file was opened/);
  });

  it('rejects when the destination is destroyed before it finished', async () => {
    const body = new PassThrough();
    const out = collector();
    const pending = pumpInto(body, out);
    body.write(Buffer.from('x'));
    out.destroy();
    await assert.rejects(pending, /destination closed before it finished/);
  });
});
