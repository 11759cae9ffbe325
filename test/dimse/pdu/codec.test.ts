// Byte fixtures of every PDU and item of PS3.8 9.3 (and the user information sub-items of PS3.7
// D.3.3), each annotated field by field; every one is decoded and re-encoded to the same bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePdu, encodePdu, encodeSinglePdv, presentationContextIdProblem } from '../../../src/dimse/pdu/codec.js';
import { AbortReason, PduError, type AssociateAc, type AssociateRq, type Pdu } from '../../../src/dimse/pdu/types.js';

/** Hex fields (spaces ignored) and quoted ASCII text, concatenated. */
function bytes(...parts: (string | { ascii: string })[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p.replace(/\s+/g, ''), 'hex') : Buffer.from(p.ascii, 'latin1'))));
}
const t = (ascii: string): { ascii: string } => ({ ascii });
const u16 = (n: number): string => n.toString(16).padStart(4, '0');
const u32 = (n: number): string => n.toString(16).padStart(8, '0');

const VERIFICATION = '1.2.840.10008.1.1'; // 17
const IMPLICIT = '1.2.840.10008.1.2'; // 17
const EXPLICIT = '1.2.840.10008.1.2.1'; // 19
const CT = '1.2.840.10008.5.1.4.1.1.2'; // 25
const FIND = '1.2.840.10008.5.1.4.1.2.2.1'; // 27
const APP = '1.2.840.10008.3.1.1.1'; // 21

const rqVariable = bytes(
  '10 00', u16(21), t(APP), //                         application context item
  '20 00', u16(4 + 4 + 17 + 4 + 17), '01 000000', //  presentation context RQ, ID 1
  '30 00', u16(17), t(VERIFICATION), //                  abstract syntax
  '40 00', u16(17), t(IMPLICIT), //                      transfer syntax
  '20 00', u16(4 + 4 + 25 + 4 + 19 + 4 + 17), '03 000000', // presentation context RQ, ID 3
  '30 00', u16(25), t(CT),
  '40 00', u16(19), t(EXPLICIT),
  '40 00', u16(17), t(IMPLICIT),
  '50 00', u16(8 + 4 + 5 + 8 + 4 + 2 + 25 + 2 + 4 + 7 + 4 + 2 + 27 + 4), // user information item
  '51 00 0004', u32(16384), //                           maximum length received
  '52 00', u16(5), t('1.2.3'), //                        implementation class UID
  '53 00 0004 0005 0005', //                             asynchronous operations window: 5 invoked, 5 performed
  '54 00', u16(2 + 25 + 2), u16(25), t(CT), '00 01', //   role selection: SCU 0, SCP 1
  '55 00', u16(7), t('TEST_01'), //                      implementation version name
  '56 00', u16(2 + 27 + 4), u16(27), t(FIND), '01 00 01 00', // extended negotiation: relational, fuzzy
);
const RQ_BYTES = bytes(
  '01 00', u32(68 + rqVariable.length), //               A-ASSOCIATE-RQ, length
  '0001 0000', //                                        protocol version 1, reserved
  '', t('PACSNODE        '), t('STORESCU        '), //   called AE, calling AE (16 bytes, space padded)
  '00'.repeat(32), //                                    reserved
  rqVariable.toString('hex'),
);
const RQ: AssociateRq = {
  type: 'A-ASSOCIATE-RQ',
  protocolVersion: 1,
  calledAe: 'PACSNODE',
  callingAe: 'STORESCU',
  aeFields: Buffer.from('PACSNODE        STORESCU        ', 'latin1'),
  applicationContext: APP,
  presentationContexts: [
    { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] },
    { id: 3, abstractSyntax: CT, transferSyntaxes: [EXPLICIT, IMPLICIT] },
  ],
  userInformation: {
    maxLength: 16384,
    implementationClassUid: '1.2.3',
    asyncOperationsWindow: { maxInvoked: 5, maxPerformed: 5 },
    roleSelections: [{ sopClassUid: CT, scuRole: false, scpRole: true }],
    implementationVersionName: 'TEST_01',
    extendedNegotiations: [{ sopClassUid: FIND, info: Buffer.from([1, 0, 1, 0]) }],
    otherItems: [],
  },
};

