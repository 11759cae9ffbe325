// A DIMSE server on 127.0.0.1 port 0 over a real archive (SQLite file + filesystem blobs) in a
// fresh temporary directory, and small wrappers around the DCMTK tools (TCP_NODELAY=1, timeouts).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createArchive, type Archive } from '../../src/archive/archive.js';
import { DEFAULT_ARCHIVE_SETTINGS, silentLogger, type Logger } from '../../src/archive/context.js';
import type { KnownNode } from '../../src/dimse/acse/ae-filter.js';
import type { FindHandler } from '../../src/dimse/scp/acceptor.js';
import { createDimseServer, type DimsePolicy, type DimseServer } from '../../src/dimse/server.js';
import type { BlobStore } from '../../src/storage/blobs.js';
import { createFsBlobStore } from '../../src/storage/fs/fs-blob-store.js';
import type { MetadataStore } from '../../src/storage/metadata.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import { datasetElements, PATIENTS, SOP_CLASS } from '../helpers/corpus.js';

/**
 * A small Part-10 instance of patient DOE in a study and series of its own: a 16×16 16-bit image
 * (Secondary Capture unless told), `pixelBytes` of Pixel Data (OW; OB when the class is not SC).
 */
export function smallInstance(o: { transferSyntaxUid?: string; sopClassUid?: string; pixelBytes?: number; accessionNumber?: string } = {}): { bytes: Buffer; sopUid: string } {
  const sopUid = generateUid();
  const sopClassUid = o.sopClassUid ?? SOP_CLASS.SC;
  const dataset = datasetElements({
    patient: PATIENTS.doe,
    studyUid: generateUid(),
    seriesUid: generateUid(),
    sopUid,
    sopClassUid,
    modality: 'OT',
    studyDate: '20230101',
    accessionNumber: o.accessionNumber ?? 'DIMSE',
    studyDescription: 'dimse',
    seriesNumber: 1,
    instanceNumber: 1,
    ...(sopClassUid === SOP_CLASS.SC ? { image: { rows: 16, cols: 16, bits: 16 } } : {}),
    extra: [{ tag: '7FE00010', vr: sopClassUid === SOP_CLASS.SC ? 'OW' : 'OB', value: Buffer.alloc(o.pixelBytes ?? 512, 3) }],
  });
  return { bytes: writePart10({ dataset, transferSyntaxUid: o.transferSyntaxUid ?? '1.2.840.10008.1.2.1', sopClassUid, sopInstanceUid: sopUid }), sopUid };
}

export const AE = 'PACSNODE';

export const DEFAULT_POLICY: DimsePolicy = {
  aeTitle: AE,
  whitelist: false,
  acceptAll: true,
  accepted: [],
  preferred: [],
  acceptUnknownSopClasses: true,
  maxAssociations: 8,
  maxPduLength: 65536,
  timeoutSecs: 5,
};

export interface TestDimse {
  archive: Archive;
  metadata: MetadataStore;
  blobs: BlobStore;
  server: DimseServer;
  port: number;
  dir: string;
  close(): Promise<void>;
}

