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
    const data = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
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
    assert.deepEqual(sizes, [1024 * 1024, 1024 * 1024, 1024 * 1024, 5]);
    assert.equal([...fragmentPdus(1, true, data, 0x7fffffff)].length, 4);
  });
});