const acVariable = bytes(
  '10 00', u16(21), t(APP),
  '21 00', u16(4 + 4 + 19), '01 00 00 00', '40 00', u16(19), t(EXPLICIT), // ID 1, result 0 acceptance
  '21 00', u16(4 + 4 + 0), '03 00 03 00', '40 00 0000', //              ID 3, result 3 abstract syntax not supported
  '50 00', u16(8 + 4 + 5 + 8), '51 00 0004', u32(65536), '52 00', u16(5), t('1.2.3'), '53 00 0004 0001 0001',
);
const AC_BYTES = bytes('02 00', u32(68 + acVariable.length), '0001 0000', '', t('PACSNODE        '), t('STORESCU        '), '00'.repeat(32), acVariable.toString('hex'));
const AC: AssociateAc = {
  type: 'A-ASSOCIATE-AC',
  protocolVersion: 1,
  calledAe: 'PACSNODE',
  callingAe: 'STORESCU',
  applicationContext: APP,
  presentationContexts: [
    { id: 1, result: 0, transferSyntax: EXPLICIT },
    { id: 3, result: 3, transferSyntax: '' },
  ],
  userInformation: { maxLength: 65536, implementationClassUid: '1.2.3', asyncOperationsWindow: { maxInvoked: 1, maxPerformed: 1 }, roleSelections: [], extendedNegotiations: [], otherItems: [] },
};

const FIXTURES: [string, Buffer, Pdu][] = [
  ['A-ASSOCIATE-RQ with every user information sub-item', RQ_BYTES, RQ],
  ['A-ASSOCIATE-AC', AC_BYTES, AC],
  ['A-ASSOCIATE-RJ 1/1/7 (called AE not recognized)', bytes('03 00 00000004', '00 01 01 07'), { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 7 }],
  ['A-ASSOCIATE-RJ 2/3/2 (local limit exceeded)', bytes('03 00 00000004', '00 02 03 02'), { type: 'A-ASSOCIATE-RJ', result: 2, source: 3, reason: 2 }],
  [
    'P-DATA-TF with a last command fragment and a data set fragment',
    bytes('04 00', u32(6 + 4 + 6 + 3), '00000006 01 03 aabbccdd', '00000005 01 00 010203'),
    {
      type: 'P-DATA-TF',
      pdvs: [
        { contextId: 1, command: true, last: true, data: Buffer.from([0xaa, 0xbb, 0xcc, 0xdd]) },
        { contextId: 1, command: false, last: false, data: Buffer.from([1, 2, 3]) },
      ],
    },
  ],
  ['A-RELEASE-RQ', bytes('05 00 00000004 00000000'), { type: 'A-RELEASE-RQ' }],
  ['A-RELEASE-RP', bytes('06 00 00000004 00000000'), { type: 'A-RELEASE-RP' }],
  ['A-ABORT service-provider, invalid PDU parameter value', bytes('07 00 00000004 0000 02 06'), { type: 'A-ABORT', source: 2, reason: 6 }],
];

/** A presentation context RQ item: Verification, Implicit VR LE. */
function pcItem(id: number): Buffer {
  return bytes('20 00', u16(4 + 4 + 17 + 4 + 17), id.toString(16).padStart(2, '0'), '000000', '30 00', u16(17), t(VERIFICATION), '40 00', u16(17), t(IMPLICIT));
}

/** An A-ASSOCIATE-RQ PDU around the given presentation context items (and an empty user information item). */
function rqWith(...contexts: Buffer[]): Buffer {
  const body = Buffer.concat([bytes('0001 0000', '', t('PACSNODE'.padEnd(16)), t('SCU'.padEnd(16)), '00'.repeat(32), '10 00', u16(21), t(APP)), ...contexts, bytes('50 00 0000')]);
  return Buffer.concat([bytes('01 00', u32(body.length)), body]);
}

const invalidParameter = (e: unknown): boolean => e instanceof PduError && e.reason === AbortReason.INVALID_PDU_PARAMETER_VALUE;

describe('A-ASSOCIATE-RQ presentation context list (PS3.8 9.3.2, 9.3.2.2)', () => {
  it('decodes unique odd IDs 1-255, up to 128 contexts', () => {
    const ids = Array.from({ length: 128 }, (_, i) => 2 * i + 1);
    const pdu = decodePdu(rqWith(...ids.map(pcItem))) as AssociateRq;
    assert.deepEqual(pdu.presentationContexts.map((pc) => pc.id), ids);
    assert.equal(presentationContextIdProblem(ids), undefined);
  });

  it('rejects two presentation contexts of the same ID as an invalid PDU parameter value (A-ABORT 2/6)', () => {
    assert.throws(() => decodePdu(rqWith(pcItem(1), pcItem(3), pcItem(1))), (e: unknown) => invalidParameter(e) && /ID 1 proposed more than once/.test((e as Error).message));
  });

  it('rejects even presentation context IDs, 0 included (A-ABORT 2/6)', () => {
    assert.throws(() => decodePdu(rqWith(pcItem(1), pcItem(2))), invalidParameter);
    assert.throws(() => decodePdu(rqWith(pcItem(0))), invalidParameter);
    assert.throws(() => decodePdu(rqWith(pcItem(254))), invalidParameter);
  });

  it('rejects an A-ASSOCIATE-RQ without presentation context (A-ABORT 2/6)', () => {
    assert.throws(() => decodePdu(rqWith()), (e: unknown) => invalidParameter(e) && /without presentation context/.test((e as Error).message));
  });

  it('rejects a presentation context with two abstract syntax sub-items', () => {
    const twice = bytes('20 00', u16(4 + 4 + 17 + 4 + 25 + 4 + 17), '01 000000', '30 00', u16(17), t(VERIFICATION), '30 00', u16(25), t(CT), '40 00', u16(17), t(IMPLICIT));
    assert.throws(() => decodePdu(rqWith(twice)), invalidParameter);
  });
});

