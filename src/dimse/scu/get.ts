/**
 * C-GET SCU (PS3.4 C.4.3, PS3.7 9.1.3): the peer sends the instances back as C-STORE sub-operations
 * on the same association, so we propose, besides the Q/R GET context, storage contexts with an
 * SCP/SCU Role Selection item each (SCP role; PS3.7 D.3.3.4) and take the C-STOREs as they come:
 * each data set is streamed, behind a File Meta we build, into a sink the caller gives (the
 * archive's ingest, a directory of files), never held whole; the sink's outcome becomes the
 * C-STORE-RSP status. The counts of the pending C-GET-RSPs and the final status are reported like
 * C-MOVE's (move.ts, which holds the shared exchange).
 */
import type { IngestOutcome } from '../../archive/ingest/outcome.js';
import {
  EXPLICIT_VR_LE,
  IMPLICIT_VR_LE,
  JPEG_2000,
  JPEG_2000_LOSSLESS,
  JPEG_BASELINE,
  JPEG_EXTENDED,
  JPEG_LOSSLESS,
  JPEG_LOSSLESS_SV1,
  JPEG_LS_LOSSLESS,
  JPEG_LS_NEAR_LOSSLESS,
  RLE_LOSSLESS,
} from '../../dicom/transfer-syntax.js';
import { CommandField, NO_DATA_SET, type CommandSet } from '../message/command.js';
import { drainDataSet, part10Stream } from '../message/part10-stream.js';
import { Status, storeStatus } from '../message/status.js';
import type { PresentationContextRq, RoleSelection } from '../pdu/types.js';
import type { ReceivedMessage, ScuAssociation, ScuTarget } from './association.js';
import { ScuError } from './errors.js';
import { exchangeRetrieve, getSopClass, openForRetrieve, retrieveIdentifier, type RetrieveDeps, type RetrieveOptions, type RetrieveRequest, type RetrieveResult } from './move.js';

/** One instance the peer sends during C-GET. */
export interface RetrievedInstance {
  sopClassUid: string;
  sopInstanceUid: string;
  /** The presentation context's transfer syntax: the data set bytes are in it, as the peer sent them. */
  transferSyntaxUid: string;
  /** The AE that sent it (the called AE of the C-GET): (0002,0016) of the File Meta. */
  sourceAe: string;
  /**
   * Part-10 bytes: File Meta built from the above, then the data set exactly as received. Read it
   * to its end before the returned promise settles (what is left unread is discarded).
   */
  part10: AsyncIterable<Uint8Array>;
}

/**
 * What a sink answers: the archive's neutral ingest outcome (mapped to a C-STORE status by the one
 * table in message/status.ts), or a C-STORE status of its own.
 */
export type GetSinkOutcome = IngestOutcome | { status: number; errorComment?: string };

/** Takes one instance; a throw answers 0110 (processing failure). */
export type GetSink = (instance: RetrievedInstance) => Promise<GetSinkOutcome>;

export interface RetrievedInstanceResult {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** The C-STORE-RSP status we answered. */
  status: number;
  outcome: 'success' | 'warning' | 'failure';
  /** Data set bytes received. */
  bytes: number;
  /** Why it failed (the sink's message or error). */
  error?: string;
}

export interface StorageContextSpec {
  sopClassUid: string;
  transferSyntaxes: readonly string[];
}

export interface GetOptions extends RetrieveOptions {
  /** Where the instances go. */
  sink: GetSink;
  /** Each instance received, once the sink has answered. */
  onInstance?: (result: RetrievedInstanceResult) => void;
  /** The storage contexts to propose instead of DEFAULT_GET_STORAGE_CONTEXTS (at most 127). */
  storageContexts?: readonly StorageContextSpec[];
}

export interface GetResult extends RetrieveResult {
  /** C-STOREs received on the association. */
  received: number;
  /** Data set bytes received. */
  bytesReceived: number;
}

