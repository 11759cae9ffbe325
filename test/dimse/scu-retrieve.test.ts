// The C-MOVE and C-GET SCU (src/dimse/scu/move.ts, get.ts) against real peers: DCMTK dcmqrscp
// (holding exact copies of generated files, indexed with dcmqridx; its HostTable names the move
// destinations) and DCMTK storescp as the move destination (bit-preserving, so what it writes is
// the data set as sent). A small TCP relay in front of dcmqrscp shows which DIMSE commands we sent.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_2000_LOSSLESS, JPEG_BASELINE, JPEG_LOSSLESS_SV1, RLE_LOSSLESS } from '../../src/dicom/transfer-syntax.js';
import { generateUid } from '../../src/dicom/uids.js';
import { CommandField, decodeCommandSet, encodeCommandSet, NO_DATA_SET, type CommandSet } from '../../src/dimse/message/command.js';
import { fragmentPdus } from '../../src/dimse/message/fragment.js';
import { emptyUserInformation } from '../../src/dimse/pdu/types.js';
import { UpperLayer } from '../../src/dimse/ul/association.js';
import { Status } from '../../src/dimse/message/status.js';
import { createScu, DEFAULT_GET_STORAGE_CONTEXTS, ScuError, type GetSink, type RetrieveProgress, type RetrievedInstanceResult } from '../../src/dimse/scu/index.js';
import { COMPRESSED_TRANSFER_SYNTAXES, getContexts, planGetStorageContexts } from '../../src/dimse/scu/get.js';
import { retrieveIdentifier } from '../../src/dimse/scu/move.js';
import { encodeDataset, writePart10 } from '../../src/dicom/writer.js';
import { datasetElements, generateCorpus, PATIENTS, simpleInstance, SOP_CLASS, type Corpus, type CorpusFile } from '../helpers/corpus.js';
import { datasetOf } from './helpers.js';
import { startRetrieveScp, type RetrieveScp } from './retrieve-peers.js';
import { fileDataset, freePort, startStorescp, type RunningPeer } from './scu-peers.js';

const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2']);
/**
 * dcmqrscp sends a file unchanged when the context's transfer syntax is the file's, except that
 * DCMTK writes sequences and items of explicit length with undefined length on the wire: the
 * corpus file with a sequence arrives re-encoded (for C-MOVE and C-GET alike).
 */
const REENCODED_BY_DCMTK = new Set(['seqPrivate']);

interface Generated {
  path: string;
  sopUid: string;
  seriesUid: string;
  studyUid: string;
  bytes: Buffer;
}

