// Negotiation of requests that are invalid or hostile (PS3.8 9.3.2, PS3.7 D.3.3.4): presentation
// context IDs, abstract syntaxes that are not UIDs, role selections that leave nobody a role, and
// the bound on what our A-ASSOCIATE-AC can hold whatever the request proposed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_PERMITTED, type Permissions } from '../../../src/dimse/acse/ae-filter.js';
import { ALL_SERVICES, negotiate } from '../../../src/dimse/acse/negotiate.js';
import type { ServiceKind } from '../../../src/dimse/acse/sop-classes.js';
import { encodePdu } from '../../../src/dimse/pdu/codec.js';
import { AbortReason, PduError, type AssociateAc, type AssociateRq, type RoleSelection } from '../../../src/dimse/pdu/types.js';
import { CT, EXPLICIT, FIND, IMPLICIT, policy, rq as baseRq } from './fixtures.js';

const VERIFICATION = '1.2.840.10008.1.1';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const MOVE = '1.2.840.10008.5.1.4.1.2.2.2';
const GET = '1.2.840.10008.5.1.4.1.2.2.3';

const rq = (contexts: [string, string[]][], ui: Partial<AssociateRq['userInformation']> = {}): AssociateRq => baseRq(contexts, {}, ui);
const role = (sopClassUid: string, scuRole: boolean, scpRole: boolean): RoleSelection => ({ sopClassUid, scuRole, scpRole });
const resultsOf = (ac: AssociateAc): number[] => ac.presentationContexts.map((c) => c.result);

/** The length field of the user information item of an encoded A-ASSOCIATE-AC. */
function userInformationLength(pdu: Buffer): number {
  let o = 6 + 68;
  while (o < pdu.length) {
    const type = pdu.readUInt8(o);
    const length = pdu.readUInt16BE(o + 2);
    if (type === 0x50) return length;
    o += 4 + length;
  }
  throw new Error('no user information item');
}

describe('presentation context IDs (PS3.8 9.3.2.2)', () => {
  const invalid = (e: unknown): boolean => e instanceof PduError && e.reason === AbortReason.INVALID_PDU_PARAMETER_VALUE;

  it('never answers duplicate IDs: the request is an invalid PDU', () => {
    const r = rq([[VERIFICATION, [IMPLICIT]], [CT, [IMPLICIT]]]);
    r.presentationContexts[1]!.id = 1;
    assert.throws(() => negotiate(r, policy, ALL_PERMITTED), invalid);
  });

  it('never answers even IDs', () => {
    const r = rq([[VERIFICATION, [IMPLICIT]]]);
    r.presentationContexts[0]!.id = 2;
    assert.throws(() => negotiate(r, policy, ALL_PERMITTED), invalid);
  });

  it('never answers a request without presentation context', () => {
    assert.throws(() => negotiate(rq([]), policy, ALL_PERMITTED), invalid);
  });
});

describe('abstract syntaxes that are not UIDs (PS3.8 9.3.2.2.1, PS3.5 9.1)', () => {
  const huge = '1.' + '2'.repeat(65_498);
  const garbage = ['not a uid at all!', '9'.repeat(300), huge, '1.2.840.10008.5.1.4.1.1.' + '1'.repeat(41), '1..2', '1.2.'];

  it('refuses them with result 3 (abstract syntax not supported), even as unknown storage', () => {
    const n = negotiate(rq([[VERIFICATION, [IMPLICIT]], ...garbage.map((a): [string, string[]] => [a, [IMPLICIT]])]), policy, ALL_PERMITTED);
    assert.deepEqual(resultsOf(n.ac), [0, ...garbage.map(() => 3)]);
    assert.deepEqual([...n.contexts.keys()], [1]);
  });

  it('still accepts a 64-character UID as unknown storage', () => {
    const uid64 = '1.2.840.10008.5.1.4.1.1.' + '1'.repeat(40);
    assert.equal(uid64.length, 64);
    assert.deepEqual(resultsOf(negotiate(rq([[uid64, [IMPLICIT]]]), policy, ALL_PERMITTED).ac), [0]);
  });

  it('answers no role selection or extended negotiation item for them, so the answer always encodes', () => {
    const r = rq([[VERIFICATION, [IMPLICIT]], [huge, [IMPLICIT]]], { roleSelections: [role(huge, true, true)] });
    // the request itself fits: its user information item holds the 65,500-byte role item
    assert.ok(encodePdu(r).length > 65_500);
    r.userInformation.extendedNegotiations = [{ sopClassUid: huge, info: Buffer.from([1]) }];
    const n = negotiate(r, policy, ALL_PERMITTED);
    assert.deepEqual(resultsOf(n.ac), [0, 3]);
    assert.deepEqual(n.ac.userInformation.roleSelections, []);
    assert.deepEqual(n.ac.userInformation.extendedNegotiations, []);
    assert.doesNotThrow(() => encodePdu(n.ac));
  });
});

