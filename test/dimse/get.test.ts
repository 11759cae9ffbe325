// The Q/R GET SCP end to end: DCMTK's getscu (TCP_NODELAY=1) retrieves instances of the retrieve
// fixture over its own association; every file it writes (+B, straight to disk) must hold the stored
// data set bytes when the stored transfer syntax was accepted, and the same elements re-encoded when
// only another native syntax was. C-CANCEL, refused SOP classes and an aborting requester are
// checked with an in-test requester (the repo's ScuAssociation) and a raw socket; negotiation of
// MOVE/GET contexts and C-GET role selection with the pure negotiate().
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { generateUid } from '../../src/dicom/uids.js';
import { encodeDataset, encodeFileMeta, writePart10 } from '../../src/dicom/writer.js';
import { ALL_PERMITTED } from '../../src/dimse/acse/ae-filter.js';
import { negotiate } from '../../src/dimse/acse/negotiate.js';
import { policy as acsePolicy, rq as acseRq } from './acse/fixtures.js';
import { PATIENT_ROOT_GET, PATIENT_ROOT_MOVE, STUDY_ROOT_GET, STUDY_ROOT_MOVE } from '../../src/dimse/acse/sop-classes.js';
import { CommandField, encodeCommandSet, NO_DATA_SET } from '../../src/dimse/message/command.js';
import { fragmentPdus } from '../../src/dimse/message/fragment.js';
import { encodePdu } from '../../src/dimse/pdu/codec.js';
import { emptyUserInformation, type AssociateRq } from '../../src/dimse/pdu/types.js';
import { datasetElements, PATIENTS, patternBytes, SOP_CLASS } from '../helpers/corpus.js';
import {
  AE,
  datasetOf,
  dcmtk,
  elementsOf,
  finalResponseOf,
  retrieveWithScu,
  startRetrieveDimse,
  storedInstanceBytes,
  storeRetrieveFixture,
  type RetrieveFixture,
  type TestRetrieveDimse,
} from './helpers.js';

const SUCCESS = 0x0000;
const WARNING = 0xb000;
const CANCEL = 0xfe00;

