// The Q/R MOVE SCP end to end: DCMTK's movescu (TCP_NODELAY=1) asks pacsnode to move instances of
// the retrieve fixture to a DCMTK storescp registered as a node; every file storescp writes (+B,
// bit-preserving) must hold exactly the stored data set bytes. Refusals by the destination, an
// unknown destination, re-encoding for a destination that takes Implicit VR LE only and C-CANCEL
// are checked with movescu and with an in-test requester built on the repo's ScuAssociation.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IMPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE } from '../../src/dimse/acse/sop-classes.js';
import type { BlobStore } from '../../src/storage/blobs.js';
import {
  AE,
  datasetOf,
  dcmtk,
  elementsOf,
  finalResponseOf,
  retrieveWithScu,
  startDimse,
  startRetrieveDimse,
  storedInstanceBytes,
  storeRetrieveFixture,
  type RetrieveFixture,
  type TestDimse,
  type TestRetrieveDimse,
} from './helpers.js';
import { freePort, startStorescp, type RunningPeer } from './scu-peers.js';

/** Waits until something accepts connections on the port (bounded). */
async function waitForListening(port: number, ms = 10_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - start > ms) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SUCCESS = 0x0000;
const WARNING = 0xb000;
const CANCEL = 0xfe00;
const MOVE_DESTINATION_UNKNOWN = 0xa801;
const UNABLE_TO_PERFORM_SUBOPERATIONS = 0xa702;
const IDENTIFIER_DOES_NOT_MATCH = 0xa900;

/** movescu with debug output; `keys` as `-k` arguments. */
async function movescu(port: number, destination: string, model: '-S' | '-P', keys: string[], extra: string[] = []): Promise<{ code: number; log: string; final: ReturnType<typeof finalResponseOf> }> {
  const r = await dcmtk('movescu', ['-d', model, '-aet', 'MOVESCU', '-aec', AE, '-aem', destination, '-to', '10', '-ta', '10', '-td', '20', ...extra, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(port)], 60_000);
  const log = r.stdout + r.stderr;
  return { code: r.code, log, final: finalResponseOf(log) };
}

/** The files storescp wrote, by SOP Instance UID (its file names end with the UID). */
async function received(peer: RunningPeer, f: RetrieveFixture): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const file of await peer.files()) {
    const inst = f.instances.find((i) => file.endsWith(i.sopUid));
    if (inst) out.set(inst.sopUid, await readFile(file));
  }
  return out;
}