/** Native syntaxes: every SCP can send these (re-encoding between them if it must). */
export const NATIVE_TRANSFER_SYNTAXES: readonly string[] = [EXPLICIT_VR_LE, IMPLICIT_VR_LE];

/** Compressed syntaxes we store as they come (one context per image SOP class lists them all). */
export const COMPRESSED_TRANSFER_SYNTAXES: readonly string[] = [
  JPEG_LOSSLESS_SV1,
  JPEG_BASELINE,
  JPEG_EXTENDED,
  JPEG_LOSSLESS,
  JPEG_LS_LOSSLESS,
  JPEG_LS_NEAR_LOSSLESS,
  JPEG_2000_LOSSLESS,
  JPEG_2000,
  RLE_LOSSLESS,
];

/** Image storage SOP classes (PS3.4 B.5): a native context and a compressed one each. */
export const IMAGE_STORAGE_SOP_CLASSES: readonly string[] = [
  '1.2.840.10008.5.1.4.1.1.1', // Computed Radiography
  '1.2.840.10008.5.1.4.1.1.1.1', // Digital X-Ray, For Presentation
  '1.2.840.10008.5.1.4.1.1.1.1.1', // Digital X-Ray, For Processing
  '1.2.840.10008.5.1.4.1.1.1.2', // Digital Mammography X-Ray, For Presentation
  '1.2.840.10008.5.1.4.1.1.1.2.1', // Digital Mammography X-Ray, For Processing
  '1.2.840.10008.5.1.4.1.1.1.3', // Digital Intra-Oral X-Ray, For Presentation
  '1.2.840.10008.5.1.4.1.1.2', // CT
  '1.2.840.10008.5.1.4.1.1.2.1', // Enhanced CT
  '1.2.840.10008.5.1.4.1.1.2.2', // Legacy Converted Enhanced CT
  '1.2.840.10008.5.1.4.1.1.3.1', // Ultrasound Multi-frame
  '1.2.840.10008.5.1.4.1.1.4', // MR
  '1.2.840.10008.5.1.4.1.1.4.1', // Enhanced MR
  '1.2.840.10008.5.1.4.1.1.4.4', // Legacy Converted Enhanced MR
  '1.2.840.10008.5.1.4.1.1.6.1', // Ultrasound
  '1.2.840.10008.5.1.4.1.1.6.2', // Enhanced US Volume
  '1.2.840.10008.5.1.4.1.1.7', // Secondary Capture
  '1.2.840.10008.5.1.4.1.1.7.1', // Multi-frame Single Bit SC
  '1.2.840.10008.5.1.4.1.1.7.2', // Multi-frame Grayscale Byte SC
  '1.2.840.10008.5.1.4.1.1.7.3', // Multi-frame Grayscale Word SC
  '1.2.840.10008.5.1.4.1.1.7.4', // Multi-frame True Color SC
  '1.2.840.10008.5.1.4.1.1.12.1', // X-Ray Angiographic
  '1.2.840.10008.5.1.4.1.1.12.1.1', // Enhanced XA
  '1.2.840.10008.5.1.4.1.1.12.2', // X-Ray Radiofluoroscopic
  '1.2.840.10008.5.1.4.1.1.12.2.1', // Enhanced XRF
  '1.2.840.10008.5.1.4.1.1.13.1.1', // X-Ray 3D Angiographic
  '1.2.840.10008.5.1.4.1.1.13.1.3', // Breast Tomosynthesis
  '1.2.840.10008.5.1.4.1.1.20', // Nuclear Medicine
  '1.2.840.10008.5.1.4.1.1.30', // Parametric Map
  '1.2.840.10008.5.1.4.1.1.77.1.1', // VL Endoscopic
  '1.2.840.10008.5.1.4.1.1.77.1.2', // VL Microscopic
  '1.2.840.10008.5.1.4.1.1.77.1.4', // VL Photographic
  '1.2.840.10008.5.1.4.1.1.77.1.5.1', // Ophthalmic Photography 8 Bit
  '1.2.840.10008.5.1.4.1.1.77.1.5.2', // Ophthalmic Photography 16 Bit
  '1.2.840.10008.5.1.4.1.1.77.1.5.4', // Ophthalmic Tomography
  '1.2.840.10008.5.1.4.1.1.77.1.6', // VL Whole Slide Microscopy
  '1.2.840.10008.5.1.4.1.1.128', // PET
  '1.2.840.10008.5.1.4.1.1.128.1', // Legacy Converted Enhanced PET
  '1.2.840.10008.5.1.4.1.1.130', // Enhanced PET
  '1.2.840.10008.5.1.4.1.1.481.1', // RT Image
];