describe('PDU codec', () => {
  for (const [name, raw, pdu] of FIXTURES) {
    it(`decodes ${name}`, () => assert.deepEqual(decodePdu(raw), pdu));
    it(`encodes ${name}`, () => assert.deepEqual(encodePdu(pdu), raw));
  }

  it('encodes a one-PDV P-DATA-TF in one buffer', () => {
    assert.deepEqual(encodeSinglePdv(5, false, true, Buffer.from([9, 8])), bytes('04 00 00000008', '00000004 05 02 0908'));
  });

  it('keeps user identity and other unknown sub-items as raw items', () => {
    const ui = bytes('50 00', u16(4 + 16), '58 00', u16(16), '01 01', u16(10), t('pacsnode01'), '0000');
    const body = bytes('0001 0000', '', t('A'.padEnd(16)), t('B'.padEnd(16)), '00'.repeat(32), '10 00', u16(21), t(APP), pcItem(1).toString('hex'), ui.toString('hex'));
    const pdu = decodePdu(Buffer.concat([bytes('01 00', u32(body.length)), body])) as AssociateRq;
    assert.equal(pdu.userInformation.otherItems.length, 1);
    assert.equal(pdu.userInformation.otherItems[0]?.type, 0x58);
  });

  it('tolerates NUL-padded UIDs and trims AE titles', () => {
    const body = bytes('0001 0000', '', t('  PACS          '), t('SCU             '), '00'.repeat(32), '10 00', u16(22), t(APP), '00', pcItem(1).toString('hex'));
    const pdu = decodePdu(Buffer.concat([bytes('01 00', u32(body.length)), body])) as AssociateRq;
    assert.equal(pdu.applicationContext, APP);
    assert.equal(pdu.calledAe, 'PACS');
  });

  it('trims spaces only from AE titles: a tab or a no-break space is part of the title (PS3.5 6.2)', () => {
    const rq = (called: Buffer): AssociateRq => {
      const body = Buffer.concat([bytes('0001 0000'), called, bytes(t('SCU             '), '00'.repeat(32), '10 00', u16(22), t(APP), '00'), pcItem(1)]);
      return decodePdu(Buffer.concat([bytes('01 00', u32(body.length)), body])) as AssociateRq;
    };
    assert.equal(rq(Buffer.from('PACSNODE\t       ', 'latin1')).calledAe, 'PACSNODE\t');
    assert.equal(rq(Buffer.from('PACSNODE\u00a0       ', 'latin1')).calledAe, 'PACSNODE\u00a0');
    assert.equal(rq(Buffer.from('PACSNODE\0\0\0\0\0\0\0\0', 'latin1')).calledAe, 'PACSNODE');
  });

  it('rejects an item overrunning its PDU (invalid parameter value)', () => {
    const body = bytes('0001 0000', '', t('A'.padEnd(16)), t('B'.padEnd(16)), '00'.repeat(32), '10 00 00ff', t(APP));
    assert.throws(() => decodePdu(Buffer.concat([bytes('01 00', u32(body.length)), body])), (e: unknown) => e instanceof PduError && e.reason === AbortReason.INVALID_PDU_PARAMETER_VALUE);
  });

  it('rejects an unknown PDU type with reason 1', () => {
    assert.throws(() => decodePdu(bytes('09 00 00000004 00000000')), (e: unknown) => e instanceof PduError && e.reason === AbortReason.UNRECOGNIZED_PDU);
  });

  it('rejects an A-RELEASE-RQ of the wrong length', () => {
    assert.throws(() => decodePdu(bytes('05 00 00000002 0000')), PduError);
  });

  it('rejects a PDV item whose length overruns the PDU', () => {
    assert.throws(() => decodePdu(bytes('04 00 00000008 000000ff 01 03 0000')), PduError);
  });
});
