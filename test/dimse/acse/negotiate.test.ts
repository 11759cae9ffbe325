import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_PERMITTED, admit } from '../../../src/dimse/acse/ae-filter.js';
import { negotiate, type NegotiationPolicy } from '../../../src/dimse/acse/negotiate.js';
import type { AssociateRq } from '../../../src/dimse/pdu/types.js';
import { CT, EXPLICIT, FIND, IMPLICIT, policy, rq } from './fixtures.js';

const BE = '1.2.840.10008.1.2.2';
const JPEG = '1.2.840.10008.1.2.4.50';

const results = (r: AssociateRq, p: NegotiationPolicy = policy) => negotiate(r, p, ALL_PERMITTED).ac.presentationContexts.map((c) => [c.result, c.transferSyntax]);

describe('presentation context negotiation (SPEC §4)', () => {
  it('accepts storage in the SCU order, with any known syntax', () => {
    assert.deepEqual(results(rq([[CT, [BE, EXPLICIT]], [CT, [JPEG]]])), [[0, BE], [0, JPEG]]);
  });

  it('answers 4 when no proposed syntax is known', () => {
    assert.deepEqual(results(rq([[CT, ['1.2.3.4.5']]])), [[4, '']]);
  });

  it('limits Verification and Q/R to the little-endian native syntaxes', () => {
    assert.deepEqual(results(rq([['1.2.840.10008.1.1', [BE, EXPLICIT]], [FIND, [JPEG]]])), [[0, EXPLICIT], [4, '']]);
  });

  it('honours preferred_transfer_syntaxes before the SCU order', () => {
    assert.deepEqual(results(rq([[CT, [IMPLICIT, EXPLICIT, BE]]]), { ...policy, preferred: [BE, EXPLICIT] }), [[0, BE]]);
  });

  it('on a storage context where the requestor takes the SCP role (C-GET sub-operations), big endian and deflated give way to little endian', () => {
    const DEFLATED = '1.2.840.10008.1.2.1.99';
    const MR = '1.2.840.10008.5.1.4.1.1.4';
    const US = '1.2.840.10008.5.1.4.1.1.6.1';
    const SC = '1.2.840.10008.5.1.4.1.1.7';
    const r = rq([[CT, [BE, EXPLICIT, IMPLICIT]], [MR, [DEFLATED, IMPLICIT, EXPLICIT]], [US, [JPEG, BE, EXPLICIT]], [SC, [BE, DEFLATED]]]);
    r.userInformation.roleSelections = [CT, MR, US, SC].map((sopClassUid) => ({ sopClassUid, scuRole: true, scpRole: true }));
    // The requestor's order among the rest: little endian as it ordered them; a compressed syntax
    // first stays first (only instances stored in it can go out in it, and only in it); with no
    // little endian offered, big endian stays (instances stored so can still be sent).
    assert.deepEqual(results(r), [[0, EXPLICIT], [0, IMPLICIT], [0, JPEG], [0, BE]]);
    // preferred_transfer_syntaxes orders what is left.
    assert.deepEqual(results(r, { ...policy, preferred: [BE, IMPLICIT] }), [[0, IMPLICIT], [0, IMPLICIT], [0, JPEG], [0, BE]]);
    // Without the SCP role (no C-GET sub-operation goes out on it): the requestor's first syntax.
    const storeOnly = rq([[CT, [BE, EXPLICIT, IMPLICIT]], [MR, [DEFLATED, IMPLICIT, EXPLICIT]]]);
    storeOnly.userInformation.roleSelections = [{ sopClassUid: CT, scuRole: true, scpRole: false }];
    assert.deepEqual(results(storeOnly), [[0, BE], [0, DEFLATED]]);
    // The SCP role proposed but not granted (the node may not retrieve): as a store-only context.
    assert.deepEqual(
      negotiate(r, policy, { store: true, find: true, retrieve: false }).ac.presentationContexts.map((c) => [c.result, c.transferSyntax]),
      [[0, BE], [0, DEFLATED], [0, JPEG], [0, BE]],
    );
  });

  it('uses the allow-list when accept-all is off', () => {
    assert.deepEqual(results(rq([[CT, [JPEG, IMPLICIT]], [CT, [JPEG]]]), { ...policy, acceptAll: false, accepted: [IMPLICIT] }), [[0, IMPLICIT], [4, '']]);
  });

  it('accepts unknown SOP classes as storage only when configured, and never services it does not implement', () => {
    const r = rq([['1.3.12.2.1107.5.9.1', [EXPLICIT]], ['1.2.840.10008.5.1.4.31', [EXPLICIT]]]);
    assert.deepEqual(results(r), [[0, EXPLICIT], [3, '']]);
    assert.deepEqual(results(r, { ...policy, acceptUnknownSopClasses: false }), [[3, ''], [3, '']]);
  });

  it('never takes the query/retrieve classes registered under the storage root, nor Defined Procedure Protocol Q/R, for storage', () => {
    const queryRetrieve = [
      '1.2.840.10008.5.1.4.1.1.200.4', // Protocol Approval FIND
      '1.2.840.10008.5.1.4.1.1.200.5',
      '1.2.840.10008.5.1.4.1.1.200.6',
      '1.2.840.10008.5.1.4.1.1.201.2', // Inventory FIND
      '1.2.840.10008.5.1.4.1.1.201.3',
      '1.2.840.10008.5.1.4.1.1.201.4',
      '1.2.840.10008.5.1.4.1.1.201.5', // Inventory Creation
      '1.2.840.10008.5.1.4.1.1.201.6', // Repository Query
      '1.2.840.10008.5.1.4.20.1', // Defined Procedure Protocol FIND
      '1.2.840.10008.5.1.4.20.2',
      '1.2.840.10008.5.1.4.20.3',
    ];
    const storage = ['1.2.840.10008.5.1.4.1.1.200.1', '1.2.840.10008.5.1.4.1.1.200.3', '1.2.840.10008.5.1.4.1.1.201.1']; // CT DPP, Protocol Approval, Inventory Storage
    const r = rq([...queryRetrieve, ...storage].map((uid): [string, string[]] => [uid, [EXPLICIT]]));
    assert.deepEqual(results(r), [...queryRetrieve.map(() => [3, '']), ...storage.map(() => [0, EXPLICIT])]);
  });

  it('never accepts a transfer syntax it does not know, even one named in the allow-list', () => {
    const unknown = '1.2.3.4.5';
    assert.deepEqual(results(rq([[CT, [unknown, IMPLICIT]], [CT, [unknown]]]), { ...policy, acceptAll: false, accepted: [unknown, IMPLICIT] }), [[0, IMPLICIT], [4, '']]);
  });

  it('answers the asynchronous operations window 1/1, role selection for storage and Q/R extended negotiation with zeros', () => {
    const r = rq([[CT, [EXPLICIT]], [FIND, [EXPLICIT]]]);
    r.userInformation.asyncOperationsWindow = { maxInvoked: 5, maxPerformed: 5 };
    r.userInformation.roleSelections = [{ sopClassUid: CT, scuRole: false, scpRole: true }];
    r.userInformation.extendedNegotiations = [{ sopClassUid: FIND, info: Buffer.from([1, 1, 1]) }, { sopClassUid: CT, info: Buffer.from([2, 0, 3, 0, 1, 0]) }];
    const ui = negotiate(r, policy, ALL_PERMITTED).ac.userInformation;
    assert.deepEqual(ui.asyncOperationsWindow, { maxInvoked: 1, maxPerformed: 1 });
    assert.deepEqual(ui.roleSelections, [{ sopClassUid: CT, scuRole: false, scpRole: true }]);
    assert.deepEqual(ui.extendedNegotiations, [{ sopClassUid: FIND, info: Buffer.from([0, 0, 0]) }]);
    assert.equal(ui.maxLength, 65536);
  });

  it('refuses storage contexts (user rejection) to a node without allow_store', () => {
    assert.deepEqual(negotiate(rq([[CT, [EXPLICIT]]]), policy, { store: false, find: true, retrieve: true }).ac.presentationContexts.map((c) => c.result), [1]);
  });
});

