// Outgoing P-DATA-TF fragmentation (src/dimse/message/fragment.ts): within the peer's Maximum
// Length Received, and never larger than 1 MiB of PDV data whatever the peer announces.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fragmentPdus, maxFragmentLength, sendDataSetPdus, UNLIMITED_FRAGMENT_LENGTH } from '../../../src/dimse/message/fragment.js';

describe('fragmentation', () => {
  it('cuts PDV data at the peer maximum minus the PDV header, at 1 MiB when it announces none or more', () => {
    assert.equal(maxFragmentLength(16384), 16378);
    assert.equal(maxFragmentLength(0), UNLIMITED_FRAGMENT_LENGTH);
    assert.equal(maxFragmentLength(0x7fffffff), UNLIMITED_FRAGMENT_LENGTH);
    assert.equal(maxFragmentLength(0xffffffff), UNLIMITED_FRAGMENT_LENGTH);
    assert.equal(UNLIMITED_FRAGMENT_LENGTH, 1024 * 1024);
  });

  it('sends a data set to a peer announcing a 4 GiB maximum in PDUs of at most 1 MiB of data, without allocating more', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 6, 7);
    const sizes: number[] = [];
    async function* source(): AsyncGenerator<Uint8Array> {
      yield data.subarray(0, 1000);
      yield data.subarray(1000);
    }
    const sent = await sendDataSetPdus(1, source(), 0xfffffffb, async (pdu) => {
      assert.ok(pdu.buffer.byteLength <= 12 + UNLIMITED_FRAGMENT_LENGTH + 8192, `a ${pdu.buffer.byteLength}-byte buffer`);
      sizes.push(pdu.readUInt32BE(6) - 2);
    });
    assert.equal(sent, data.length);
    assert.deepEqual(sizes, [1024 * 1024, 1024 * 1024, 1024 * 1024, 6]);
    assert.equal([...fragmentPdus(1, true, data, 0x7fffffff)].length, 4);
  });

  it('ends a data set of odd length with one 00H pad byte (PS3.5 A.5, a deflated data set), an even one as it is', async () => {
    const sendAll = async (data: Buffer, max: number): Promise<{ sent: number; bytes: Buffer; last: number[] }> => {
      const parts: Buffer[] = [];
      const last: number[] = [];
      const sent = await sendDataSetPdus(3, data, max, async (pdu) => {
        parts.push(pdu.subarray(12));
        last.push(pdu[11] as number);
      });
      return { sent, bytes: Buffer.concat(parts), last };
    };
    const odd = Buffer.alloc(2033, 9);
    const padded = await sendAll(odd, 16384);
    assert.equal(padded.sent, 2033, 'the pad is not counted as a data set byte');
    assert.ok(padded.bytes.equals(Buffer.concat([odd, Buffer.from([0])])));
    assert.deepEqual(padded.last, [2]);
    // The pad completes a last PDU one byte short of the maximum; nothing more is sent.
    const full = await sendAll(Buffer.alloc(16378 * 2 - 1, 9), 16384);
    assert.equal(full.sent, 16378 * 2 - 1);
    assert.deepEqual(full.last, [0, 2]);
    const even = Buffer.alloc(2034, 9);
    const same = await sendAll(even, 16384);
    assert.equal(same.sent, 2034);
    assert.ok(same.bytes.equals(even));
  });
});
