// Association negotiation over TCP against the SCP (FIND/MOVE/GET wired), with a raw peer:
// invalid presentation context lists are aborted (PS3.8 9.2: an invalid A-ASSOCIATE-RQ in Sta2 is
// answered with A-ABORT, service provider, invalid PDU parameter value), abstract syntaxes that
// are not UIDs are refused without breaking the answer, and role selections that would leave an
// accepted context without roles are refused.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { decodePdu, encodePdu } from '../../src/dimse/pdu/codec.js';
import { emptyUserInformation, type AssociateAc, type AssociateRq, type Pdu } from '../../src/dimse/pdu/types.js';
import { AE, startRetrieveDimse, type TestRetrieveDimse } from './helpers.js';

const IMPLICIT = '1.2.840.10008.1.2';
const VERIFICATION = '1.2.840.10008.1.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const FIND = '1.2.840.10008.5.1.4.1.2.2.1';

function rq(contexts: [number, string][]): AssociateRq {
  return {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAe: AE,
    callingAe: 'RAWSCU',
    applicationContext: '1.2.840.10008.3.1.1.1',
    presentationContexts: contexts.map(([id, abstractSyntax]) => ({ id, abstractSyntax, transferSyntaxes: [IMPLICIT] })),
    userInformation: { ...emptyUserInformation(), maxLength: 16384 },
  };
}

/**
 * Sends one A-ASSOCIATE-RQ; resolves with the PDUs received until the answer (A-ASSOCIATE-AC/RJ,
 * A-ABORT: then this peer closes, as PS3.8 expects of it in Sta13) or until the server closes.
 */
function associate(port: number, request: AssociateRq): Promise<{ pdus: Pdu[] }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const pdus: Pdu[] = [];
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer: ${JSON.stringify(pdus.map((p) => p.type))}`));
    }, 10_000);
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ pdus });
    };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 6 && buf.length >= 6 + buf.readUInt32BE(2)) {
        const n = 6 + buf.readUInt32BE(2);
        pdus.push(decodePdu(buf.subarray(0, n)));
        buf = buf.subarray(n);
      }
      if (pdus.some((p) => p.type !== 'P-DATA-TF')) done();
    });
    socket.on('error', () => {});
    socket.on('close', () => done());
    socket.write(encodePdu(request));
  });
}

describe('association negotiation end to end', () => {
  let d: TestRetrieveDimse;
  before(async () => {
    d = await startRetrieveDimse();
  });
  after(async () => {
    await d.close();
  });

  const invalid: [string, AssociateRq][] = [
    ['two presentation contexts of ID 1', rq([[1, VERIFICATION], [1, CT]])],
    ['an even presentation context ID', rq([[1, VERIFICATION], [2, CT]])],
    ['no presentation context', rq([])],
  ];
  for (const [name, request] of invalid) {
    it(`aborts an A-ASSOCIATE-RQ with ${name}: A-ABORT source 2 reason 6, never an A-ASSOCIATE-AC`, async () => {
      const { pdus } = await associate(d.port, request);
      assert.deepEqual(pdus, [{ type: 'A-ABORT', source: 2, reason: 6 }]);
    });
  }

  it('refuses abstract syntaxes that are not UIDs with result 3, also a 65,500-byte one with a role selection', async () => {
    const huge = '1.' + '2'.repeat(65_498);
    const request = rq([[1, VERIFICATION], [3, 'not a uid at all!'], [5, '9'.repeat(300)], [7, huge]]);
    request.userInformation.roleSelections = [{ sopClassUid: huge, scuRole: true, scpRole: true }];
    const { pdus } = await associate(d.port, request);
    const ac = pdus[0] as AssociateAc;
    assert.equal(ac.type, 'A-ASSOCIATE-AC');
    assert.deepEqual(ac.presentationContexts.map((c) => [c.id, c.result]), [[1, 0], [3, 3], [5, 3], [7, 3]]);
    assert.deepEqual(ac.userInformation.roleSelections, []);
  });

  it('refuses (result 1) a Q/R FIND context proposed with the requestor as SCP only', async () => {
    const request = rq([[1, FIND], [3, VERIFICATION]]);
    request.userInformation.roleSelections = [{ sopClassUid: FIND, scuRole: false, scpRole: true }, { sopClassUid: '1.2.3.4.5', scuRole: true, scpRole: true }];
    const { pdus } = await associate(d.port, request);
    const ac = pdus[0] as AssociateAc;
    assert.equal(ac.type, 'A-ASSOCIATE-AC');
    assert.deepEqual(ac.presentationContexts.map((c) => [c.id, c.result]), [[1, 1], [3, 0]]);
    assert.deepEqual(ac.userInformation.roleSelections, []);
  });

  it('still accepts a valid request after all of them', async () => {
    const { pdus } = await associate(d.port, rq([[1, VERIFICATION]]));
    assert.equal(pdus[0]?.type, 'A-ASSOCIATE-AC');
  });
});