/** Other storage SOP classes (no pixel data, or pixel data never compressed in practice): native only. */
export const NON_IMAGE_STORAGE_SOP_CLASSES: readonly string[] = [
  '1.2.840.10008.5.1.4.1.1.4.2', // MR Spectroscopy
  '1.2.840.10008.5.1.4.1.1.9.1.1', // 12-lead ECG
  '1.2.840.10008.5.1.4.1.1.9.1.2', // General ECG
  '1.2.840.10008.5.1.4.1.1.9.1.3', // Ambulatory ECG
  '1.2.840.10008.5.1.4.1.1.9.2.1', // Hemodynamic Waveform
  '1.2.840.10008.5.1.4.1.1.9.4.1', // Basic Voice Audio Waveform
  '1.2.840.10008.5.1.4.1.1.11.1', // Grayscale Softcopy Presentation State
  '1.2.840.10008.5.1.4.1.1.11.2', // Color Softcopy Presentation State
  '1.2.840.10008.5.1.4.1.1.11.3', // Pseudo-Color Softcopy Presentation State
  '1.2.840.10008.5.1.4.1.1.11.4', // Blending Softcopy Presentation State
  '1.2.840.10008.5.1.4.1.1.66', // Raw Data
  '1.2.840.10008.5.1.4.1.1.66.1', // Spatial Registration
  '1.2.840.10008.5.1.4.1.1.66.2', // Spatial Fiducials
  '1.2.840.10008.5.1.4.1.1.66.3', // Deformable Spatial Registration
  '1.2.840.10008.5.1.4.1.1.66.4', // Segmentation
  '1.2.840.10008.5.1.4.1.1.66.5', // Surface Segmentation
  '1.2.840.10008.5.1.4.1.1.67', // Real World Value Mapping
  '1.2.840.10008.5.1.4.1.1.88.11', // Basic Text SR
  '1.2.840.10008.5.1.4.1.1.88.22', // Enhanced SR
  '1.2.840.10008.5.1.4.1.1.88.33', // Comprehensive SR
  '1.2.840.10008.5.1.4.1.1.88.34', // Comprehensive 3D SR
  '1.2.840.10008.5.1.4.1.1.88.50', // Mammography CAD SR
  '1.2.840.10008.5.1.4.1.1.88.59', // Key Object Selection Document
  '1.2.840.10008.5.1.4.1.1.88.67', // X-Ray Radiation Dose SR
  '1.2.840.10008.5.1.4.1.1.104.1', // Encapsulated PDF
  '1.2.840.10008.5.1.4.1.1.104.2', // Encapsulated CDA
  '1.2.840.10008.5.1.4.1.1.104.3', // Encapsulated STL
  '1.2.840.10008.5.1.4.1.1.481.2', // RT Dose
  '1.2.840.10008.5.1.4.1.1.481.3', // RT Structure Set
  '1.2.840.10008.5.1.4.1.1.481.4', // RT Beams Treatment Record
  '1.2.840.10008.5.1.4.1.1.481.5', // RT Plan
  '1.2.840.10008.5.1.4.1.1.481.8', // RT Ion Plan
];

/**
 * The storage contexts a C-GET proposes unless told otherwise: per SOP class {Explicit, Implicit VR
 * LE} first (an SCP that sends on the first context it finds for a SOP class, as DCMTK's does,
 * sends native data on it), and for image classes a second context listing the compressed
 * syntaxes, so compressed instances can come unchanged from an SCP that picks the context by the
 * stored syntax. 1 + 39 * 2 + 32 = 111 contexts: within 128.
 */
