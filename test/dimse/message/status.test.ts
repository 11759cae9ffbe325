import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { storeOutcomeOf } from '../../../src/dimse/message/status.js';

describe('C-STORE-RSP status categories (PS3.7 C, PS3.4 B.2.3)', () => {
  it('counts 0001, 0107, 0116 and Bxxx as warnings, 0000 as success, everything else as failure', () => {
    assert.equal(storeOutcomeOf(0x0000), 'success');
    for (const s of [0x0001, 0x0107, 0x0116, 0xb000, 0xb006, 0xb007]) assert.equal(storeOutcomeOf(s), 'warning', s.toString(16));
    for (const s of [0x0110, 0x0111, 0x0122, 0x0124, 0x0211, 0xa700, 0xa900, 0xc000, 0xc122, 0xfe00, 0xff00]) assert.equal(storeOutcomeOf(s), 'failure', s.toString(16));
  });
});
