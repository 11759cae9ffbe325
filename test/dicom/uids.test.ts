import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateUid } from '../../src/dicom/uid.js';
import { generateUid, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../src/dicom/uids.js';

describe('uids', () => {
  it('has a fixed, valid 2.25 implementation class UID', () => {
    assert.match(IMPLEMENTATION_CLASS_UID, /^2\.25\.[1-9]\d*$/);
    assert.deepEqual(validateUid(IMPLEMENTATION_CLASS_UID), { ok: true, uid: IMPLEMENTATION_CLASS_UID, leadingZero: false });
    assert.ok(BigInt(IMPLEMENTATION_CLASS_UID.slice(5)) < 2n ** 128n, 'at most 128 bits');
  });
  it('has a version name of at most 16 characters', () => {
    assert.ok(IMPLEMENTATION_VERSION_NAME.length <= 16, 'at most 16 characters');
    assert.match(IMPLEMENTATION_VERSION_NAME, /^PACSNODE_\d+\.\d+$/);
  });
  it('generates valid 2.25 UIDs from 128 random bits', () => {
    for (let i = 0; i < 1000; i++) {
      const uid = generateUid();
      assert.match(uid, /^2\.25\.(0|[1-9]\d*)$/);
      assert.ok(uid.length <= 64, 'at most 64 characters');
      const v = validateUid(uid);
      assert.ok(v.ok && !v.leadingZero, uid);
      assert.ok(BigInt(uid.slice(5)) < 2n ** 128n, 'at most 128 bits');
    }
  });
  it('generates unique UIDs', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10000; i++) seen.add(generateUid());
    assert.equal(seen.size, 10000);
  });
});