describe('C-GET SCP', () => {
  let d: TestRetrieveDimse;
  let f: RetrieveFixture;
  let scratch: string;
  let runs = 0;

  before(async () => {
    d = await startRetrieveDimse();
    f = await storeRetrieveFixture(d.archive);
    scratch = await mkdtemp(path.join(tmpdir(), 'pacsnode-get-'));
  });
  after(async () => {
    await d.close();
    await rm(scratch, { recursive: true, force: true });
  });

  /** getscu writing what it receives straight to disk in a fresh directory: the files by SOP Instance UID. */
  async function getscu(keys: string[], extra: string[] = []): Promise<{ code: number; log: string; final: ReturnType<typeof finalResponseOf>; files: Map<string, Buffer> }> {
    const dir = path.join(scratch, `run${++runs}`);
    await mkdir(dir);
    const r = await dcmtk('getscu', ['-d', '+B', '-S', '-aet', 'GETSCU', '-aec', AE, '-od', dir, '-to', '10', '-ta', '10', '-td', '20', ...extra, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(d.port)], 60_000);
    const log = r.stdout + r.stderr;
    const files = new Map<string, Buffer>();
    for (const name of await readdir(dir)) {
      const inst = f.instances.find((i) => name.endsWith(i.sopUid));
      files.set(inst?.sopUid ?? name.replace(/^[A-Z]{2}\./, ''), await readFile(path.join(dir, name)));
    }
    return { code: r.code, log, final: finalResponseOf(log), files };
  }

  async function assertUnchanged(files: Map<string, Buffer>, keys: string[]): Promise<void> {
    for (const k of keys) {
      const inst = f.get(k);
      const file = files.get(inst.sopUid);
      assert.ok(file, `${k} not received`);
      assert.ok(datasetOf(file).equals(datasetOf(await storedInstanceBytes(d, inst.sopUid))), `${k}: data set bytes differ from the stored ones`);
    }
  }

  async function assertReencoded(files: Map<string, Buffer>, k: string, ts: string): Promise<void> {
    const inst = f.get(k);
    const file = files.get(inst.sopUid);
    assert.ok(file, `${k} not received`);
    const got = await elementsOf(file);
    assert.equal(got.transferSyntax, ts);
    assert.deepEqual(got.elements, (await elementsOf(await storedInstanceBytes(d, inst.sopUid))).elements, `${k}: elements differ after re-encoding`);
  }

  it('gets a study (STUDY level): Explicit VR LE instances byte for byte, the Implicit one re-encoded to what getscu took; final 0000', async () => {
    const r = await getscu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${f.studyA}`]);
    assert.equal(r.code, 0, r.log.slice(-3000));
    assert.deepEqual(r.final, { status: SUCCESS, completed: 4, failed: 0, warning: 0 });
    assert.equal(r.files.size, 4);
    await assertUnchanged(r.files, ['ct1', 'ct2', 'mr1']);
    // getscu proposes Explicit VR LE first for storage; pacsnode takes the SCU's order.
    await assertReencoded(r.files, 'ctImplicit', EXPLICIT_VR_LE);
  });

  for (const [option, first] of [['+xb', 'Big Endian'], ['+xd', 'Deflated']] as const) {
    it(`getscu ${option} (${first} first in every storage context): Explicit VR LE is accepted and the whole study arrives`, async () => {
      const r = await getscu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${f.studyA}`], [option]);
      assert.equal(r.code, 0, r.log.slice(-3000));
      assert.deepEqual(r.final, { status: SUCCESS, completed: 4, failed: 0, warning: 0 });
      await assertUnchanged(r.files, ['ct1', 'ct2', 'mr1']);
      await assertReencoded(r.files, 'ctImplicit', EXPLICIT_VR_LE);
    });
  }

  it('gets a series (SERIES level) and images by a UID list (IMAGE level)', async () => {
    const series = await getscu(['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${f.studyA}`, `SeriesInstanceUID=${f.seriesA2}`]);
    assert.equal(series.code, 0, series.log.slice(-3000));
    assert.deepEqual(series.final, { status: SUCCESS, completed: 1, failed: 0, warning: 0 });
    assert.deepEqual([...series.files.keys()], [f.get('mr1').sopUid]);
    await assertUnchanged(series.files, ['mr1']);

    const images = await getscu(['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${f.studyA}`, `SeriesInstanceUID=${f.seriesA1}`, `SOPInstanceUID=${f.get('ct1').sopUid}\\${f.get('ct2').sopUid}`]);
    assert.equal(images.code, 0, images.log.slice(-3000));
    assert.deepEqual(images.final, { status: SUCCESS, completed: 2, failed: 0, warning: 0 });
    assert.deepEqual([...images.files.keys()].sort(), [f.get('ct1').sopUid, f.get('ct2').sopUid].sort());
    await assertUnchanged(images.files, ['ct1', 'ct2']);
  });

  it('re-encodes Explicit VR LE instances for a requester that proposes Implicit VR LE only; the Implicit one goes unchanged', async () => {
    // (getscu 3.6.7 cannot be made to propose Implicit only for storage: its +xi proposes Explicit VR LE.)
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'get',
      sopClassUid: STUDY_ROOT_GET,
      keys: [
        { tag: '00080052', vr: 'CS', value: 'SERIES' },
        { tag: '0020000D', vr: 'UI', value: f.studyA },
        { tag: '0020000E', vr: 'UI', value: f.seriesA1 },
      ],
      storage: [{ sopClassUid: SOP_CLASS.CT, transferSyntaxes: [IMPLICIT_VR_LE] }],
    });
    assert.equal(run.final.status, SUCCESS);
    assert.equal(run.final.numberOfCompletedSuboperations, 3);
    const files = new Map<string, Buffer>();
    for (const s of run.stores) {
      assert.equal(s.transferSyntax, IMPLICIT_VR_LE);
      files.set(s.sopUid, Buffer.concat([encodeFileMeta({ sopClassUid: SOP_CLASS.CT, sopInstanceUid: s.sopUid, transferSyntaxUid: s.transferSyntax }), s.dataSet]));
    }
    await assertReencoded(files, 'ct1', IMPLICIT_VR_LE);
    await assertReencoded(files, 'ct2', IMPLICIT_VR_LE);
    await assertUnchanged(files, ['ctImplicit']);
  });

  it('sends each sub-operation on the requester’s own contexts and answers pending responses with counts (in-test requester)', async () => {
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'get',
      sopClassUid: PATIENT_ROOT_GET,
      keys: [
        { tag: '00080052', vr: 'CS', value: 'PATIENT' },
        { tag: '00100020', vr: 'LO', value: f.patientId },
      ],
      storage: [SOP_CLASS.CT, SOP_CLASS.MR, SOP_CLASS.SC].map((sopClassUid) => ({ sopClassUid, transferSyntaxes: [EXPLICIT_VR_LE, IMPLICIT_VR_LE] })),
    });
    assert.equal(run.final.status, SUCCESS);
    assert.equal(run.final.numberOfCompletedSuboperations, 5);
    assert.deepEqual(
      run.responses.filter((c) => c.status === 0xff00).map((c) => c.numberOfRemainingSuboperations),
      [4, 3, 2, 1],
    );
    assert.deepEqual(run.stores.map((s) => s.sopUid).sort(), ['ct1', 'ct2', 'ctImplicit', 'mr1', 'sc1'].map((k) => f.get(k).sopUid).sort());
    for (const s of run.stores) {
      const inst = f.instances.find((i) => i.sopUid === s.sopUid);
      assert.ok(inst);
      if (s.transferSyntax === inst.transferSyntax) assert.ok(s.dataSet.equals(datasetOf(inst.bytes)), `${inst.key}: data set bytes differ (${s.dataSet.length} vs ${datasetOf(inst.bytes).length}, ${s.transferSyntax})`);
    }
  });

  it('fails the sub-operation of a SOP class the requester offered no context for: B000, its UID in (0008,0058)', async () => {
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'get',
      sopClassUid: STUDY_ROOT_GET,
      keys: [
        { tag: '00080052', vr: 'CS', value: 'STUDY' },
        { tag: '0020000D', vr: 'UI', value: f.studyA },
      ],
      storage: [{ sopClassUid: SOP_CLASS.CT, transferSyntaxes: [EXPLICIT_VR_LE, IMPLICIT_VR_LE] }],
    });
    assert.equal(run.final.status, WARNING);
    assert.equal(run.final.numberOfCompletedSuboperations, 3);
    assert.equal(run.final.numberOfFailedSuboperations, 1);
    assert.deepEqual(run.failedUids, [f.get('mr1').sopUid]);
    assert.equal(run.stores.length, 3);
  });

  it('fails a sub-operation whose stored syntax cannot be sent on the only context offered (no conversion to Big Endian): B000 even when all failed', async () => {
    // Offer CT with Explicit VR Big Endian only: Explicit LE instances cannot be re-encoded to it.
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'get',
      sopClassUid: STUDY_ROOT_GET,
      keys: [
        { tag: '00080052', vr: 'CS', value: 'IMAGE' },
        { tag: '0020000D', vr: 'UI', value: f.studyA },
        { tag: '0020000E', vr: 'UI', value: f.seriesA1 },
        { tag: '00080018', vr: 'UI', value: f.get('ct1').sopUid },
      ],
      storage: [{ sopClassUid: SOP_CLASS.CT, transferSyntaxes: [EXPLICIT_VR_BE] }],
    });
    assert.equal(run.final.status, 0xb000);
    assert.deepEqual(run.failedUids, [f.get('ct1').sopUid]);
    assert.equal(run.stores.length, 0);
  });

  it('stops after the sub-operation in flight on C-CANCEL: FE00 with the counts', async () => {
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'get',
      sopClassUid: STUDY_ROOT_GET,
      keys: [
        { tag: '00080052', vr: 'CS', value: 'STUDY' },
        { tag: '0020000D', vr: 'UI', value: f.studyA },
      ],
      storage: [SOP_CLASS.CT, SOP_CLASS.MR].map((sopClassUid) => ({ sopClassUid, transferSyntaxes: [EXPLICIT_VR_LE, IMPLICIT_VR_LE] })),
      cancelAfter: 1,
      storeDelayMs: 200,
    });
    assert.equal(run.final.status, CANCEL);
    const c = run.final;
    const completed = c.numberOfCompletedSuboperations ?? 0;
    assert.ok((c.numberOfRemainingSuboperations ?? 0) >= 1, JSON.stringify(c));
    assert.ok(completed >= 1 && completed <= 2, JSON.stringify(c));
    assert.equal((c.numberOfRemainingSuboperations ?? 0) + completed + (c.numberOfFailedSuboperations ?? 0) + (c.numberOfWarningSuboperations ?? 0), 4);
    assert.equal(run.stores.length, completed);
  });

  /** An in-test C-GET requester of study A (CT, Explicit VR LE), once the first C-STORE-RQ of its sub-operations arrived. */
  async function getUntilFirstSubOperation(callingAe: string, timeoutMs: number) {
    const { ScuAssociation } = await import('../../src/dimse/scu/association.js');
    const { silentLogger } = await import('../../src/archive/context.js');
    const assoc = await ScuAssociation.open({
      target: { host: '127.0.0.1', port: d.port, calledAe: AE },
      callingAe,
      contexts: [
        { id: 1, abstractSyntax: STUDY_ROOT_GET, transferSyntaxes: [EXPLICIT_VR_LE] },
        { id: 3, abstractSyntax: SOP_CLASS.CT, transferSyntaxes: [EXPLICIT_VR_LE] },
      ],
      roleSelections: [{ sopClassUid: SOP_CLASS.CT, scuRole: false, scpRole: true }],
      timeoutMs,
      maxPduLength: 16384,
      logger: silentLogger,
      operation: 'C-GET',
    });
    await assoc.sendCommand(1, { commandField: CommandField.C_GET_RQ, commandDataSetType: 0, affectedSopClassUid: STUDY_ROOT_GET, messageId: 1, priority: 0 });
    await assoc.sendDataSet(1, encodeDataset([{ tag: '00080052', vr: 'CS', value: 'STUDY' }, { tag: '0020000D', vr: 'UI', value: f.studyA }], { explicitVr: true }));
    const first = await assoc.receive();
    assert.equal(first.command.commandField, CommandField.C_STORE_RQ);
    return { assoc, first };
  }

  it('survives a requester that aborts while a C-STORE sub-operation waits for its response; C-ECHO works afterwards', async () => {
    const { assoc } = await getUntilFirstSubOperation('ABORTER', 5000);
    assoc.abort('test aborts mid C-GET');
    await waitFor(() => d.server.associations === 0, 5000);
    const echo = await dcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', AE, '127.0.0.1', String(d.port)]);
    assert.equal(echo.code, 0, echo.stderr);
  });

  it('aborts at once when the requester sends A-RELEASE-RQ while a sub-operation awaits its C-STORE-RSP (it can send none any more)', async () => {
    const { assoc } = await getUntilFirstSubOperation('RELEASER', 20_000);
    const started = Date.now();
    await assoc.release().catch(() => undefined);
    await waitFor(() => d.server.associations === 0, 5000);
    // The DIMSE timeout here is 5 s: ended by the release, not by waiting for a response.
    assert.ok(Date.now() - started < 2500, `ended after ${Date.now() - started} ms`);
    const echo = await dcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', AE, '127.0.0.1', String(d.port)]);
    assert.equal(echo.code, 0, echo.stderr);
  });

  it('answers 0210 (duplicate invocation) to a request reusing the Message ID of an operation still running, after that operation', async () => {
    const { assoc, first } = await getUntilFirstSubOperation('DUPLICATE', 20_000);
    await assoc.sendCommand(1, { commandField: CommandField.C_ECHO_RQ, commandDataSetType: NO_DATA_SET, affectedSopClassUid: '1.2.840.10008.1.1', messageId: 1 });
    // Answer the C-GET's sub-operations until its final response.
    let msg = first;
    for (let i = 0; !(msg.command.commandField === CommandField.C_GET_RSP && msg.command.status !== 0xff00); i++) {
      assert.ok(i < 50, 'no final C-GET response');
      const rq = msg.command;
      if (rq.commandField === CommandField.C_STORE_RQ) {
        for await (const _ of msg.dataStream ?? []) {
          // read to its end
        }
        await assoc.sendCommand(3, { commandField: CommandField.C_STORE_RSP, commandDataSetType: NO_DATA_SET, affectedSopClassUid: rq.affectedSopClassUid ?? '', affectedSopInstanceUid: rq.affectedSopInstanceUid ?? '', messageIdBeingRespondedTo: rq.messageId ?? 0, status: SUCCESS });
      }
      msg = await assoc.receive();
    }
    const echo = await assoc.receive();
    assert.deepEqual([echo.command.commandField, echo.command.status, echo.command.messageIdBeingRespondedTo], [CommandField.C_ECHO_RSP, 0x0210, 1]);
    await assoc.release();
  });

  it('survives a requester that disappears in the middle of a large data set; C-ECHO and C-GET work afterwards', async () => {
    const big = await storeBigInstance(d);
    const peer = await pausingGetRequester(d.port, big.studyUid);
    assert.ok(peer.received() < big.bytes.length);
    socketsToClose.push(peer.socket);
    peer.socket.destroy();
    await waitFor(() => d.server.associations === 0, 5000);

    const echo = await dcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', AE, '127.0.0.1', String(d.port)]);
    assert.equal(echo.code, 0, echo.stderr);
    const again = await getscu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${big.studyUid}`]);
    assert.deepEqual(again.final, { status: SUCCESS, completed: 1, failed: 0, warning: 0 }, again.log.slice(-2000));
    const inst = again.files.get(big.sopUid);
    assert.ok(inst && datasetOf(inst).equals(datasetOf(big.bytes)));
  });

  it('aborts the association of a requester that stops reading mid data set, after the DIMSE timeout', async () => {
    const quick = await startRetrieveDimse({ policy: { timeoutSecs: 1 } });
    try {
      const big = await storeBigInstance(quick);
      const peer = await pausingGetRequester(quick.port, big.studyUid);
      socketsToClose.push(peer.socket);
      // (the paused peer does not see the close itself: it reads nothing any more)
      assert.equal(quick.server.associations, 1);
      await waitFor(() => quick.server.associations === 0, 6000);
      const echo = await dcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', AE, '127.0.0.1', String(quick.port)]);
      assert.equal(echo.code, 0, echo.stderr);
    } finally {
      await quick.close();
    }
  });
});

const socketsToClose: Socket[] = [];
after(() => {
  for (const s of socketsToClose) s.destroy();
});

/** A 6 MB Explicit VR LE instance in a study of its own. */
async function storeBigInstance(server: TestRetrieveDimse): Promise<{ studyUid: string; sopUid: string; bytes: Buffer }> {
  const sopUid = generateUid();
  const studyUid = generateUid();
  const dataset = datasetElements({
    patient: PATIENTS.doe, studyUid, seriesUid: generateUid(), sopUid, sopClassUid: SOP_CLASS.CT, modality: 'CT', studyDate: '20240103', accessionNumber: 'BIG', studyDescription: 'big', seriesNumber: 1, instanceNumber: 1,
    image: { rows: 1732, cols: 1732, bits: 16 },
    extra: [{ tag: '7FE00010', vr: 'OW', value: patternBytes(1732 * 1732 * 2, 77) }],
  });
  const bytes = writePart10({ dataset, transferSyntaxUid: EXPLICIT_VR_LE, sopClassUid: SOP_CLASS.CT, sopInstanceUid: sopUid });
  const outcome = await server.archive.ingest({ principal: ANONYMOUS, origin: { protocol: 'internal' } }, { body: (async function* () {
    yield bytes;
  })() });
  assert.ok(outcome.ok);
  return { studyUid, sopUid, bytes };
}

/**
 * A raw C-GET requester (CT with the SCP role) that stops reading its socket once 200 kB of the
 * answer arrived: the server is then blocked in the middle of the data set on a full TCP window.
 */
async function pausingGetRequester(port: number, studyUid: string): Promise<{ socket: Socket; received: () => number }> {
  const rq: AssociateRq = {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAe: AE,
    callingAe: 'RAWGET',
    applicationContext: '1.2.840.10008.3.1.1.1',
    presentationContexts: [
      { id: 1, abstractSyntax: STUDY_ROOT_GET, transferSyntaxes: [EXPLICIT_VR_LE] },
      { id: 3, abstractSyntax: SOP_CLASS.CT, transferSyntaxes: [EXPLICIT_VR_LE] },
    ],
    userInformation: { ...emptyUserInformation(), maxLength: 16384, roleSelections: [{ sopClassUid: SOP_CLASS.CT, scuRole: false, scpRole: true }] },
  };
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let receivedBytes = 0;
  const enough = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      receivedBytes += chunk.length;
      if (receivedBytes > 200_000) {
        socket.pause();
        resolve();
      }
    });
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(encodePdu(rq));
  await waitFor(() => receivedBytes > 0, 3000);
  const cmd = encodeCommandSet({ commandField: CommandField.C_GET_RQ, commandDataSetType: 0, affectedSopClassUid: STUDY_ROOT_GET, messageId: 1, priority: 0 });
  const identifier = encodeDataset([{ tag: '00080052', vr: 'CS', value: 'STUDY' }, { tag: '0020000D', vr: 'UI', value: studyUid }], { explicitVr: true });
  for (const pdu of fragmentPdus(1, true, cmd, 16384)) socket.write(pdu);
  for (const pdu of fragmentPdus(1, false, identifier, 16384)) socket.write(pdu);
  await Promise.race([enough, new Promise((_, reject) => setTimeout(() => reject(new Error('no data set bytes received')), 5000))]);
  // let the server fill the window
  await new Promise((r) => setTimeout(r, 100));
  return { socket, received: () => receivedBytes };
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('negotiation of Q/R MOVE and GET (SPEC §4)', () => {
  const IMPLICIT = IMPLICIT_VR_LE;
  const EXPLICIT = EXPLICIT_VR_LE;
  const CT = SOP_CLASS.CT;
  const policy = acsePolicy;
  const rq = (contexts: [string, string[]][]): AssociateRq => acseRq(contexts);

  it('accepts MOVE and GET of both models with Implicit/Explicit VR LE only', () => {
    const r = rq([[STUDY_ROOT_MOVE, [EXPLICIT_VR_BE, EXPLICIT]], [PATIENT_ROOT_MOVE, [IMPLICIT]], [STUDY_ROOT_GET, [EXPLICIT_VR_BE]], [PATIENT_ROOT_GET, [IMPLICIT, EXPLICIT]]]);
    const n = negotiate(r, policy, ALL_PERMITTED);
    assert.deepEqual(n.ac.presentationContexts.map((c) => [c.result, c.transferSyntax]), [[0, EXPLICIT], [0, IMPLICIT], [4, ''], [0, IMPLICIT]]);
    assert.deepEqual([...n.contexts.values()].map((c) => c.kind), ['move', 'move', 'get']);
  });

  it('refuses MOVE/GET while not wired (result 3) and to a node without allow_retrieve (result 1)', () => {
    const r = rq([[STUDY_ROOT_MOVE, [EXPLICIT]], [STUDY_ROOT_GET, [EXPLICIT]]]);
    assert.deepEqual(negotiate(r, policy, ALL_PERMITTED, new Set(['verification', 'storage', 'find'])).ac.presentationContexts.map((c) => c.result), [3, 3]);
    assert.deepEqual(negotiate(r, policy, { store: true, find: true, retrieve: false }).ac.presentationContexts.map((c) => c.result), [1, 1]);
  });

  it('answers C-GET role selection: SCP role accepted with allow_retrieve, SCU role only with allow_store', () => {
    const r = rq([[STUDY_ROOT_GET, [EXPLICIT]], [CT, [EXPLICIT]]]);
    r.userInformation.roleSelections = [{ sopClassUid: CT, scuRole: true, scpRole: true }];
    const all = negotiate(r, policy, ALL_PERMITTED);
    assert.deepEqual(all.ac.userInformation.roleSelections, [{ sopClassUid: CT, scuRole: true, scpRole: true }]);
    assert.equal(all.contexts.get(3)?.requestorScp, true);

    // a node that may retrieve but not store: the storage context is accepted for its C-GET only
    const getOnly = negotiate(r, policy, { store: false, find: true, retrieve: true });
    assert.deepEqual(getOnly.ac.presentationContexts.map((c) => c.result), [0, 0]);
    assert.deepEqual(getOnly.ac.userInformation.roleSelections, [{ sopClassUid: CT, scuRole: false, scpRole: true }]);
    assert.equal(getOnly.contexts.get(3)?.requestorScu, false);

    // a node that may store but not retrieve: SCP role refused (0), and no C-GET context
    const storeOnly = negotiate(r, policy, { store: true, find: true, retrieve: false });
    assert.deepEqual(storeOnly.ac.userInformation.roleSelections, [{ sopClassUid: CT, scuRole: true, scpRole: false }]);
    assert.equal(storeOnly.contexts.get(3)?.requestorScp, false);

    // without a role item the requestor is SCU only: the context serves no C-GET
    const none = negotiate(rq([[STUDY_ROOT_GET, [EXPLICIT]], [CT, [EXPLICIT]]]), policy, ALL_PERMITTED);
    assert.equal(none.contexts.get(3)?.requestorScp, undefined);
    assert.deepEqual(none.ac.userInformation.roleSelections, []);
  });

  it('answers MOVE/GET extended negotiation with zeros (no relational retrieval)', () => {
    const r = rq([[STUDY_ROOT_MOVE, [EXPLICIT]]]);
    r.userInformation.extendedNegotiations = [{ sopClassUid: STUDY_ROOT_MOVE, info: Buffer.from([1]) }];
    assert.deepEqual(negotiate(r, policy, ALL_PERMITTED).ac.userInformation.extendedNegotiations, [{ sopClassUid: STUDY_ROOT_MOVE, info: Buffer.from([0]) }]);
  });
});

describe('C-GET SCU with a non-ASCII Patient ID (Patient Root)', () => {
  it('sends the identifier as UTF-8 under ISO_IR 192, so the SCP matches the patient', async () => {
    const { Readable } = await import('node:stream');
    const { createScu } = await import('../../src/dimse/scu/index.js');
    const d = await startRetrieveDimse();
    try {
      const patientId = 'CN-王-0192';
      const sopUid = generateUid();
      const dataset = datasetElements({
        patient: PATIENTS.wangUtf8,
        studyUid: generateUid(),
        seriesUid: generateUid(),
        sopUid,
        sopClassUid: SOP_CLASS.SC,
        modality: 'OT',
        studyDate: '20240101',
        accessionNumber: 'UTF8',
        studyDescription: 'utf8 patient id',
        seriesNumber: 1,
        instanceNumber: 1,
      }).map((e) => (e.tag === '00100020' ? { ...e, value: Buffer.from(patientId, 'utf8') } : e));
      const part10 = writePart10({ dataset, transferSyntaxUid: EXPLICIT_VR_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid });
      const stored = await d.archive.ingest({ principal: ANONYMOUS, origin: { protocol: 'internal' } }, { body: Readable.from([part10]) });
      assert.equal(stored.ok, true);
      const received: string[] = [];
      const scu = createScu({ callingAe: 'GETSCU', timeoutSecs: 10 });
      const r = await scu.get(
        { host: '127.0.0.1', port: d.port, calledAe: AE },
        { level: 'PATIENT', patientId },
        {
          sink: async (instance) => {
            for await (const _ of instance.part10) {
              // read it all
            }
            received.push(instance.sopInstanceUid);
            return { ok: true, warnings: [] };
          },
        },
      );
      assert.equal(r.completed, 1);
      assert.deepEqual(received, [sopUid]);
    } finally {
      await d.close();
    }
  });
});
