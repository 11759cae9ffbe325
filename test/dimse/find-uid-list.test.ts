// A C-FIND whose identifier carries a long UID list (review: StudyInstanceUID with ~33,000 values
// failed with C001 and SQLite's "too many SQL variables" as the Error Comment). Through the in-process
// SCU on Implicit VR Little Endian (an Explicit VR UI element cannot be longer than 64 KiB): the
// matches of the list's stored values are answered, page after page, and the final status is 0000.
// And findFailure: an unexpected (driver) error's text never becomes the Error Comment.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/archive/context.js';
import { ArchiveError } from '../../src/archive/errors.js';
import { firstString } from '../../src/dicom/json.js';
import { IMPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { encodeDataset, type WriteElement } from '../../src/dicom/writer.js';
import { STUDY_ROOT_FIND } from '../../src/dimse/acse/sop-classes.js';
import { CommandField, DATA_SET_PRESENT, Priority, type CommandSet } from '../../src/dimse/message/command.js';
import { findFailure, INTERNAL_ERROR_COMMENT, Status } from '../../src/dimse/message/status.js';
import { createFindHandler } from '../../src/dimse/scp/find.js';
import { retrieveFailure } from '../../src/dimse/scp/retrieve.js';
import { ScuAssociation } from '../../src/dimse/scu/association.js';
import { decodeIdentifier } from '../../src/dimse/scu/find.js';
import { AE, startDimse, storeRetrieveFixture, type RetrieveFixture, type TestDimse } from './helpers.js';

const STUDY_UID = '0020000D';

interface FindRun {
  /** Every response's status, in order. */
  statuses: number[];
  answers: DicomJsonDataset[];
  final: CommandSet;
}

/** One C-FIND on Study Root, Implicit VR LE, the identifier as given; every response collected. */
async function cfind(port: number, identifier: WriteElement[]): Promise<FindRun> {
  const assoc = await ScuAssociation.open({
    target: { host: '127.0.0.1', port, calledAe: AE },
    callingAe: 'LISTSCU',
    contexts: [{ id: 1, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [IMPLICIT_VR_LE] }],
    timeoutMs: 15_000,
    maxPduLength: 16384,
    logger: silentLogger,
    operation: 'C-FIND',
  });
  try {
    await assoc.sendCommand(1, { commandField: CommandField.C_FIND_RQ, commandDataSetType: DATA_SET_PRESENT, affectedSopClassUid: STUDY_ROOT_FIND, messageId: 1, priority: Priority.MEDIUM });
    await assoc.sendDataSet(1, encodeDataset(identifier, { explicitVr: false, littleEndian: true }));
    const statuses: number[] = [];
    const answers: DicomJsonDataset[] = [];
    for (;;) {
      const rsp = await assoc.receive();
      assert.equal(rsp.command.commandField, CommandField.C_FIND_RSP);
      const status = rsp.command.status ?? -1;
      statuses.push(status);
      if (status !== Status.PENDING && status !== Status.PENDING_WARNING) return { statuses, answers, final: rsp.command };
      assert.ok(rsp.dataSet, 'a pending response carries an identifier');
      answers.push(decodeIdentifier(rsp.dataSet, IMPLICIT_VR_LE));
    }
  } finally {
    if (!assoc.closed) await assoc.release();
  }
}

/** `n` UIDs that nothing stored has, with `stored` among them (short, so 33,000 fit in the SCP's 1 MiB identifier bound). */
function uidList(stored: string[], n: number): string[] {
  const out = Array.from({ length: n - stored.length }, (_, k) => `1.2.826.0.1.${100_000 + k}`);
  stored.forEach((v, k) => out.splice(Math.floor(((k + 1) * out.length) / (stored.length + 1)), 0, v));
  return out;
}

describe('C-FIND with a long UID list', { timeout: 60_000 }, () => {
  let d: TestDimse;
  let f: RetrieveFixture;
  before(async () => {
    // Two matches per archive.query page: the list is run again for every page.
    d = await startDimse({ find: (archive) => createFindHandler({ archive, aeTitle: AE, pageSize: 2 }) });
    f = await storeRetrieveFixture(d.archive);
  });
  after(async () => {
    await d.close();
  });

  it('STUDY level, StudyInstanceUID with 33,000 values: the stored ones are answered, final 0000', { timeout: 20_000 }, async () => {
    const studies = uidList([f.studyA, f.studyB, f.studyC], 33_000);
    assert.equal(studies.length, 33_000);
    const run = await cfind(d.port, [
      { tag: '00080052', vr: 'CS', value: 'STUDY' },
      { tag: STUDY_UID, vr: 'UI', value: studies },
      { tag: '00100020', vr: 'LO' },
    ]);
    assert.equal(run.final.status, Status.SUCCESS, JSON.stringify(run.final));
    assert.equal(run.final.errorComment, undefined);
    assert.deepEqual(run.statuses.slice(0, -1), [Status.PENDING, Status.PENDING, Status.PENDING]);
    assert.deepEqual(run.answers.map((a) => firstString(a, STUDY_UID)).sort(), [f.studyA, f.studyB, f.studyC].sort());
    // Each answer is its own study's (PatientID asked for as a return key).
    for (const a of run.answers) assert.equal(firstString(a, '00100020'), firstString(a, STUDY_UID) === f.studyC ? f.get('other1').patientId : f.patientId);
  });

  it('a list with none stored answers no match, final 0000', { timeout: 20_000 }, async () => {
    const run = await cfind(d.port, [
      { tag: '00080052', vr: 'CS', value: 'STUDY' },
      { tag: STUDY_UID, vr: 'UI', value: uidList([], 33_000) },
    ]);
    assert.deepEqual(run.statuses, [Status.SUCCESS]);
  });
});

describe('findFailure: the Error Comment of a failed C-FIND', () => {
  it('an unexpected error (a driver message) becomes a fixed comment, C001', () => {
    const f = findFailure(new Error('too many SQL variables'));
    assert.equal(f.status, Status.UNABLE_TO_PROCESS);
    assert.equal(f.comment, INTERNAL_ERROR_COMMENT);
    assert.doesNotMatch(f.comment, /SQL/);
    assert.equal(findFailure('not even an Error').comment, INTERNAL_ERROR_COMMENT);
  });

  it('C-MOVE/C-GET selection failures follow the same rule', () => {
    assert.deepEqual(retrieveFailure(new Error('bind message has 4466 parameter formats but 0 parameters')), { status: Status.UNABLE_TO_PROCESS, comment: INTERNAL_ERROR_COMMENT });
    assert.equal(retrieveFailure(new ArchiveError('INVALID_UID', 'not a UID: 1..2', { key: '0020000D' })).comment, 'not a UID: 1..2');
  });

  it("the archive's own errors keep their message (and the key at fault)", () => {
    assert.deepEqual(findFailure(new ArchiveError('INVALID_QUERY', 'bad StudyDate range', { key: '00080020' })), {
      status: Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
      key: '00080020',
      comment: 'bad StudyDate range',
    });
    assert.deepEqual(findFailure(new ArchiveError('DATABASE_UNAVAILABLE', 'database is not reachable')), { status: Status.OUT_OF_RESOURCES, comment: 'database is not reachable' });
    assert.deepEqual(findFailure(new ArchiveError('INTERNAL', 'query failed')), { status: Status.UNABLE_TO_PROCESS, comment: 'query failed' });
  });
});