export const DEFAULT_GET_STORAGE_CONTEXTS: readonly StorageContextSpec[] = [
  ...IMAGE_STORAGE_SOP_CLASSES.map((sopClassUid) => ({ sopClassUid, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES })),
  ...NON_IMAGE_STORAGE_SOP_CLASSES.map((sopClassUid) => ({ sopClassUid, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES })),
  ...IMAGE_STORAGE_SOP_CLASSES.map((sopClassUid) => ({ sopClassUid, transferSyntaxes: COMPRESSED_TRANSFER_SYNTAXES })),
];

const MAX_CONTEXTS = 128;

/** The contexts and role selection items of a C-GET association: Q/R GET first (ID 1), then storage. */
export function getContexts(getSopClassUid: string, storage: readonly StorageContextSpec[]): { contexts: PresentationContextRq[]; roles: RoleSelection[] } {
  if (storage.length + 1 > MAX_CONTEXTS) throw new ScuError('INVALID_REQUEST', `at most ${MAX_CONTEXTS - 1} storage contexts fit beside the C-GET context`);
  const contexts: PresentationContextRq[] = [{ id: 1, abstractSyntax: getSopClassUid, transferSyntaxes: [...NATIVE_TRANSFER_SYNTAXES] }];
  const roles = new Map<string, RoleSelection>();
  for (const s of storage) {
    if (s.transferSyntaxes.length === 0) throw new ScuError('INVALID_REQUEST', `no transfer syntax for ${s.sopClassUid}`);
    contexts.push({ id: 2 * contexts.length + 1, abstractSyntax: s.sopClassUid, transferSyntaxes: [...s.transferSyntaxes] });
    // We take the SCP role of the storage class: the peer's sub-operations are C-STOREs to us.
    roles.set(s.sopClassUid, { sopClassUid: s.sopClassUid, scuRole: false, scpRole: true });
  }
  return { contexts, roles: [...roles.values()] };
}

function outcomeOf(status: number): RetrievedInstanceResult['outcome'] {
  if (status === Status.SUCCESS) return 'success';
  if ((status & 0xf000) === 0xb000) return 'warning';
  return 'failure';
}

function sinkAnswer(outcome: GetSinkOutcome): { status: number; comment?: string } {
  if ('status' in outcome && typeof outcome.status === 'number') return { status: outcome.status, ...(outcome.errorComment ? { comment: outcome.errorComment } : {}) };
  const ingest = outcome as IngestOutcome;
  return { status: storeStatus(ingest), ...(!ingest.ok && ingest.message ? { comment: ingest.message } : {}) };
}

interface StoreHandling {
  assoc: ScuAssociation;
  sourceAe: string;
  sink: GetSink;
  onInstance?: (result: RetrievedInstanceResult) => void;
  totals: { received: number; bytes: number };
}