export async function startDimse(options: {
  policy?: Partial<DimsePolicy>;
  nodes?: Record<string, KnownNode>;
  wrapBlobs?: (b: BlobStore) => BlobStore;
  find?: (archive: Archive) => FindHandler;
  logger?: Logger;
} = {}): Promise<TestDimse> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-dimse-'));
  const metadata = createSqliteMetadataStore({ path: path.join(dir, 'pacs.db') });
  await metadata.migrate();
  const fsBlobs = createFsBlobStore({ root: path.join(dir, 'blobs'), fsync: false });
  const blobs = options.wrapBlobs ? options.wrapBlobs(fsBlobs) : fsBlobs;
  const archive = createArchive({ metadata, blobs, settings: DEFAULT_ARCHIVE_SETTINGS, logger: silentLogger });
  const nodes = options.nodes;
  const server = createDimseServer({
    archive,
    policy: { ...DEFAULT_POLICY, ...options.policy },
    logger: options.logger ?? silentLogger,
    ...(nodes ? { nodes: { find: async (_ctx, ae) => nodes[ae] } } : {}),
    ...(options.find ? { find: options.find(archive) } : {}),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  return {
    archive,
    metadata,
    blobs,
    server,
    port,
    dir,
    async close() {
      await server.close({ drainMs: 1000 });
      await metadata.close();
      await fsBlobs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a DCMTK tool with Nagle off (CLIENTS.md) and a hard timeout. */
export function dcmtk(tool: string, args: readonly string[], timeoutMs = 30_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(tool, [...args], { env: { ...process.env, TCP_NODELAY: '1' }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** The dataset part of a Part-10 file: after the preamble, DICM and the File Meta group. */
export function datasetOf(part10: Buffer): Buffer {
  let o = 132;
  while (o + 8 <= part10.length && part10.readUInt16LE(o) === 0x0002) {
    const vr = part10.toString('latin1', o + 4, o + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr);
    o += long ? 12 + part10.readUInt32LE(o + 8) : 8 + part10.readUInt16LE(o + 6);
  }
  return part10.subarray(o);
}

// ---- C-MOVE / C-GET ----

/** A registered node for the retrieve tests: whitelist flags and move destination address. */
export interface TestNode {
  aeTitle: string;
  host: string;
  port: number;
  allowStore: boolean;
  allowFind: boolean;
  allowRetrieve: boolean;
  moveDestination: boolean;
}

export interface TestRetrieveDimse extends TestDimse {
  /** The node registry the server reads (whitelist and move destinations); tests add and remove nodes. */
  nodes: Map<string, TestNode>;
  /** Registers a node (flags default to true). */
  addNode(node: Pick<TestNode, 'aeTitle' | 'host' | 'port'> & Partial<TestNode>): void;
}

/**
 * startDimse with the Q/R FIND, MOVE and GET SCPs wired, a node registry the test controls, and
 * the C-STORE SCU of C-MOVE sub-operations calling as AE.
 */
export async function startRetrieveDimse(options: { policy?: Partial<DimsePolicy>; logger?: Logger; wrapBlobs?: (b: BlobStore) => BlobStore } = {}): Promise<TestRetrieveDimse> {
  const { createFindHandler } = await import('../../src/dimse/scp/find.js');
  const { createMoveHandler } = await import('../../src/dimse/scp/move.js');
  const { createGetHandler } = await import('../../src/dimse/scp/get.js');
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-dimse-'));
  const metadata = createSqliteMetadataStore({ path: path.join(dir, 'pacs.db') });
  await metadata.migrate();
  const fsBlobs = createFsBlobStore({ root: path.join(dir, 'blobs'), fsync: false });
  const blobs = options.wrapBlobs ? options.wrapBlobs(fsBlobs) : fsBlobs;
  const archive = createArchive({ metadata, blobs, settings: DEFAULT_ARCHIVE_SETTINGS, logger: silentLogger });
  const nodes = new Map<string, TestNode>();
  const policy = { ...DEFAULT_POLICY, ...options.policy };
  const logger = options.logger ?? silentLogger;
  const server = createDimseServer({
    archive,
    policy,
    logger,
    nodes: { find: async (_ctx, ae) => nodes.get(ae) },
    find: createFindHandler({ archive, aeTitle: policy.aeTitle }),
    move: createMoveHandler({
      archive,
      destinations: { find: async (_ctx, ae) => nodes.get(ae) },
      scu: { callingAe: policy.aeTitle, timeoutMs: policy.timeoutSecs * 1000, maxPduLength: policy.maxPduLength, logger },
    }),
    get: createGetHandler({ archive }),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  return {
    archive,
    metadata,
    blobs,
    server,
    port,
    dir,
    nodes,
    addNode(node) {
      nodes.set(node.aeTitle, { allowStore: true, allowFind: true, allowRetrieve: true, moveDestination: true, ...node });
    },
    async close() {
      await server.close({ drainMs: 1000 });
      await metadata.close();
      await fsBlobs.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One instance of the retrieve fixture: identity and the Part-10 bytes stored. */
export interface FixtureInstance {
  key: string;
  sopUid: string;
  sopClassUid: string;
  seriesUid: string;
  studyUid: string;
  patientId: string;
  transferSyntax: string;
  bytes: Buffer;
}

export interface RetrieveFixture {
  /** Study A (patient doe): series A1 = ct1, ct2 (Explicit VR LE, ct2 with 300 KB of pixels), ctImplicit; series A2 = mr1. */
  studyA: string;
  seriesA1: string;
  seriesA2: string;
  /** Study B (patient doe): sc1. */
  studyB: string;
  /** Study C (patient mueller): other1 — never part of a doe retrieve. */
  studyC: string;
  patientId: string;
  instances: FixtureInstance[];
  get(key: string): FixtureInstance;
}

/** Stores the retrieve fixture through archive.ingest (the blob holds exactly these bytes). */
export async function storeRetrieveFixture(archive: Archive): Promise<RetrieveFixture> {
  const { ANONYMOUS } = await import('../../src/archive/origin.js');
  const { generateUid } = await import('../../src/dicom/uids.js');
  const { writePart10 } = await import('../../src/dicom/writer.js');
  const { datasetElements, PATIENTS, SOP_CLASS, patternBytes } = await import('../helpers/corpus.js');
  const ctx = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };
  const studyA = generateUid();
  const studyB = generateUid();
  const studyC = generateUid();
  const seriesA1 = generateUid();
  const seriesA2 = generateUid();
  const seriesB1 = generateUid();
  const seriesC1 = generateUid();
  const specs = [
    { key: 'ct1', patient: PATIENTS.doe, studyUid: studyA, seriesUid: seriesA1, sopClassUid: SOP_CLASS.CT, modality: 'CT', ts: '1.2.840.10008.1.2.1', pixels: 2048, n: 1 },
    { key: 'ct2', patient: PATIENTS.doe, studyUid: studyA, seriesUid: seriesA1, sopClassUid: SOP_CLASS.CT, modality: 'CT', ts: '1.2.840.10008.1.2.1', pixels: 300 * 1024, n: 2 },
    { key: 'ctImplicit', patient: PATIENTS.doe, studyUid: studyA, seriesUid: seriesA1, sopClassUid: SOP_CLASS.CT, modality: 'CT', ts: '1.2.840.10008.1.2', pixels: 2048, n: 3 },
    { key: 'mr1', patient: PATIENTS.doe, studyUid: studyA, seriesUid: seriesA2, sopClassUid: SOP_CLASS.MR, modality: 'MR', ts: '1.2.840.10008.1.2.1', pixels: 2048, n: 1 },
    { key: 'sc1', patient: PATIENTS.doe, studyUid: studyB, seriesUid: seriesB1, sopClassUid: SOP_CLASS.SC, modality: 'OT', ts: '1.2.840.10008.1.2.1', pixels: 2048, n: 1 },
    { key: 'other1', patient: PATIENTS.mueller, studyUid: studyC, seriesUid: seriesC1, sopClassUid: SOP_CLASS.CT, modality: 'CT', ts: '1.2.840.10008.1.2.1', pixels: 2048, n: 1 },
  ];
  const instances: FixtureInstance[] = [];
  for (const [i, s] of specs.entries()) {
    const sopUid = generateUid();
    const side = Math.round(Math.sqrt(s.pixels / 2));
    const dataset = datasetElements({
      patient: s.patient,
      studyUid: s.studyUid,
      seriesUid: s.seriesUid,
      sopUid,
      sopClassUid: s.sopClassUid,
      modality: s.modality,
      studyDate: '20240102',
      accessionNumber: 'RETRIEVE',
      studyDescription: 'retrieve fixture',
      seriesNumber: s.seriesUid === seriesA2 ? 2 : 1,
      instanceNumber: s.n,
      image: { rows: side, cols: side, bits: 16 },
      extra: [
        { tag: '00181030', vr: 'LO', value: `protocol ${s.key}` },
        { tag: '7FE00010', vr: 'OW', value: patternBytes(side * side * 2, 1000 + i) },
      ],
    });
    const bytes = writePart10({ dataset, transferSyntaxUid: s.ts, sopClassUid: s.sopClassUid, sopInstanceUid: sopUid });
    const outcome = await archive.ingest(ctx, { body: (async function* () {
      yield bytes;
    })() });
    if (!outcome.ok) throw new Error(`fixture ${s.key} not stored: ${outcome.message}`);
    instances.push({ key: s.key, sopUid, sopClassUid: s.sopClassUid, seriesUid: s.seriesUid, studyUid: s.studyUid, patientId: s.patient.patientId, transferSyntax: s.ts, bytes });
  }
  return {
    studyA,
    seriesA1,
    seriesA2,
    studyB,
    studyC,
    patientId: PATIENTS.doe.patientId,
    instances,
    get(key) {
      const f = instances.find((x) => x.key === key);
      if (!f) throw new Error(`no fixture instance ${key}`);
      return f;
    },
  };
}

/** The stored Part-10 bytes of an instance, read back through the archive. */
export async function storedInstanceBytes(d: TestDimse, sopUid: string): Promise<Buffer> {
  const { ANONYMOUS } = await import('../../src/archive/origin.js');
  const row = await d.metadata.getInstance(sopUid);
  if (!row) throw new Error(`instance ${sopUid} not stored`);
  const chunks: Buffer[] = [];
  for await (const c of await d.archive.openInstance({ principal: ANONYMOUS, origin: { protocol: 'internal' } }, row)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The elements of a Part-10 file, independent of its transfer syntax: the decoded data set (every
 * value inline) with Pixel Data replaced by its value bytes in hex. Two encodings of the same
 * elements give equal results.
 */
export async function elementsOf(part10: Buffer): Promise<{ transferSyntax: string; elements: unknown }> {
  const { readPart10HeaderFromBuffer } = await import('../../src/dicom/header-reader.js');
  const parsed = readPart10HeaderFromBuffer(part10, { bulkdataThreshold: 1 << 24 });
  const px = parsed.pixelData;
  const pixels = px && px.length !== undefined ? part10.subarray(px.offset, px.offset + px.length).toString('hex') : undefined;
  return { transferSyntax: parsed.transferSyntaxUid, elements: { ...parsed.dataset, pixels } };
}

export interface RetrieveRun {
  /** Every C-MOVE-RSP / C-GET-RSP command, in order (the final one last). */
  responses: import('../../src/dimse/message/command.js').CommandSet[];
  final: import('../../src/dimse/message/command.js').CommandSet;
  /** (0008,0058) of the final response's identifier. */
  failedUids: string[];
  /** C-GET: the C-STORE-RQs received: SOP Instance UID, the context's transfer syntax, the data set bytes. */
  stores: { sopUid: string; transferSyntax: string; dataSet: Buffer }[];
}

/**
 * A C-MOVE or C-GET requester built on the repo's ScuAssociation (read-only use): sends the request,
 * answers C-STORE-RQs (C-GET) with 0000, optionally sends C-CANCEL after `cancelAfter` pending
 * responses, and collects every response. Bounded by `timeoutMs`.
 */
export async function retrieveWithScu(o: {
  port: number;
  kind: 'move' | 'get';
  sopClassUid: string;
  keys: { tag: string; vr: import('../../src/dicom/types.js').VR; value: string | string[] }[];
  destination?: string;
  callingAe?: string;
  transferSyntax?: string;
  /** C-GET: storage SOP classes offered with the SCP role, and their transfer syntaxes. */
  storage?: { sopClassUid: string; transferSyntaxes: string[] }[];
  cancelAfter?: number;
  /** Delay before each C-STORE-RSP (C-GET). */
  storeDelayMs?: number;
  timeoutMs?: number;
}): Promise<RetrieveRun> {
  const { ScuAssociation } = await import('../../src/dimse/scu/association.js');
  const { CommandField, NO_DATA_SET, DATA_SET_PRESENT } = await import('../../src/dimse/message/command.js');
  const { encodeDataset, encodeFileMeta } = await import('../../src/dicom/writer.js');
  const { readPart10HeaderFromBuffer } = await import('../../src/dicom/header-reader.js');
  const ts = o.transferSyntax ?? '1.2.840.10008.1.2.1';
  const storage = o.storage ?? [];
  const contexts = [
    { id: 1, abstractSyntax: o.sopClassUid, transferSyntaxes: [ts] },
    ...storage.map((s, i) => ({ id: 3 + 2 * i, abstractSyntax: s.sopClassUid, transferSyntaxes: s.transferSyntaxes })),
  ];
  const timeoutMs = o.timeoutMs ?? 20_000;
  const assoc = await ScuAssociation.open({
    target: { host: '127.0.0.1', port: o.port, calledAe: AE },
    callingAe: o.callingAe ?? 'RETRIEVESCU',
    contexts,
    roleSelections: storage.map((s) => ({ sopClassUid: s.sopClassUid, scuRole: false, scpRole: true })),
    timeoutMs,
    maxPduLength: 16384,
    logger: silentLogger,
    operation: o.kind === 'move' ? 'C-MOVE' : 'C-GET',
  });
  const deadline = setTimeout(() => assoc.abort('test timeout'), timeoutMs);
  try {
    const ctx = assoc.contextFor(o.sopClassUid);
    if (!ctx) throw new Error('retrieve context not accepted');
    const identifier = encodeDataset(o.keys, { explicitVr: ctx.transferSyntax === '1.2.840.10008.1.2.1', littleEndian: true });
    await assoc.sendCommand(ctx.id, {
      commandField: o.kind === 'move' ? CommandField.C_MOVE_RQ : CommandField.C_GET_RQ,
      commandDataSetType: DATA_SET_PRESENT,
      affectedSopClassUid: o.sopClassUid,
      messageId: 1,
      priority: 0,
      ...(o.destination !== undefined ? { moveDestination: o.destination } : {}),
    });
    await assoc.sendDataSet(ctx.id, identifier);
    const responses: RetrieveRun['responses'] = [];
    const stores: RetrieveRun['stores'] = [];
    let pending = 0;
    for (;;) {
      const m = await assoc.receive();
      if (m.command.commandField === CommandField.C_STORE_RQ) {
        const c = assoc.accepted.get(m.contextId);
        // A request's data set may come collected or as a stream, depending on the SCU's version.
        const stream = (m as { dataStream?: AsyncIterable<Buffer> }).dataStream;
        const parts: Buffer[] = [];
        if (stream) for await (const chunk of stream) parts.push(chunk);
        const dataSet = m.dataSet ?? Buffer.concat(parts);
        stores.push({ sopUid: m.command.affectedSopInstanceUid ?? '', transferSyntax: c?.transferSyntax ?? '', dataSet });
        if (o.storeDelayMs) await new Promise((r) => setTimeout(r, o.storeDelayMs));
        await assoc.sendCommand(m.contextId, {
          commandField: CommandField.C_STORE_RSP,
          commandDataSetType: NO_DATA_SET,
          ...(m.command.affectedSopClassUid !== undefined ? { affectedSopClassUid: m.command.affectedSopClassUid } : {}),
          ...(m.command.affectedSopInstanceUid !== undefined ? { affectedSopInstanceUid: m.command.affectedSopInstanceUid } : {}),
          ...(m.command.messageId !== undefined ? { messageIdBeingRespondedTo: m.command.messageId } : {}),
          status: 0,
        });
        continue;
      }
      responses.push(m.command);
      if (m.command.status === 0xff00) {
        pending++;
        if (o.cancelAfter !== undefined && pending === o.cancelAfter) {
          await assoc.sendCommand(ctx.id, { commandField: CommandField.C_CANCEL_RQ, commandDataSetType: NO_DATA_SET, messageIdBeingRespondedTo: 1 });
        }
        continue;
      }
      let failedUids: string[] = [];
      if (m.dataSet && m.dataSet.length > 0) {
        const meta = encodeFileMeta({ sopClassUid: o.sopClassUid, sopInstanceUid: '2.25.1', transferSyntaxUid: ctx.transferSyntax });
        const parsed = readPart10HeaderFromBuffer(Buffer.concat([meta, m.dataSet]), { bulkdataThreshold: 1 << 20 });
        failedUids = (parsed.dataset['00080058']?.Value ?? []).map(String);
      }
      await assoc.release();
      return { responses, final: m.command, failedUids, stores };
    }
  } catch (err) {
    if (!assoc.closed) assoc.abort('test failed');
    throw err;
  } finally {
    clearTimeout(deadline);
  }
}

/** The final response of a movescu/getscu `-d` run: status and counts as the tool printed them. */
export function finalResponseOf(log: string): { status: number; remaining?: number; completed?: number; failed?: number; warning?: number } | undefined {
  const at = Math.max(log.lastIndexOf('Received Final Move Response'), log.lastIndexOf('Received C-GET Response'));
  if (at < 0) return undefined;
  const end = log.indexOf('END DIMSE MESSAGE', at);
  const block = log.slice(at, end < 0 ? undefined : end);
  const status = /DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})/.exec(block);
  if (!status) return undefined;
  const num = (name: string): number | undefined => {
    const m = new RegExp(`${name} Suboperations\\s*:\\s*(\\d+)`).exec(block);
    return m ? Number(m[1]) : undefined;
  };
  const r: { status: number; remaining?: number; completed?: number; failed?: number; warning?: number } = { status: parseInt(status[1] as string, 16) };
  for (const [k, name] of [['remaining', 'Remaining'], ['completed', 'Completed'], ['failed', 'Failed'], ['warning', 'Warning']] as const) {
    const v = num(name);
    if (v !== undefined) r[k] = v;
  }
  return r;
}