/** A relay to `port` that records the Command Field of every command set the client sends. */
async function commandRelay(port: number): Promise<{ port: number; commands: number[]; close(): Promise<void> }> {
  const commands: number[] = [];
  const sockets: Socket[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.push(client, upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    let pending = Buffer.alloc(0);
    let command: Buffer[] = [];
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 6) {
        const length = pending.readUInt32BE(2);
        if (pending.length < 6 + length) break;
        const pdu = pending.subarray(0, 6 + length);
        pending = pending.subarray(6 + length);
        if (pdu[0] !== 0x04) continue;
        for (let o = 6; o + 6 <= pdu.length; ) {
          const itemLength = pdu.readUInt32BE(o);
          const control = pdu[o + 5] as number;
          if ((control & 1) === 1) {
            command.push(pdu.subarray(o + 6, o + 4 + itemLength));
            if ((control & 2) === 2) {
              commands.push(decodeCommandSet(Buffer.concat(command)).commandField);
              command = [];
            }
          }
          o += 4 + itemLength;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    commands,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A sink keeping each instance's Part-10 bytes in memory (test instances are small). */
function memorySink(): { sink: GetSink; received: Map<string, { bytes: Buffer; transferSyntaxUid: string; sourceAe: string }> } {
  const received = new Map<string, { bytes: Buffer; transferSyntaxUid: string; sourceAe: string }>();
  return {
    received,
    sink: async (instance) => {
      const parts: Buffer[] = [];
      for await (const c of instance.part10) parts.push(Buffer.from(c));
      received.set(instance.sopInstanceUid, { bytes: Buffer.concat(parts), transferSyntaxUid: instance.transferSyntaxUid, sourceAe: instance.sourceAe });
      return { status: Status.SUCCESS };
    },
  };
}

/**
 * A fake Q/R SCP on our upper layer: accepts every context in Implicit VR LE and hands each
 * complete command to `onCommand` (with a sender of P-DATA for its answers).
 */
async function fakeScp(
  onCommand: (rq: CommandSet, contextId: number, send: (command: boolean, data: Buffer) => void) => void,
  onClosed: () => void = () => {},
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    const parts: Buffer[] = [];
    const ul: UpperLayer = new UpperLayer({
      role: 'acceptor',
      artimMs: 5000,
      limits: { maxPDataLength: 65536, maxOtherLength: 1024 * 1024 },
      user: {
        associateIndication: (rq) =>
          ul.accept({
            ...rq,
            type: 'A-ASSOCIATE-AC',
            presentationContexts: rq.presentationContexts.map((pc) => ({ id: pc.id, result: 0, transferSyntax: IMPLICIT_VR_LE })),
            userInformation: { ...emptyUserInformation(), maxLength: 65536, implementationClassUid: '1.2.3.4' },
          }),
        pData: (f) => {
          if (!f.command) return;
          parts.push(Buffer.from(f.data));
          if (!(f.end && f.last)) return;
          onCommand(decodeCommandSet(Buffer.concat(parts.splice(0))), f.contextId, (command, data) => {
            for (const pdu of fragmentPdus(f.contextId, command, data, 65536)) void ul.sendPData(pdu).catch(() => undefined);
          });
        },
        releaseIndication: () => ul.releaseResponse(),
        closed: onClosed,
      },
    });
    ul.attach(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const sk of sockets) sk.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('C-MOVE and C-GET SCU', () => {
  let dir: string;
  let corpus: Corpus;
  let many: Generated[];
  let big: Generated;
  let dest: RunningPeer;
  let slow: RunningPeer;
  let qr: RetrieveScp;
  let held: CorpusFile[];
  const scu = createScu({ callingAe: 'RETRIEVER', timeoutSecs: 10 });
  const target = (): { host: string; port: number; calledAe: string } => ({ host: '127.0.0.1', port: qr.port, calledAe: qr.aeTitle });

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-scu-retrieve-'));
    corpus = await generateCorpus();
    // One study of 12 small instances: series A (10) and series B (2).
    const studyUid = generateUid();
    const seriesA = generateUid();
    const seriesB = generateUid();
    many = [];
    for (let i = 0; i < 12; i++) {
      const seriesUid = i < 10 ? seriesA : seriesB;
      const x = simpleInstance({ studyUid, seriesUid, fill: i });
      const file = path.join(dir, `many-${i}.dcm`);
      await writeFile(file, x.bytes);
      many.push({ path: file, sopUid: x.sopUid, seriesUid, studyUid, bytes: x.bytes });
    }
    {
      // 3 MiB of pixel data: more than the data set stream buffers, so a stalled sink pauses the socket.
      const studyUid = generateUid();
      const seriesUid = generateUid();
      const sopUid = generateUid();
      const dataset = datasetElements({
        patient: PATIENTS.doe,
        studyUid,
        seriesUid,
        sopUid,
        sopClassUid: SOP_CLASS.SC,
        modality: 'OT',
        studyDate: '20230101',
        accessionNumber: 'BIG',
        studyDescription: 'big',
        seriesNumber: 1,
        instanceNumber: 1,
        image: { rows: 1024, cols: 1536, bits: 16 },
        extra: [{ tag: '7FE00010', vr: 'OW', value: Buffer.alloc(1024 * 1536 * 2, 3) }],
      });
      const bytes = writePart10({ dataset, transferSyntaxUid: EXPLICIT_VR_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid });
      const file = path.join(dir, 'big.dcm');
      await writeFile(file, bytes);
      big = { path: file, sopUid, seriesUid, studyUid, bytes };
    }
    dest = await startStorescp({ aeTitle: 'MOVEDEST' });
    slow = await startStorescp({ aeTitle: 'SLOWDEST', extra: ['--sleep-after', '1'] });
    held = corpus.files.filter((f) => NATIVE.has(f.transferSyntax));
    qr = await startRetrieveScp({
      files: [...held, ...many, big],
      destinations: [
        { aeTitle: dest.aeTitle, port: dest.port },
        { aeTitle: slow.aeTitle, port: slow.port },
      ],
    });
  });
  after(async () => {
    await qr?.stop();
    await dest?.stop();
    await slow?.stop();
    await corpus?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  describe('identifier and contexts', () => {
    it('builds hierarchical identifiers and refuses incomplete ones before connecting', () => {
      assert.deepEqual(retrieveIdentifier({ level: 'SERIES', studyUid: '1.2.3', seriesUid: '1.2.3.4' }), [
        { tag: '00080052', vr: 'CS', value: 'SERIES' },
        { tag: '0020000D', vr: 'UI', value: '1.2.3' },
        { tag: '0020000E', vr: 'UI', value: '1.2.3.4' },
      ]);
      assert.deepEqual(retrieveIdentifier({ level: 'PATIENT', patientId: 'PID-1' }), [
        { tag: '00080052', vr: 'CS', value: 'PATIENT' },
        { tag: '00100020', vr: 'LO', value: 'PID-1' },
      ]);
      assert.deepEqual(retrieveIdentifier({ level: 'IMAGE', studyUid: '1.2', seriesUid: '1.3', sopUids: ['1.4', '1.5'] }).at(-1), { tag: '00080018', vr: 'UI', value: '1.4\\1.5' });
      assert.throws(() => retrieveIdentifier({ level: 'SERIES', studyUid: '1.2.3' }), (e: unknown) => e instanceof ScuError && e.code === 'INVALID_REQUEST' && e.details['field'] === 'series_uid');
      assert.throws(() => retrieveIdentifier({ level: 'IMAGE', studyUid: '1.2', seriesUid: '1.3' }), /sop_uids is required/);
      assert.throws(() => retrieveIdentifier({ level: 'STUDY', studyUid: '1..2' }), /not a valid UID/);
      assert.throws(() => retrieveIdentifier({ level: 'PATIENT' }), /patient_id is required/);
      assert.throws(() => retrieveIdentifier({ level: 'STUDY', model: 'patient', studyUid: '1.2' }), /patient_id is required/);
    });

    it('proposes at most 128 contexts, the C-GET one first, with an SCP role item per storage SOP class', () => {
      const { contexts, roles } = getContexts('1.2.840.10008.5.1.4.1.2.2.3', DEFAULT_GET_STORAGE_CONTEXTS);
      assert.ok(contexts.length <= 128, `${contexts.length} contexts`);
      assert.equal(contexts[0]?.abstractSyntax, '1.2.840.10008.5.1.4.1.2.2.3');
      assert.deepEqual(contexts.map((c) => c.id), contexts.map((_, i) => 2 * i + 1));
      const storageClasses = new Set(contexts.slice(1).map((c) => c.abstractSyntax));
      assert.deepEqual(new Set(roles.map((r) => r.sopClassUid)), storageClasses);
      for (const r of roles) assert.deepEqual([r.scuRole, r.scpRole], [false, true]);
      for (const sop of Object.values(SOP_CLASS)) assert.ok(storageClasses.has(sop), sop);
      const ct = contexts.filter((c) => c.abstractSyntax === SOP_CLASS.CT);
      assert.deepEqual(ct[0]?.transferSyntaxes, [EXPLICIT_VR_LE, IMPLICIT_VR_LE]);
      // The SCP accepts one syntax per context: each compressed syntax has a context of its own.
      assert.deepEqual(ct.slice(1).map((c) => c.transferSyntaxes), [[JPEG_BASELINE], [JPEG_LOSSLESS_SV1], [RLE_LOSSLESS], [JPEG_2000_LOSSLESS]]);
      assert.throws(() => getContexts('1.2', Array.from({ length: 128 }, () => ({ sopClassUid: SOP_CLASS.CT, transferSyntaxes: [EXPLICIT_VR_LE] }))), /at most 127/);
    });
  });

  describe('C-MOVE', () => {
    it('moves a study to storescp: every file arrives, counts reported', async () => {
      const study = corpus.study('mueller').studyUid;
      const files = held.filter((f) => f.studyUid === study);
      assert.ok(files.length >= 3);
      const progress: RetrieveProgress[] = [];
      const r = await scu.move(target(), { level: 'STUDY', studyUid: study }, { destination: dest.aeTitle, onProgress: (p) => progress.push(p) });
      assert.equal(r.status, Status.SUCCESS);
      assert.deepEqual({ completed: r.completed, failed: r.failed, warning: r.warning, remaining: r.remaining }, { completed: files.length, failed: 0, warning: 0, remaining: 0 });
      assert.deepEqual(r.failedUids, []);
      assert.equal(r.cancelled, false);
      assert.ok(progress.length >= 1, 'pending responses reported');
      for (const p of progress) {
        assert.equal(p.status, Status.PENDING);
        assert.equal((p.remaining ?? 0) + p.completed + p.failed + p.warning, files.length);
      }
      const written = await dest.files();
      for (const f of files) {
        const out = written.find((w) => w.endsWith(f.sopUid));
        assert.ok(out, `${f.label} not received`);
        if (!REENCODED_BY_DCMTK.has(f.label)) assert.ok((await fileDataset(out)).equals(datasetOf(f.bytes)), `${f.label}: data set differs`);
      }
    });

    it('moves one series, and named instances at IMAGE level', async () => {
      const seriesB = many.filter((m) => m.seriesUid !== many[0]?.seriesUid);
      const r = await scu.move(target(), { level: 'SERIES', studyUid: seriesB[0]?.studyUid as string, seriesUid: seriesB[0]?.seriesUid as string }, { destination: dest.aeTitle });
      assert.equal(r.status, Status.SUCCESS);
      assert.equal(r.completed, 2);
      const a = many.slice(0, 3);
      const img = await scu.move(target(), { level: 'IMAGE', studyUid: a[0]?.studyUid as string, seriesUid: a[0]?.seriesUid as string, sopUids: a.map((x) => x.sopUid) }, { destination: dest.aeTitle });
      assert.equal(img.status, Status.SUCCESS);
      assert.equal(img.completed, 3);
      const written = await dest.files();
      for (const m of [...seriesB, ...a]) {
        const out = written.find((w) => w.endsWith(m.sopUid));
        assert.ok(out, `${m.sopUid} not received`);
        assert.ok((await fileDataset(out)).equals(datasetOf(m.bytes)));
      }
      // Only what was asked for: the other instances of series A did not arrive.
      assert.ok(!written.some((w) => w.endsWith(many[5]?.sopUid as string)));
    });

    it('moves with the Patient Root model at PATIENT level', async () => {
      const f = held[0] as CorpusFile;
      const all = held.filter((x) => x.patient.patientId === f.patient.patientId);
      const r = await scu.move(target(), { level: 'PATIENT', patientId: f.patient.patientId }, { destination: dest.aeTitle });
      assert.equal(r.status, Status.SUCCESS);
      assert.equal(r.completed, all.length);
    });

    it('surfaces A801 for an unknown move destination as a DIMSE_FAILURE with that status', async () => {
      await assert.rejects(scu.move(target(), { level: 'STUDY', studyUid: many[0]?.studyUid as string }, { destination: 'NOWHERE' }), (err: unknown) => {
        assert.ok(err instanceof ScuError);
        assert.equal(err.code, 'DIMSE_FAILURE');
        assert.equal(err.details['status'], Status.MOVE_DESTINATION_UNKNOWN);
        assert.match(err.message, /0xa801 \(move destination unknown\)/);
        return true;
      });
      // The association was released, not left hanging: the peer still answers.
      assert.equal((await scu.echo(target())).status, 0);
    });

    it('moves to our own AE title by default', async () => {
      // RETRIEVER is not in dcmqrscp's HostTable: the default destination is our calling AE.
      await assert.rejects(scu.move(target(), { level: 'STUDY', studyUid: many[0]?.studyUid as string }), (err: unknown) => err instanceof ScuError && err.details['status'] === Status.MOVE_DESTINATION_UNKNOWN);
    });

    it('sends C-CANCEL when the signal fires and settles with the final response', async () => {
      const relay = await commandRelay(qr.port);
      try {
        const controller = new AbortController();
        const progress: RetrieveProgress[] = [];
        const started = Date.now();
        const r = await scu.move(
          { host: '127.0.0.1', port: relay.port, calledAe: qr.aeTitle },
          { level: 'SERIES', studyUid: many[0]?.studyUid as string, seriesUid: many[0]?.seriesUid as string },
          {
            destination: slow.aeTitle,
            signal: controller.signal,
            onProgress: (p) => {
              progress.push(p);
              controller.abort();
            },
          },
        );
        assert.equal(r.cancelled, true);
        assert.ok(r.status === Status.CANCEL || r.status === Status.SUCCESS, `status 0x${r.status.toString(16)}`);
        assert.deepEqual(relay.commands.filter((c) => c !== CommandField.C_ECHO_RQ), [CommandField.C_MOVE_RQ, CommandField.C_CANCEL_RQ]);
        // The slow destination takes a second per instance: 10 would take 10 s; cancelled, far fewer were sent.
        assert.equal(r.status, Status.CANCEL);
        assert.ok(r.completed < 10, `completed ${r.completed}`);
        assert.ok(Date.now() - started < 8000);
      } finally {
        await relay.close();
      }
    });

    it('waits for a C-MOVE SCP that stays silent longer than the DIMSE timeout (pending responses are optional)', async () => {
      // Answers the C-MOVE-RQ only with its final response, 2.5 s later.
      const scp = await fakeScp((rq, _contextId, send) => {
        if (rq.commandField !== CommandField.C_MOVE_RQ) return;
        setTimeout(() => {
          const rsp = encodeCommandSet({
            commandField: CommandField.C_MOVE_RSP,
            commandDataSetType: NO_DATA_SET,
            ...(rq.affectedSopClassUid !== undefined ? { affectedSopClassUid: rq.affectedSopClassUid } : {}),
            ...(rq.messageId !== undefined ? { messageIdBeingRespondedTo: rq.messageId } : {}),
            status: Status.SUCCESS,
            numberOfRemainingSuboperations: 0,
            numberOfCompletedSuboperations: 3,
            numberOfFailedSuboperations: 0,
            numberOfWarningSuboperations: 0,
          });
          send(true, rsp);
        }, 2500);
      });
      try {
        const quick = createScu({ callingAe: 'RETRIEVER', timeoutSecs: 1 });
        const r = await quick.move({ host: '127.0.0.1', port: scp.port, calledAe: 'SILENT' }, { level: 'STUDY', studyUid: '1.2.3.4' }, { destination: 'ELSEWHERE' });
        assert.equal(r.status, Status.SUCCESS);
        assert.equal(r.completed, 3);
      } finally {
        await scp.close();
      }
    });

    it('C-FIND stopped early: a peer ignoring the C-CANCEL and going on sending matches is aborted after the timeout', { timeout: 20_000 }, async () => {
      let sent = 0;
      const tickers: NodeJS.Timeout[] = [];
      const identifier = encodeDataset([{ tag: '00080052', vr: 'CS', value: 'STUDY' }, { tag: '0020000D', vr: 'UI', value: '1.2.3' }], { explicitVr: false });
      const scp = await fakeScp(
        (rq, _contextId, send) => {
          if (rq.commandField !== CommandField.C_FIND_RQ) return; // C-CANCEL ignored
          tickers.push(
            setInterval(() => {
              sent++;
              send(true, encodeCommandSet({ commandField: CommandField.C_FIND_RSP, commandDataSetType: 0, ...(rq.messageId !== undefined ? { messageIdBeingRespondedTo: rq.messageId } : {}), status: Status.PENDING }));
              send(false, identifier);
            }, 200),
          );
        },
        () => tickers.forEach((t) => clearInterval(t)),
      );
      try {
        const quick = createScu({ callingAe: 'FINDER', timeoutSecs: 1 });
        const started = Date.now();
        for await (const _ of quick.find({ host: '127.0.0.1', port: scp.port, calledAe: 'CHATTY' }, { level: 'STUDY', keys: { StudyInstanceUID: '' } })) break;
        const took = Date.now() - started;
        assert.ok(took < 4000, `stopping took ${took} ms; the peer sent ${sent} responses`);
      } finally {
        tickers.forEach((t) => clearInterval(t));
        await scp.close();
      }
    });

    it('does not connect when the signal has already fired', async () => {
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(scu.move(target(), { level: 'STUDY', studyUid: many[0]?.studyUid as string }, { destination: dest.aeTitle, signal: controller.signal }), (err: unknown) => err instanceof ScuError && err.code === 'CANCELLED');
    });

    it('reports a refused connection as CONNECT_FAILED', async () => {
      await assert.rejects(scu.move({ host: '127.0.0.1', port: await freePort(), calledAe: 'NOBODY' }, { level: 'STUDY', studyUid: '1.2.3' }), (err: unknown) => err instanceof ScuError && err.code === 'CONNECT_FAILED');
    });
  });

  describe('C-GET', () => {
    it('gets a study: the instances arrive on the same association, data set bytes equal to the files dcmqrscp holds', async () => {
      const study = corpus.study('mueller').studyUid;
      const files = held.filter((f) => f.studyUid === study);
      assert.ok(files.length >= 3);
      const { sink, received } = memorySink();
      const progress: RetrieveProgress[] = [];
      const instances: RetrievedInstanceResult[] = [];
      const r = await scu.get(target(), { level: 'STUDY', studyUid: study }, { sink, onProgress: (p) => progress.push(p), onInstance: (i) => instances.push(i) });
      assert.equal(r.status, Status.SUCCESS);
      assert.deepEqual({ completed: r.completed, failed: r.failed, warning: r.warning }, { completed: files.length, failed: 0, warning: 0 });
      assert.equal(r.received, files.length);
      assert.equal(instances.length, files.length);
      assert.ok(instances.every((i) => i.status === Status.SUCCESS && i.bytes > 0));
      assert.ok(progress.length >= 1);
      // What dcmqrscp sends for the same study, as storescp (bit-preserving) wrote it.
      await scu.move(target(), { level: 'STUDY', studyUid: study }, { destination: dest.aeTitle });
      const moved = await dest.files();
      let total = 0;
      for (const f of files) {
        const got = received.get(f.sopUid);
        assert.ok(got, `${f.label} not received`);
        assert.equal(got.sourceAe, qr.aeTitle);
        const heldBytes = await readFile(qr.fileOf(f.sopUid));
        if (!REENCODED_BY_DCMTK.has(f.label)) assert.ok(datasetOf(got.bytes).equals(datasetOf(heldBytes)), `${f.label}: data set differs from the held file`);
        const sent = moved.find((w) => w.endsWith(f.sopUid));
        assert.ok(sent);
        assert.ok(datasetOf(got.bytes).equals(await fileDataset(sent)), `${f.label}: data set differs from what dcmqrscp sends`);
        // The File Meta we built names the instance and its transfer syntax.
        assert.equal(got.bytes.toString('latin1', 128, 132), 'DICM');
        assert.ok(got.bytes.includes(Buffer.from(f.sopUid, 'latin1')));
        assert.equal(got.transferSyntaxUid, f.transferSyntax);
        total += datasetOf(got.bytes).length;
      }
      assert.equal(r.bytesReceived, total);
    });

    it('answers the sink outcome: failures count as failed sub-operations with their UIDs', async () => {
      const series = many.filter((m) => m.seriesUid === many[0]?.seriesUid).slice(0, 10);
      const refused = new Set(series.slice(0, 2).map((m) => m.sopUid));
      const sink: GetSink = async (instance) => {
        for await (const _ of instance.part10) {
          // read it all
        }
        if (refused.has(instance.sopInstanceUid)) return { ok: false, failure: 'OUT_OF_RESOURCES', warnings: [], message: 'disk full' };
        if (instance.sopInstanceUid === series[2]?.sopUid) throw new Error('sink broke');
        return { ok: true, warnings: [] };
      };
      const instances: RetrievedInstanceResult[] = [];
      const r = await scu.get(target(), { level: 'SERIES', studyUid: series[0]?.studyUid as string, seriesUid: series[0]?.seriesUid as string }, { sink, onInstance: (i) => instances.push(i) });
      assert.equal(r.status, Status.WARNING_COERCION, 'B000: sub-operations failed');
      assert.equal(r.failed, 3);
      assert.equal(r.completed, series.length - 3);
      assert.deepEqual(new Set(r.failedUids), new Set([...refused, series[2]?.sopUid]));
      const statuses = new Map(instances.map((i) => [i.sopInstanceUid, i.status]));
      for (const u of refused) assert.equal(statuses.get(u), Status.OUT_OF_RESOURCES);
      assert.equal(statuses.get(series[2]?.sopUid as string), Status.PROCESSING_FAILURE);
    });

    it('lets a slow sink hold the association back without losing data', async () => {
      const study = corpus.study('mueller').studyUid;
      const { received } = memorySink();
      const sink: GetSink = async (instance) => {
        const parts: Buffer[] = [];
        for await (const c of instance.part10) {
          parts.push(Buffer.from(c));
          await new Promise((r) => setTimeout(r, 5));
        }
        received.set(instance.sopInstanceUid, { bytes: Buffer.concat(parts), transferSyntaxUid: instance.transferSyntaxUid, sourceAe: instance.sourceAe });
        return { status: 0 };
      };
      const r = await scu.get(target(), { level: 'STUDY', studyUid: study }, { sink });
      assert.equal(r.status, Status.SUCCESS);
      for (const f of held.filter((x) => x.studyUid === study && !REENCODED_BY_DCMTK.has(x.label))) {
        assert.ok(datasetOf(received.get(f.sopUid)?.bytes as Buffer).equals(datasetOf(await readFile(qr.fileOf(f.sopUid)))), f.label);
      }
    });

    it('a sink that stalls longer than the DIMSE timeout pauses the peer instead of timing out', async () => {
      const quick = createScu({ callingAe: 'RETRIEVER', timeoutSecs: 1 });
      let stalled = false;
      const parts: Buffer[] = [];
      const sink: GetSink = async (instance) => {
        for await (const c of instance.part10) {
          parts.push(Buffer.from(c));
          if (!stalled && parts.length === 4) {
            stalled = true;
            await new Promise((r) => setTimeout(r, 2500));
          }
        }
        return { status: 0 };
      };
      const r = await quick.get(target(), { level: 'STUDY', studyUid: big.studyUid }, { sink });
      assert.equal(r.status, Status.SUCCESS);
      assert.ok(stalled);
      assert.ok(datasetOf(Buffer.concat(parts)).equals(datasetOf(big.bytes)));
    });

    it('sends C-CANCEL when the signal fires during a C-GET and settles', async () => {
      const relay = await commandRelay(qr.port);
      try {
        const controller = new AbortController();
        const series = many.filter((m) => m.seriesUid === many[0]?.seriesUid);
        let n = 0;
        const sink: GetSink = async (instance) => {
          for await (const _ of instance.part10) {
            // read it all
          }
          if (++n === 1) controller.abort();
          // Slow enough that the peer sees the cancel before it has sent everything.
          await new Promise((r) => setTimeout(r, 200));
          return { status: 0 };
        };
        const r = await scu.get({ host: '127.0.0.1', port: relay.port, calledAe: qr.aeTitle }, { level: 'SERIES', studyUid: series[0]?.studyUid as string, seriesUid: series[0]?.seriesUid as string }, { sink, signal: controller.signal });
        assert.equal(r.cancelled, true);
        assert.ok(relay.commands.includes(CommandField.C_CANCEL_RQ), 'C-CANCEL sent');
        assert.equal(relay.commands[0], CommandField.C_GET_RQ);
        assert.ok(r.status === Status.CANCEL || r.status === Status.SUCCESS, `status 0x${r.status.toString(16)}`);
        assert.ok(r.received < series.length, `received ${r.received}`);
      } finally {
        await relay.close();
      }
    });

    it('takes compressed instances unchanged on the context of their syntax among one context per compressed syntax', async () => {
      // The plan for these classes when the peer names no syntax: a context per compressed syntax.
      // dcmqrscp (+xy) accepts JPEG baseline among them and sends on the first context it accepted
      // for the SOP class — natively, failing, when a native context comes first (as in the full plan
      // and the default list: dcmqrscp cannot decompress) — so the native contexts are left out here.
      const jpegs = corpus.files.filter((f) => f.transferSyntax === JPEG_BASELINE);
      assert.ok(jpegs.length >= 2);
      const jqr = await startRetrieveScp({ files: jpegs, aeTitle: 'JPEGQR', extra: ['+xy'] });
      try {
        const classes = [...new Set(jpegs.map((f) => f.sopClassUid))].map((sopClassUid) => ({ sopClassUid, instances: 1 }));
        const storageContexts = planGetStorageContexts(classes).filter((c) => !c.transferSyntaxes.includes(EXPLICIT_VR_LE));
        assert.equal(storageContexts.length, classes.length * COMPRESSED_TRANSFER_SYNTAXES.length);
        assert.ok(storageContexts.every((c) => c.transferSyntaxes.length === 1));
        for (const f of jpegs) {
          const { sink, received } = memorySink();
          const r = await scu.get({ host: '127.0.0.1', port: jqr.port, calledAe: 'JPEGQR' }, { level: 'IMAGE', studyUid: f.studyUid, seriesUid: f.seriesUid, sopUids: [f.sopUid] }, { sink, storageContexts });
          assert.equal(r.status, Status.SUCCESS, `${f.label}: 0x${r.status.toString(16)}`);
          const got = received.get(f.sopUid);
          assert.ok(got, f.label);
          assert.equal(got.transferSyntaxUid, JPEG_BASELINE);
          assert.ok(datasetOf(got.bytes).equals(datasetOf(f.bytes)), `${f.label}: data set differs`);
        }
      } finally {
        await jqr.stop();
      }
    });

    it('planGet: dcmqrscp refuses the relational IMAGE query and returns no SOP Class UID, so the walk ends in the default list', async () => {
      const relay = await commandRelay(qr.port);
      try {
        const study = corpus.study('mueller').studyUid;
        const series = new Set(held.filter((f) => f.studyUid === study).map((f) => f.seriesUid));
        const plan = await scu.planGet({ host: '127.0.0.1', port: relay.port, calledAe: qr.aeTitle }, { level: 'STUDY', studyUid: study });
        // One relational C-FIND (refused: no Series Instance UID), one at SERIES level, one per series.
        assert.deepEqual(relay.commands, Array.from({ length: 2 + series.size }, () => CommandField.C_FIND_RQ));
        assert.equal(plan.storageContexts, undefined);
        assert.deepEqual(plan.classes, []);
        assert.match(plan.fallback ?? '', /no instance with a SOP Class UID/);
      } finally {
        await relay.close();
      }
    });

    it('fails with NO_PRESENTATION_CONTEXT against a peer without Q/R GET', async () => {
      await assert.rejects(scu.get({ host: '127.0.0.1', port: dest.port, calledAe: dest.aeTitle }, { level: 'STUDY', studyUid: '1.2.3' }, { sink: memorySink().sink }), (err: unknown) => {
        assert.ok(err instanceof ScuError);
        assert.equal(err.code, 'NO_PRESENTATION_CONTEXT');
        return true;
      });
    });
  });
});