describe('association admission', () => {
  const base = { aeTitle: 'PACSNODE', whitelist: false, maxAssociations: 2, activeAssociations: 0 };
  it('rejects a called AE that is not ours 1/1/7', async () => {
    assert.deepEqual(await admit(rq([], { calledAe: 'OTHER' }), base), { ok: false, reject: { result: 1, source: 1, reason: 7 }, detail: 'called AE title not recognized' });
  });
  it('rejects over max_associations 2/3/2', async () => {
    const r = await admit(rq([]), { ...base, activeAssociations: 2 });
    assert.deepEqual(r.ok ? undefined : r.reject, { result: 2, source: 3, reason: 2 });
  });
  it('rejects an unregistered calling AE under the whitelist 1/1/3 and applies a registered node flags', async () => {
    const findNode = async (ae: string) => (ae === 'KNOWN' ? { allowStore: false, allowFind: true, allowRetrieve: true } : undefined);
    const r = await admit(rq([]), { ...base, whitelist: true, findNode });
    assert.deepEqual(r.ok ? undefined : r.reject, { result: 1, source: 1, reason: 3 });
    const k = await admit(rq([], { callingAe: 'KNOWN' }), { ...base, whitelist: true, findNode });
    assert.deepEqual(k.ok ? k.permissions : undefined, { store: false, find: true, retrieve: true });
  });
});

describe('services offered', () => {
  it('refuses Q/R FIND contexts (result 3) while no find SCP is wired', () => {
    const r = rq([[FIND, [EXPLICIT]]]);
    assert.deepEqual(negotiate(r, policy, ALL_PERMITTED, new Set(['verification', 'storage'])).ac.presentationContexts.map((c) => c.result), [3]);
  });
});