/** One C-STORE-RQ of the peer: its data set into the sink, the sink's outcome into the response. */
async function takeStore(h: StoreHandling, msg: ReceivedMessage): Promise<CommandSet> {
  const req = msg.command;
  const sopClassUid = req.affectedSopClassUid ?? '';
  const sopInstanceUid = req.affectedSopInstanceUid ?? '';
  const respond = (status: number, comment?: string): CommandSet => ({
    commandField: (req.commandField | 0x8000) & 0xffff,
    commandDataSetType: NO_DATA_SET,
    ...(sopClassUid !== '' ? { affectedSopClassUid: sopClassUid } : {}),
    ...(sopInstanceUid !== '' ? { affectedSopInstanceUid: sopInstanceUid } : {}),
    ...(req.messageId !== undefined ? { messageIdBeingRespondedTo: req.messageId } : {}),
    status,
    // Error Comment (0000,0902) is LO: 64 characters.
    ...(comment && status !== Status.SUCCESS ? { errorComment: comment.slice(0, 64) } : {}),
  });
  const dataSet = msg.dataStream;
  const ctx = h.assoc.accepted.get(msg.contextId);
  // PS3.7 9.1: a message on a context that was not accepted is a protocol error (the caller aborts).
  if (ctx === undefined) throw new ScuError('PROTOCOL_ERROR', `request 0x${req.commandField.toString(16)} on presentation context ${msg.contextId}, which was not accepted`);
  if (req.commandField !== CommandField.C_STORE_RQ) {
    if (dataSet) await drainDataSet(dataSet);
    return respond(Status.UNRECOGNIZED_OPERATION);
  }
  if (dataSet === undefined) return respond(Status.CANNOT_UNDERSTAND, 'no data set');
  h.totals.received++;
  const report = (status: number, bytes: number, error?: string): CommandSet => {
    h.onInstance?.({ sopClassUid, sopInstanceUid, transferSyntaxUid: ctx.transferSyntax, status, outcome: outcomeOf(status), bytes, ...(error ? { error } : {}) });
    return respond(status, error);
  };
  if (sopClassUid !== ctx.abstractSyntax) {
    await drainDataSet(dataSet);
    return report(Status.SOP_CLASS_NOT_SUPPORTED, 0, 'Affected SOP Class differs from the presentation context');
  }
  if (sopInstanceUid === '') {
    await drainDataSet(dataSet);
    return report(Status.CANNOT_UNDERSTAND, 0, 'no Affected SOP Instance UID');
  }
  const stream = part10Stream({ sopClassUid, sopInstanceUid, transferSyntaxUid: ctx.transferSyntax, sourceAeTitle: h.sourceAe }, dataSet);
  let answer: { status: number; comment?: string };
  try {
    answer = sinkAnswer(await h.sink({ sopClassUid, sopInstanceUid, transferSyntaxUid: ctx.transferSyntax, sourceAe: h.sourceAe, part10: stream.body }));
  } catch (err) {
    answer = { status: Status.PROCESSING_FAILURE, comment: err instanceof Error ? err.message : String(err) };
  }
  // What the sink left unread is taken off the association before we answer.
  await drainDataSet(dataSet);
  h.totals.bytes += stream.dataSetBytes;
  return report(answer.status, stream.dataSetBytes, answer.comment);
}

export async function getInstances(deps: RetrieveDeps, target: ScuTarget, request: RetrieveRequest, options: GetOptions): Promise<GetResult> {
  const identifier = retrieveIdentifier(request);
  if (typeof options?.sink !== 'function') throw new ScuError('INVALID_REQUEST', 'C-GET needs a sink for the instances');
  const sopClass = getSopClass(request);
  const { contexts, roles } = getContexts(sopClass, options.storageContexts ?? DEFAULT_GET_STORAGE_CONTEXTS);
  const assoc = await openForRetrieve({
    target,
    callingAe: deps.callingAe,
    contexts,
    roleSelections: roles,
    timeoutMs: deps.timeoutMs,
    maxPduLength: deps.maxPduLength,
    logger: deps.logger,
    operation: 'C-GET',
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const totals = { received: 0, bytes: 0 };
  const handling: StoreHandling = { assoc, sourceAe: target.calledAe, sink: options.sink, totals, ...(options.onInstance ? { onInstance: options.onInstance } : {}) };
  try {
    const result = await exchangeRetrieve({
      assoc,
      target,
      operation: 'C-GET',
      sopClass,
      identifier,
      timeoutMs: deps.timeoutMs,
      options,
      onRequest: (msg) => takeStore(handling, msg),
    });
    await assoc.release();
    return { ...result, received: totals.received, bytesReceived: totals.bytes };
  } catch (err) {
    if (!assoc.closed) {
      if (err instanceof ScuError && err.code === 'DIMSE_FAILURE') await assoc.release();
      else assoc.abort(err instanceof Error ? err.message : 'failed');
    }
    if (err instanceof ScuError) Object.assign(err.details, { received: totals.received });
    throw err;
  }
}