describe('C-MOVE SCP', () => {
  let d: TestRetrieveDimse;
  let f: RetrieveFixture;
  let scratch: string;
  const peers: RunningPeer[] = [];
  const servers: TestDimse[] = [];
  const children: ChildProcess[] = [];

  /** A storescp registered as a move destination under its AE title. */
  async function destination(aeTitle: string, extra: string[] = []): Promise<RunningPeer> {
    const peer = await startStorescp({ aeTitle, extra });
    peers.push(peer);
    d.addNode({ aeTitle, host: '127.0.0.1', port: peer.port });
    return peer;
  }

  /** Asserts that storescp got exactly `keys`, each with the stored data set bytes. */
  async function assertReceivedUnchanged(peer: RunningPeer, keys: string[]): Promise<void> {
    const got = await received(peer, f);
    assert.deepEqual([...got.keys()].sort(), keys.map((k) => f.get(k).sopUid).sort());
    for (const k of keys) {
      const inst = f.get(k);
      const stored = await storedInstanceBytes(d, inst.sopUid);
      assert.ok(datasetOf(got.get(inst.sopUid) as Buffer).equals(datasetOf(stored)), `${k}: data set bytes differ from the stored ones`);
    }
  }

  before(async () => {
    d = await startRetrieveDimse();
    f = await storeRetrieveFixture(d.archive);
    scratch = await mkdtemp(path.join(tmpdir(), 'pacsnode-move-'));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const p of peers) await p.stop();
    for (const s of servers) await s.close();
    await d.close();
    await rm(scratch, { recursive: true, force: true });
  });

  it('moves a study (Study Root, STUDY level) to storescp: every data set byte for byte, final 0000 with 4 completed', async () => {
    const peer = await destination('DEST_STUDY');
    const r = await movescu(d.port, 'DEST_STUDY', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${f.studyA}`]);
    assert.equal(r.code, 0, r.log.slice(-3000));
    assert.deepEqual(r.final, { status: SUCCESS, completed: 4, failed: 0, warning: 0 });
    await assertReceivedUnchanged(peer, ['ct1', 'ct2', 'ctImplicit', 'mr1']);
  });

  it('moves one series (SERIES level) and two images by a UID list (IMAGE level)', async () => {
    const series = await destination('DEST_SERIES');
    const rs = await movescu(d.port, 'DEST_SERIES', '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${f.studyA}`, `SeriesInstanceUID=${f.seriesA2}`]);
    assert.equal(rs.code, 0, rs.log.slice(-3000));
    assert.deepEqual(rs.final, { status: SUCCESS, completed: 1, failed: 0, warning: 0 });
    await assertReceivedUnchanged(series, ['mr1']);

    const images = await destination('DEST_IMAGE');
    const ri = await movescu(d.port, 'DEST_IMAGE', '-S', [
      'QueryRetrieveLevel=IMAGE',
      `StudyInstanceUID=${f.studyA}`,
      `SeriesInstanceUID=${f.seriesA1}`,
      `SOPInstanceUID=${f.get('ct2').sopUid}\\${f.get('ctImplicit').sopUid}`,
    ]);
    assert.equal(ri.code, 0, ri.log.slice(-3000));
    assert.deepEqual(ri.final, { status: SUCCESS, completed: 2, failed: 0, warning: 0 });
    await assertReceivedUnchanged(images, ['ct2', 'ctImplicit']);
  });

  it("moves a patient's studies (Patient Root, PATIENT level) and nothing of other patients", async () => {
    const peer = await destination('DEST_PATIENT');
    const r = await movescu(d.port, 'DEST_PATIENT', '-P', ['QueryRetrieveLevel=PATIENT', `PatientID=${f.patientId}`]);
    assert.equal(r.code, 0, r.log.slice(-3000));
    assert.deepEqual(r.final, { status: SUCCESS, completed: 5, failed: 0, warning: 0 });
    await assertReceivedUnchanged(peer, ['ct1', 'ct2', 'ctImplicit', 'mr1', 'sc1']);
  });

  it('reports pending responses with the counts after each sub-operation, and sets Move Originator on each C-STORE-RQ', async () => {
    // storescp in debug mode, to see the C-STORE-RQ command sets it gets
    const port = await freePort();
    const dir = await mkdtemp(path.join(scratch, 'debug-'));
    const child = spawn('storescp', ['-d', '-aet', 'DEST_PENDING', '-od', dir, String(port)], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let log = '';
    child.stdout.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    await waitForListening(port);
    d.addNode({ aeTitle: 'DEST_PENDING', host: '127.0.0.1', port });
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'move',
      sopClassUid: STUDY_ROOT_MOVE,
      destination: 'DEST_PENDING',
      keys: [
        { tag: '00080052', vr: 'CS', value: 'STUDY' },
        { tag: '0020000D', vr: 'UI', value: f.studyA },
      ],
    });
    const pending = run.responses.filter((c) => c.status === 0xff00);
    assert.deepEqual(
      pending.map((c) => [c.numberOfRemainingSuboperations, c.numberOfCompletedSuboperations, c.numberOfFailedSuboperations, c.numberOfWarningSuboperations]),
      [
        [3, 1, 0, 0],
        [2, 2, 0, 0],
        [1, 3, 0, 0],
      ],
    );
    assert.equal(run.final.status, SUCCESS);
    assert.equal(run.final.numberOfCompletedSuboperations, 4);
    assert.equal(run.final.numberOfRemainingSuboperations, undefined);
    assert.deepEqual(run.failedUids, []);
    assert.equal([...log.matchAll(/Move Originator AE Title\s*:\s*RETRIEVESCU/g)].length, 4, log.slice(-3000));
    assert.equal([...log.matchAll(/Move Originator ID\s*:\s*1\b/g)].length, 4);
    assert.match(log, /Calling Application Name:\s*PACSNODE\s/, 'sub-operations call as server.ae_title');
  });

  it('answers A801 with no sub-operations for an unknown destination, and for a node that is not a move destination', async () => {
    const r = await movescu(d.port, 'NOBODY', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${f.studyA}`]);
    assert.equal(r.final?.status, MOVE_DESTINATION_UNKNOWN, r.log.slice(-3000));
    const peer = await destination('NOT_A_DEST');
    d.addNode({ aeTitle: 'NOT_A_DEST', host: '127.0.0.1', port: peer.port, moveDestination: false });
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'move',
      sopClassUid: STUDY_ROOT_MOVE,
      destination: 'NOT_A_DEST',
      keys: [
        { tag: '00080052', vr: 'CS', value: 'STUDY' },
        { tag: '0020000D', vr: 'UI', value: f.studyA },
      ],
    });
    assert.equal(run.final.status, MOVE_DESTINATION_UNKNOWN);
    assert.equal(run.responses.length, 1);
    assert.equal(run.final.numberOfCompletedSuboperations ?? 0, 0);
    assert.deepEqual(await peer.files(), []);
  });

  it('refuses an identifier without the unique key of its level (A900) and a level outside the model', async () => {
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'move',
      sopClassUid: STUDY_ROOT_MOVE,
      destination: 'DEST_STUDY',
      keys: [{ tag: '00080052', vr: 'CS', value: 'STUDY' }],
    });
    assert.equal(run.final.status, IDENTIFIER_DOES_NOT_MATCH);
    assert.deepEqual(run.final.offendingElement, ['0020000D']);
    const patient = await retrieveWithScu({
      port: d.port,
      kind: 'move',
      sopClassUid: STUDY_ROOT_MOVE,
      destination: 'DEST_STUDY',
      keys: [
        { tag: '00080052', vr: 'CS', value: 'PATIENT' },
        { tag: '00100020', vr: 'LO', value: f.patientId },
      ],
    });
    assert.equal(patient.final.status, IDENTIFIER_DOES_NOT_MATCH);
  });

  it('answers 0000 with no sub-operations when nothing matches', async () => {
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'move',
      sopClassUid: PATIENT_ROOT_MOVE,
      destination: 'DEST_STUDY',
      keys: [
        { tag: '00080052', vr: 'CS', value: 'PATIENT' },
        { tag: '00100020', vr: 'LO', value: 'NO-SUCH-PATIENT' },
      ],
    });
    assert.equal(run.final.status, SUCCESS);
    assert.equal(run.final.numberOfCompletedSuboperations, 0);
  });

  it('fails the instance whose SOP class the destination refuses: B000, failed 1, its UID in (0008,0058)', async () => {
    const cfg = path.join(scratch, 'nomr.cfg');
    await writeFile(
      cfg,
      [
        '[[TransferSyntaxes]]',
        '[Uncompressed]',
        'TransferSyntax1 = LocalEndianExplicit',
        'TransferSyntax2 = OppositeEndianExplicit',
        'TransferSyntax3 = LittleEndianImplicit',
        '[[PresentationContexts]]',
        '[NoMR]',
        'PresentationContext1 = VerificationSOPClass\\Uncompressed',
        'PresentationContext2 = CTImageStorage\\Uncompressed',
        'PresentationContext3 = SecondaryCaptureImageStorage\\Uncompressed',
        '[[Profiles]]',
        '[NoMR]',
        'PresentationContexts = NoMR',
        '',
      ].join('\n'),
    );
    const peer = await destination('DEST_NOMR', ['-xf', cfg, 'NoMR']);
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'move',
      sopClassUid: STUDY_ROOT_MOVE,
      destination: 'DEST_NOMR',
      keys: [
        { tag: '00080052', vr: 'CS', value: 'STUDY' },
        { tag: '0020000D', vr: 'UI', value: f.studyA },
      ],
    });
    assert.equal(run.final.status, WARNING);
    assert.equal(run.final.numberOfCompletedSuboperations, 3);
    assert.equal(run.final.numberOfFailedSuboperations, 1);
    assert.equal(run.final.numberOfWarningSuboperations, 0);
    assert.deepEqual(run.failedUids, [f.get('mr1').sopUid]);
    await assertReceivedUnchanged(peer, ['ct1', 'ct2', 'ctImplicit']);
    // movescu sees the same
    const again = await movescu(d.port, 'DEST_NOMR', '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${f.studyA}`, `SeriesInstanceUID=${f.seriesA2}`]);
    // Every sub-operation of this series failed: still B000 (SPEC §4, ADR 0013).
    assert.equal(again.final?.status, WARNING, again.log.slice(-3000));
    assert.equal(again.final?.failed, 1);
    assert.match(again.log, new RegExp(f.get('mr1').sopUid.replace(/\./g, '\\.')));
  });

  it('answers A702 with every sub-operation failed when the destination cannot be reached', async () => {
    const peer = await startStorescp({ aeTitle: 'DEST_GONE' });
    const port = peer.port;
    await peer.stop();
    d.addNode({ aeTitle: 'DEST_GONE', host: '127.0.0.1', port });
    const run = await retrieveWithScu({
      port: d.port,
      kind: 'move',
      sopClassUid: STUDY_ROOT_MOVE,
      destination: 'DEST_GONE',
      keys: [
        { tag: '00080052', vr: 'CS', value: 'STUDY' },
        { tag: '0020000D', vr: 'UI', value: f.studyB },
      ],
    });
    assert.equal(run.final.status, UNABLE_TO_PERFORM_SUBOPERATIONS);
    assert.equal(run.final.numberOfFailedSuboperations, 1);
    assert.equal(run.final.numberOfCompletedSuboperations, 0);
    assert.deepEqual(run.failedUids, [f.get('sc1').sopUid]);
  });

  it('re-encodes Explicit VR LE to Implicit VR LE for a destination that accepts only Implicit; Implicit-stored bytes go unchanged', async () => {
    const peer = await destination('DEST_IMPLICIT', ['+xi']);
    const r = await movescu(d.port, 'DEST_IMPLICIT', '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${f.studyA}`, `SeriesInstanceUID=${f.seriesA1}`]);
    assert.equal(r.code, 0, r.log.slice(-3000));
    assert.deepEqual(r.final, { status: SUCCESS, completed: 3, failed: 0, warning: 0 });
    const got = await received(peer, f);
    for (const k of ['ct1', 'ct2']) {
      const inst = f.get(k);
      const file = got.get(inst.sopUid);
      assert.ok(file, `${k} not received`);
      const sent = await elementsOf(file);
      const original = await elementsOf(await storedInstanceBytes(d, inst.sopUid));
      assert.equal(sent.transferSyntax, IMPLICIT_VR_LE);
      assert.deepEqual(sent.elements, original.elements, `${k}: elements differ after re-encoding`);
    }
    const implicit = f.get('ctImplicit');
    assert.ok(datasetOf(got.get(implicit.sopUid) as Buffer).equals(datasetOf(await storedInstanceBytes(d, implicit.sopUid))));
  });

  it('stops after the sub-operation in flight on C-CANCEL (movescu --cancel 1): FE00 with the counts', async () => {
    // A destination that takes 400 ms per instance: pacsnode itself over a slow blob store.
    const slow = await startDimse({
      policy: { aeTitle: 'SLOWDEST' },
      wrapBlobs: (inner: BlobStore): BlobStore => ({
        ...inner,
        put: async (key, body, options) => {
          await new Promise((r) => setTimeout(r, 400));
          return inner.put(key, body, options);
        },
      }),
    });
    servers.push(slow);
    d.addNode({ aeTitle: 'SLOWDEST', host: '127.0.0.1', port: slow.port });
    const r = await movescu(d.port, 'SLOWDEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${f.studyA}`], ['--cancel', '1']);
    const final = r.final;
    assert.equal(final?.status, CANCEL, r.log.slice(-3000));
    assert.ok(final !== undefined && (final.remaining ?? 0) >= 1, `some sub-operations remain: ${JSON.stringify(final)}`);
    assert.ok(final !== undefined && (final.completed ?? 0) >= 1);
    assert.equal((final?.remaining ?? 0) + (final?.completed ?? 0) + (final?.failed ?? 0) + (final?.warning ?? 0), 4);
    // what was reported completed is at the destination, nothing more
    const stored = await Promise.all(['ct1', 'ct2', 'ctImplicit', 'mr1'].map((k) => slow.metadata.getInstance(f.get(k).sopUid)));
    assert.equal(stored.filter((x) => x !== undefined).length, final?.completed);
    // the association is usable afterwards
    const echo = await dcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', AE, '127.0.0.1', String(d.port)]);
    assert.equal(echo.code, 0, echo.stderr);
  });

  it('refuses MOVE contexts (result 1) to a registered node without allow_retrieve under the whitelist', async () => {
    const w = await startRetrieveDimse({ policy: { whitelist: true } });
    servers.push(w);
    w.addNode({ aeTitle: 'NORETRIEVE', host: '127.0.0.1', port: 1, allowRetrieve: false });
    const r = await dcmtk('movescu', ['-v', '-S', '-aet', 'NORETRIEVE', '-aec', AE, '-aem', 'NORETRIEVE', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${f.studyA}`, '127.0.0.1', String(w.port)]);
    // movescu exits 0 here; it reports that no context was accepted for its request
    assert.match(r.stdout + r.stderr, /No valid Presentation Context/i);
    assert.doesNotMatch(r.stdout + r.stderr, /Move Response/);
  });
});
