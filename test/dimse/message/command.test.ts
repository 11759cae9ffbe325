import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { MessageAssembler, type IncomingMessage } from '../../../src/dimse/message/assembler.js';
import { CommandField, CommandSetError, NO_DATA_SET, decodeCommandSet, encodeCommandSet, type CommandSet } from '../../../src/dimse/message/command.js';
import { fragmentPdus } from '../../../src/dimse/message/fragment.js';
import { Status, storeStatus } from '../../../src/dimse/message/status.js';
import { decodePdu } from '../../../src/dimse/pdu/codec.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// C-ECHO-RQ, message ID 1, Implicit VR LE: tag (group, element), 32-bit length, value.
const ECHO_RQ = hex(`
  0000 0000 04000000 38000000
  0000 0200 12000000 312e322e3834302e31303030382e312e3100
  0000 0001 02000000 3000
  0000 1001 02000000 0100
  0000 0008 02000000 0101`);

// C-STORE-RSP with a warning, an odd-length error comment padded with a space.
const STORE_RSP: CommandSet = {
  commandField: CommandField.C_STORE_RSP,
  commandDataSetType: NO_DATA_SET,
  affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.7',
  affectedSopInstanceUid: '1.2.3',
  messageIdBeingRespondedTo: 7,
  status: 0xb000,
  errorComment: 'odd',
};

describe('command set codec', () => {
  it('decodes a C-ECHO-RQ byte fixture', () => {
    assert.deepEqual(decodeCommandSet(ECHO_RQ), { affectedSopClassUid: '1.2.840.10008.1.1', commandField: 0x0030, messageId: 1, commandDataSetType: 0x0101 });
  });

  it('encodes it to the same bytes, group length first', () => {
    assert.deepEqual(encodeCommandSet({ commandField: 0x0030, messageId: 1, commandDataSetType: 0x0101, affectedSopClassUid: '1.2.840.10008.1.1' }), ECHO_RQ);
  });

  it('round-trips every field it knows', () => {
    const all: CommandSet = {
      ...STORE_RSP,
      requestedSopClassUid: '1.2.4',
      messageId: 9,
      moveDestination: 'DEST',
      priority: 2,
      offendingElement: ['00100010', '0020000D'],
      errorId: 3,
      requestedSopInstanceUid: '1.2.5',
      numberOfRemainingSuboperations: 1,
      numberOfCompletedSuboperations: 2,
      numberOfFailedSuboperations: 3,
      numberOfWarningSuboperations: 4,
      moveOriginatorAeTitle: 'ORIGIN',
      moveOriginatorMessageId: 5,
    };
    assert.deepEqual(decodeCommandSet(encodeCommandSet(all)), all);
  });

  it('pads text to even length (UI with NUL, LO with space)', () => {
    const b = encodeCommandSet(STORE_RSP);
    assert.ok(b.includes(Buffer.from('1.2.3\0')));
    assert.ok(b.includes(Buffer.from('odd ')));
    assert.equal(b.readUInt32LE(8), b.length - 12);
  });

  it('skips unknown group-0000 elements and refuses other groups', () => {
    const withUnknown = Buffer.concat([ECHO_RQ, hex('0000 0099 02000000 ffff')]);
    assert.equal(decodeCommandSet(withUnknown).commandField, 0x0030);
    assert.throws(() => decodeCommandSet(Buffer.concat([ECHO_RQ, hex('0800 1800 02000000 3100')])), CommandSetError);
    assert.throws(() => decodeCommandSet(ECHO_RQ.subarray(0, ECHO_RQ.length - 1)), CommandSetError);
  });
});

describe('P-DATA fragmentation and reassembly', () => {
  it('cuts a message to the peer maximum length, last bit on the final fragment only', () => {
    const data = Buffer.alloc(25, 1);
    const pdus = [...fragmentPdus(3, false, data, 16)].map((p) => decodePdu(p));
    assert.deepEqual(pdus.map((p) => (p.type === 'P-DATA-TF' ? p.pdvs.map((v) => [v.contextId, v.command, v.last, v.data.length]) : [])), [[[3, false, false, 10]], [[3, false, false, 10]], [[3, false, true, 5]]]);
  });

  it('reassembles a command and streams its data set, pausing the transport when the stream is full', async () => {
    const got: IncomingMessage[] = [];
    let pauses = 0;
    const asm = new MessageAssembler({ message: (m) => got.push(m), error: (d) => assert.fail(d), pause: () => pauses++, resume: () => {} });
    const cmd = encodeCommandSet({ commandField: CommandField.C_STORE_RQ, commandDataSetType: 0, messageId: 1, affectedSopClassUid: '1.2', affectedSopInstanceUid: '1.3' });
    const feed = (command: boolean, data: Buffer, max: number): void => {
      for (const p of fragmentPdus(1, command, data, max)) {
        const pdu = decodePdu(p);
        if (pdu.type !== 'P-DATA-TF') continue;
        for (const v of pdu.pdvs) asm.fragment({ ...v, end: true });
      }
    };
    feed(true, cmd, 20);
    assert.equal(got.length, 1);
    const dataSet = got[0]?.dataSet as Readable;
    const payload = Buffer.alloc(3 * 1024 * 1024, 5);
    feed(false, payload, 65536);
    assert.ok(pauses > 0, 'the transport was paused');
    const chunks: Buffer[] = [];
    for await (const c of dataSet) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), payload);
  });

  it('fails the data set in progress when the association ends', async () => {
    const got: IncomingMessage[] = [];
    const asm = new MessageAssembler({ message: (m) => got.push(m), error: () => {}, pause: () => {}, resume: () => {} });
    const cmd = encodeCommandSet({ commandField: CommandField.C_STORE_RQ, commandDataSetType: 0, messageId: 1 });
    asm.fragment({ contextId: 1, command: true, last: true, end: true, data: cmd });
    asm.fragment({ contextId: 1, command: false, last: false, end: true, data: Buffer.alloc(10) });
    asm.close('association aborted');
    await assert.rejects(async () => {
      for await (const _ of got[0]?.dataSet as Readable) {
        // consume
      }
    });
  });

  it('reports a data set fragment without a command as a protocol error', () => {
    let error = '';
    const asm = new MessageAssembler({ message: () => {}, error: (d) => (error = d), pause: () => {}, resume: () => {} });
    asm.fragment({ contextId: 1, command: false, last: true, end: true, data: Buffer.alloc(2) });
    assert.match(error, /without a command/);
  });
});

describe('C-STORE status table', () => {
  it('maps the ingest outcome to one status', () => {
    assert.equal(storeStatus({ ok: true, warnings: [] }), Status.SUCCESS);
    assert.equal(storeStatus({ ok: true, warnings: ['COERCED'] }), 0xb000);
    assert.equal(storeStatus({ ok: true, warnings: ['INVALID_INDEXED_VALUE'] }), 0xb007);
    assert.equal(storeStatus({ ok: false, failure: 'OUT_OF_RESOURCES', warnings: [] }), 0xa700);
    assert.equal(storeStatus({ ok: false, failure: 'MISSING_ATTRIBUTE', warnings: [] }), 0xa900);
    assert.equal(storeStatus({ ok: false, failure: 'NOT_PARSEABLE', warnings: [] }), 0xc000);
    assert.equal(storeStatus({ ok: false, failure: 'DUPLICATE', warnings: [] }), 0x0111);
    assert.equal(storeStatus({ ok: false, failure: 'PATIENT_MISMATCH', warnings: [] }), 0xc410);
  });
});
