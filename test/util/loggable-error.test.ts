import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loggableError } from '../../src/util/loggable-error.js';

describe('loggableError', () => {
  it('masks what a database message quotes (a query value may be patient data)', () => {
    assert.equal(loggableError(new Error('value "100000000000000000000" is out of range for type integer')), 'value "…" is out of range for type integer');
    assert.equal(loggableError(new Error('invalid input syntax for type date: "ZZPHI 19011231"')), 'invalid input syntax for type date: "…"');
    assert.equal(loggableError(new Error('a "quoted \\" escape" and an unterminated "ZZPHI')), 'a "…" and an unterminated "…"');
    assert.equal(loggableError('SQLITE_BUSY: database is locked'), 'SQLITE_BUSY: database is locked');
  });

  it('bounds the length', () => {
    assert.equal(loggableError(new Error('x'.repeat(2000))).length, 501);
  });
});
