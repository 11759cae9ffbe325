import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidUid, normalizeUid, validateUid } from '../../src/dicom/uid.js';

describe('normalizeUid', () => {
  it('strips trailing NUL and space padding', () => {
    assert.equal(normalizeUid('1.2.3\0'), '1.2.3');
    assert.equal(normalizeUid('1.2.3 '), '1.2.3');
    assert.equal(normalizeUid('1.2.3 \0\0'), '1.2.3');
    assert.equal(normalizeUid('1.2.3'), '1.2.3');
  });
});

describe('validateUid', () => {
  it('accepts a plain UID', () => {
    assert.deepEqual(validateUid('1.2.840.10008.1.2.1'), { ok: true, uid: '1.2.840.10008.1.2.1', leadingZero: false });
  });
  it('accepts a padded UID and returns it without padding', () => {
    assert.deepEqual(validateUid('1.2.3\0'), { ok: true, uid: '1.2.3', leadingZero: false });
  });
  it('accepts a component that is a single zero', () => {
    assert.deepEqual(validateUid('1.0.3'), { ok: true, uid: '1.0.3', leadingZero: false });
    assert.deepEqual(validateUid('0'), { ok: true, uid: '0', leadingZero: false });
  });
  it('accepts a leading-zero component and flags it', () => {
    assert.deepEqual(validateUid('1.02.3'), { ok: true, uid: '1.02.3', leadingZero: true });
    assert.deepEqual(validateUid('01.2'), { ok: true, uid: '01.2', leadingZero: true });
    assert.deepEqual(validateUid('1.2.00'), { ok: true, uid: '1.2.00', leadingZero: true });
  });
  it('accepts 64 characters and rejects 65', () => {
    const u64 = '1.' + '2'.repeat(62);
    assert.equal(u64.length, 64);
    assert.equal(validateUid(u64).ok, true);
    assert.deepEqual(validateUid(u64 + '3'), { ok: false, reason: 'too_long' });
    // padding does not count towards the length
    assert.equal(validateUid(u64 + '\0').ok, true);
  });
  it('rejects an empty UID', () => {
    assert.deepEqual(validateUid(''), { ok: false, reason: 'empty' });
    assert.deepEqual(validateUid('\0'), { ok: false, reason: 'empty' });
  });
  it('rejects a UID with an empty component', () => {
    for (const u of ['.1.2', '1.2.', '1..2', '.']) assert.deepEqual(validateUid(u), { ok: false, reason: 'empty_component' }, u);
  });
  it('rejects non-digits', () => {
    for (const u of ['1.2.a', '1.2 .3', '1,2', '1.2.3\0x', ' 1.2', '1.-2', '١.٢']) {
      assert.deepEqual(validateUid(u), { ok: false, reason: 'invalid_character' }, u);
    }
    assert.equal(isValidUid('1.2.a'), false);
  });
});
