import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodePdu, encodeSinglePdv } from '../../../src/dimse/pdu/codec.js';
import { PduFramer, type FramerEvent } from '../../../src/dimse/ul/framer.js';

const limits = { maxPDataLength: 1000, maxOtherLength: 1024 * 1024 };

function frame(chunks: Buffer[], l = limits): FramerEvent[] {
  const f = new PduFramer(l);
  const out: FramerEvent[] = [];
  for (const c of chunks) f.push(c, (e) => out.push(e));
  return out;
}

function header(type: number, length: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt8(type, 0);
  b.writeUInt32BE(length, 2);
  return b;
}

describe('PDU framing', () => {
  const stream = Buffer.concat([
    encodePdu({ type: 'A-RELEASE-RQ' }),
    encodeSinglePdv(1, true, true, Buffer.from('command!')),
    encodePdu({ type: 'P-DATA-TF', pdvs: [{ contextId: 3, command: false, last: false, data: Buffer.alloc(300, 1) }, { contextId: 3, command: false, last: true, data: Buffer.alloc(10, 2) }] }),
    encodePdu({ type: 'A-ABORT', source: 0, reason: 0 }),
  ]);

  it('gives the same PDUs and PDV bytes whether the bytes come at once or one by one', () => {
    const whole = frame([stream]);
    const single = frame([...stream].map((b) => Buffer.from([b])));
    const summarize = (events: FramerEvent[]): unknown[] => {
      const out: unknown[] = [];
      let data: Buffer[] = [];
      for (const e of events) {
        if (e.kind === 'pdv') {
          data.push(e.data);
          if (e.end) {
            out.push({ pdv: e.contextId, command: e.command, last: e.last, data: Buffer.concat(data).toString('hex') });
            data = [];
          }
        } else out.push(e.kind === 'pdu' ? e.pdu.type : e);
      }
      return out;
    };
    assert.deepEqual(summarize(single), summarize(whole));
    assert.deepEqual(summarize(whole).map((x) => (typeof x === 'object' && x !== null && 'data' in x ? { ...x, data: (x.data as string).length / 2 } : x)), [
      'A-RELEASE-RQ',
      { kind: 'p-data', length: 14 },
      { pdv: 1, command: true, last: true, data: 8 },
      { kind: 'p-data', length: 322 },
      { pdv: 3, command: false, last: false, data: 300 },
      { pdv: 3, command: false, last: true, data: 10 },
      'A-ABORT',
    ]);
  });

  it('passes PDV data on as slices without waiting for the whole PDU', () => {
    const pdu = encodeSinglePdv(1, false, true, Buffer.alloc(900, 7));
    const events = frame([pdu.subarray(0, 100)]);
    const data = events.filter((e) => e.kind === 'pdv');
    assert.equal(data.length, 1);
    assert.equal(data[0]?.kind === 'pdv' && data[0].data.length, 100 - 12);
  });

  it('refuses a P-DATA-TF over the maximum length from its header alone (reason 6)', () => {
    assert.deepEqual(frame([header(4, 1024 * 1024 * 1024)]).map((e) => e.kind === 'invalid' && e.reason), [6]);
  });

  it('refuses another PDU over 1 MiB (reason 6) and an unknown PDU type (reason 1)', () => {
    assert.deepEqual(frame([header(1, 1024 * 1024 + 1)]).map((e) => e.kind === 'invalid' && e.reason), [6]);
    assert.deepEqual(frame([Buffer.from('GET / HTTP/1.1\r\n')]).map((e) => e.kind === 'invalid' && e.reason), [1]);
  });

  it('refuses a PDV item longer than its PDU and emits nothing afterwards', () => {
    const bad = Buffer.concat([header(4, 10), Buffer.from('000000ff0103aabb', 'hex'), encodePdu({ type: 'A-RELEASE-RQ' })]);
    const events = frame([bad]);
    assert.deepEqual(events.map((e) => e.kind), ['p-data', 'invalid']);
  });
});