describe('SCP/SCU role selection (PS3.7 D.3.3.4)', () => {
  it('refuses (result 1) a Q/R FIND context whose requestor proposed to be SCP only: nobody would have a role', () => {
    const n = negotiate(rq([[FIND, [IMPLICIT]]], { roleSelections: [role(FIND, false, true), role('1.2.3.4.5', true, true)] }), policy, ALL_PERMITTED);
    assert.deepEqual(resultsOf(n.ac), [1]);
    assert.equal(n.contexts.size, 0);
    assert.deepEqual(n.ac.userInformation.roleSelections, []);
  });

  it('refuses Verification, MOVE and GET contexts proposed SCP only, or with no role at all', () => {
    for (const uid of [VERIFICATION, MOVE, GET]) {
      for (const [scu, scp] of [[false, true], [false, false]] as const) {
        const n = negotiate(rq([[uid, [IMPLICIT]]], { roleSelections: [role(uid, scu, scp)] }), policy, ALL_PERMITTED);
        assert.deepEqual(resultsOf(n.ac), [1], `${uid} ${scu}/${scp}`);
        assert.deepEqual(n.ac.userInformation.roleSelections, []);
      }
    }
  });

  it('accepts the requestor SCU role of a service we provide and turns its SCP role down (1/0)', () => {
    for (const uid of [VERIFICATION, FIND, MOVE, GET]) {
      const n = negotiate(rq([[uid, [IMPLICIT]]], { roleSelections: [role(uid, true, true)] }), policy, ALL_PERMITTED);
      assert.deepEqual(resultsOf(n.ac), [0], uid);
      assert.deepEqual(n.ac.userInformation.roleSelections, [role(uid, true, false)]);
    }
  });

  it('refuses a storage context whose proposed roles are all turned down instead of accepting it 0/0', () => {
    const scpOnly = rq([[CT, [EXPLICIT]]], { roleSelections: [role(CT, false, true)] });
    // C-GET not offered, or a node that may not retrieve: the SCP role is turned down
    assert.deepEqual(resultsOf(negotiate(scpOnly, policy, ALL_PERMITTED, new Set<ServiceKind>(['verification', 'storage'])).ac), [1]);
    const storeOnly = negotiate(scpOnly, policy, { store: true, find: true, retrieve: false });
    assert.deepEqual(resultsOf(storeOnly.ac), [1]);
    assert.deepEqual(storeOnly.ac.userInformation.roleSelections, []);
    // no role at all
    assert.deepEqual(resultsOf(negotiate(rq([[CT, [EXPLICIT]]], { roleSelections: [role(CT, false, false)] }), policy, ALL_PERMITTED).ac), [1]);
  });

  it('keeps the C-GET storage roles: SCP only 0/1 accepted, the context usable for sub-operations only', () => {
    const n = negotiate(rq([[GET, [EXPLICIT]], [CT, [EXPLICIT]]], { roleSelections: [role(CT, false, true)] }), policy, ALL_PERMITTED);
    assert.deepEqual(resultsOf(n.ac), [0, 0]);
    assert.deepEqual(n.ac.userInformation.roleSelections, [role(CT, false, true)]);
    assert.deepEqual([n.contexts.get(3)?.requestorScu, n.contexts.get(3)?.requestorScp], [false, true]);
  });

  it('answers one item per SOP class with an accepted context, in the order proposed', () => {
    const n = negotiate(rq([[CT, [EXPLICIT]], [MR, [EXPLICIT]], [FIND, ['1.2.840.10008.1.2.4.50']]]), policy, ALL_PERMITTED);
    assert.deepEqual(n.ac.userInformation.roleSelections, []);
    const m = negotiate(
      rq([[CT, [EXPLICIT]], [MR, [EXPLICIT]], [CT, [IMPLICIT]], [FIND, ['1.2.840.10008.1.2.4.50']]], { roleSelections: [role(MR, true, false), role(FIND, true, false), role(CT, true, true), role(CT, false, false)] }),
      policy,
      ALL_PERMITTED,
    );
    assert.deepEqual(resultsOf(m.ac), [0, 0, 0, 4]);
    assert.deepEqual(m.ac.userInformation.roleSelections, [role(MR, true, false), role(CT, true, true)]);
  });
});

