// The C-FIND SCP's reading of an identifier into a query (plan): what is matched, what scopes the
// query, and what is flagged FF01 (a key with a value that is not matched).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STUDY_ROOT_FIND } from '../../src/dimse/acse/sop-classes.js';
import { plan } from '../../src/dimse/scp/find.js';

describe('C-FIND identifier plan', () => {
  it('a key sent with a binary VR (UN) and a value is flagged FF01, not taken as universal matching', () => {
    const p = plan(
      {
        '00080052': { vr: 'CS', Value: ['STUDY'] },
        '00100010': { vr: 'UN', InlineBinary: Buffer.from('DOE*').toString('base64') },
        '00100020': { vr: 'LO', Value: ['PID1'] },
      },
      STUDY_ROOT_FIND,
    );
    assert.equal(p.unsupportedMatching, true);
    assert.deepEqual(p.params, [['00100020', 'PID1']]);
  });

  it('a key sent as UN without a value is a return key only (no FF01)', () => {
    const p = plan({ '00080052': { vr: 'CS', Value: ['STUDY'] }, '00100010': { vr: 'UN' } }, STUDY_ROOT_FIND);
    assert.equal(p.unsupportedMatching, false);
    assert.deepEqual(p.params, []);
  });
});