describe('the size of our A-ASSOCIATE-AC is bounded (PS3.8 9.3.3)', () => {
  it('the worst case - 128 accepted 64-character classes, each with role and extended negotiation items repeated - fits', () => {
    const classes = Array.from({ length: 128 }, (_, i) => '1.2.840.10008.5.1.4.1.1.' + '2' + String(i + 1).padStart(39, '0'));
    assert.ok(classes.every((c) => c.length === 64));
    const bigInfo = Buffer.alloc(60_000, 1);
    const r = rq(
      classes.map((c): [string, string[]] => [c, [EXPLICIT, IMPLICIT]]),
      {
        asyncOperationsWindow: { maxInvoked: 0, maxPerformed: 0 },
        roleSelections: Array.from({ length: 20 }, () => classes.map((c) => role(c, true, true))).flat(),
        extendedNegotiations: Array.from({ length: 20 }, () => [...classes, FIND, MOVE, GET].map((c) => ({ sopClassUid: c, info: bigInfo }))).flat(),
      },
    );
    const n = negotiate(r, { ...policy, maxPduLength: 0xffffffff }, ALL_PERMITTED);
    assert.equal(n.contexts.size, 128);
    assert.equal(n.ac.userInformation.roleSelections.length, 128);
    const pdu = encodePdu(n.ac);
    // 8 (max length) + 4+64 (implementation UID) + 8 (window) + 128 * (4+2+64+2) (roles) + 4+16 (version)
    assert.ok(userInformationLength(pdu) <= 8 + 68 + 8 + 128 * 72 + 20, `user information ${userInformationLength(pdu)} bytes`);
  });

  it('no random mix of valid, invalid and oversized proposals makes it unencodable or ambiguous', () => {
    // mulberry32: reproducible
    let seed = 0x5eed;
    const rand = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)] as T;
    const pool = [VERIFICATION, CT, MR, FIND, MOVE, GET, '1.2.3.4.5', '1.2.840.10008.5.1.4.1.1.' + '1'.repeat(40), '1.2.840.10008.5.1.4.1.1.' + '1'.repeat(41), 'not a uid', '9'.repeat(300), '1.' + '2'.repeat(65_498), '', '1.2.840.10008.5.1.4.31'];
    const tsPool = [IMPLICIT, EXPLICIT, '1.2.840.10008.1.2.4.50', '1.2.3', 'x'.repeat(1000)];
    const permissionsPool: Permissions[] = [ALL_PERMITTED, { store: false, find: true, retrieve: true }, { store: true, find: false, retrieve: false }, { store: false, find: false, retrieve: false }];
    const servicesPool: ReadonlySet<ServiceKind>[] = [ALL_SERVICES, new Set<ServiceKind>(['verification', 'storage']), new Set<ServiceKind>(['verification', 'storage', 'find', 'move'])];
    for (let iteration = 0; iteration < 300; iteration++) {
      const count = 1 + Math.floor(rand() * 128);
      const ids = Array.from({ length: 128 }, (_, i) => 2 * i + 1).sort(() => rand() - 0.5).slice(0, count);
      const r = rq([]);
      r.presentationContexts = ids.map((id) => ({ id, abstractSyntax: pick(pool), transferSyntaxes: Array.from({ length: Math.floor(rand() * 3) }, () => pick(tsPool)) }));
      r.userInformation.roleSelections = Array.from({ length: Math.floor(rand() * 200) }, () => role(pick(pool), rand() < 0.5, rand() < 0.5));
      r.userInformation.extendedNegotiations = Array.from({ length: Math.floor(rand() * 200) }, () => ({ sopClassUid: pick(pool), info: Buffer.alloc(Math.floor(rand() * 3000)) }));
      if (rand() < 0.5) r.userInformation.asyncOperationsWindow = { maxInvoked: 3, maxPerformed: 3 };
      const n = negotiate(r, policy, pick(permissionsPool), pick(servicesPool));
      const what = `iteration ${iteration}`;
      assert.doesNotThrow(() => encodePdu(n.ac), what);
      // one answer per proposed context, same IDs, same order
      assert.deepEqual(n.ac.presentationContexts.map((c) => c.id), ids, what);
      const acceptedClasses = new Set([...n.contexts.values()].map((c) => c.abstractSyntax));
      for (const c of n.contexts.values()) assert.ok(c.abstractSyntax.length <= 64, what);
      for (const a of n.ac.userInformation.roleSelections) {
        assert.ok(acceptedClasses.has(a.sopClassUid), what);
        assert.ok(a.scuRole || a.scpRole, `${what}: an accepted class answered 0/0`);
        const proposed = r.userInformation.roleSelections.find((p) => p.sopClassUid === a.sopClassUid);
        assert.ok(proposed && (!a.scuRole || proposed.scuRole) && (!a.scpRole || proposed.scpRole), `${what}: a role answered 1 that was not proposed`);
      }
      for (const e of n.ac.userInformation.extendedNegotiations) assert.ok(acceptedClasses.has(e.sopClassUid), what);
    }
  });
});
