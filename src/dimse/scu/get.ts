/**
 * C-GET SCU (PS3.4 C.4.3, PS3.7 9.1.3): the peer sends the instances back as C-STORE sub-operations
 * on the same association, so we propose, besides the Q/R GET context, storage contexts with an
 * SCP/SCU Role Selection item each (SCP role; PS3.7 D.3.3.4) and take the C-STOREs as they come:
 * each data set is streamed, behind a File Meta we build, into a sink the caller gives (the
 * archive's ingest, a directory of files), never held whole; the sink's outcome becomes the
 * C-STORE-RSP status. The counts of the pending C-GET-RSPs and the final status are reported like
 * C-MOVE's (move.ts, which holds the shared exchange).
 *
 * The SCP accepts one transfer syntax per presentation context and a C-GET cannot renegotiate, so
 * a compressed instance arrives unchanged only on a context of its own syntax: we propose one
 * context per (SOP class, compressed syntax). Callers that can ask first (the REST route, the CLI)
 * run planGetFromPeer — a C-FIND at IMAGE level for the SOP classes that will come — and propose
 * exactly those classes; otherwise DEFAULT_GET_STORAGE_CONTEXTS.
 */
import type { IngestOutcome } from '../../archive/ingest/outcome.js';
import type { DicomJsonDataset } from '../../dicom/types.js';
import {
  DEFLATED_EXPLICIT_VR_LE,
  EXPLICIT_VR_LE,
  HTJ2K,
  HTJ2K_LOSSLESS,
  HTJ2K_LOSSLESS_RPCL,
  IMPLICIT_VR_LE,
  isKnownTransferSyntax,
  JPEG_2000,
  JPEG_2000_LOSSLESS,
  JPEG_BASELINE,
  JPEG_EXTENDED,
  JPEG_LOSSLESS,
  JPEG_LOSSLESS_SV1,
  JPEG_LS_LOSSLESS,
  JPEG_LS_NEAR_LOSSLESS,
  RLE_LOSSLESS,
  transferSyntax,
} from '../../dicom/transfer-syntax.js';
import { CommandField, NO_DATA_SET, type CommandSet } from '../message/command.js';
import { drainDataSet, part10Stream } from '../message/part10-stream.js';
import { Status, storeOutcomeOf, storeStatus } from '../message/status.js';
import type { PresentationContextRq, RoleSelection } from '../pdu/types.js';
import type { ReceivedMessage, ScuAssociation, ScuTarget } from './association.js';
import { logDetail, ScuError } from './errors.js';
import { exchangeRetrieve, getSopClass, openForRetrieve, retrieveIdentifier, retrieveModel, type RetrieveDeps, type RetrieveOptions, type RetrieveRequest, type RetrieveResult } from './move.js';

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
  /**
   * The storage contexts to propose instead of DEFAULT_GET_STORAGE_CONTEXTS (at most 127), e.g. the
   * plan of planGetFromPeer; an explicit list is proposed as given.
   */
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

/**
 * Compressed (and deflated) syntaxes we store as they come, most common first: each gets a
 * presentation context of its own per SOP class, because the SCP accepts one transfer syntax per
 * context and a C-GET cannot renegotiate. The order is the order contexts are dropped in when 128
 * do not fit (the last first).
 */
export const COMPRESSED_TRANSFER_SYNTAXES: readonly string[] = [
  JPEG_BASELINE,
  JPEG_LOSSLESS_SV1,
  RLE_LOSSLESS,
  JPEG_2000_LOSSLESS,
  JPEG_2000,
  JPEG_LS_LOSSLESS,
  JPEG_EXTENDED,
  JPEG_LOSSLESS,
  JPEG_LS_NEAR_LOSSLESS,
  HTJ2K_LOSSLESS,
  HTJ2K_LOSSLESS_RPCL,
  HTJ2K,
  DEFLATED_EXPLICIT_VR_LE,
];

/** The compressed syntaxes of the default list: the 4 met most. */
export const DEFAULT_COMPRESSED_TRANSFER_SYNTAXES: readonly string[] = [JPEG_BASELINE, JPEG_LOSSLESS_SV1, RLE_LOSSLESS, JPEG_2000_LOSSLESS];

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

/** The image classes met most (CT, MR, CR, DX, MG, US, US multi-frame, SC, XA, NM, PT, RF): the default list gives them compressed contexts. */
export const COMMON_IMAGE_SOP_CLASSES: readonly string[] = [
  '1.2.840.10008.5.1.4.1.1.2', // CT
  '1.2.840.10008.5.1.4.1.1.4', // MR
  '1.2.840.10008.5.1.4.1.1.1', // Computed Radiography
  '1.2.840.10008.5.1.4.1.1.1.1', // Digital X-Ray, For Presentation
  '1.2.840.10008.5.1.4.1.1.1.2', // Digital Mammography X-Ray, For Presentation
  '1.2.840.10008.5.1.4.1.1.6.1', // Ultrasound
  '1.2.840.10008.5.1.4.1.1.3.1', // Ultrasound Multi-frame
  '1.2.840.10008.5.1.4.1.1.7', // Secondary Capture
  '1.2.840.10008.5.1.4.1.1.12.1', // X-Ray Angiographic
  '1.2.840.10008.5.1.4.1.1.20', // Nuclear Medicine
  '1.2.840.10008.5.1.4.1.1.128', // PET
  '1.2.840.10008.5.1.4.1.1.12.2', // X-Ray Radiofluoroscopic
];

/** Photographic classes, nearly always JPEG baseline: the default list gives them a JPEG baseline context with the room left. */
export const PHOTO_IMAGE_SOP_CLASSES: readonly string[] = [
  '1.2.840.10008.5.1.4.1.1.77.1.4', // VL Photographic
  '1.2.840.10008.5.1.4.1.1.77.1.1', // VL Endoscopic
  '1.2.840.10008.5.1.4.1.1.77.1.2', // VL Microscopic
  '1.2.840.10008.5.1.4.1.1.77.1.5.1', // Ophthalmic Photography 8 Bit
  '1.2.840.10008.5.1.4.1.1.77.1.6', // VL Whole Slide Microscopy
  '1.2.840.10008.5.1.4.1.1.7.2', // Multi-frame Grayscale Byte SC
  '1.2.840.10008.5.1.4.1.1.7.4', // Multi-frame True Color SC
  '1.2.840.10008.5.1.4.1.1.1.3', // Digital Intra-Oral X-Ray, For Presentation
];

/** Storage contexts beside the Q/R GET one: PS3.8 9.3.2.2 allows 128 presentation contexts (odd IDs 1–255). */
export const MAX_STORAGE_CONTEXTS = 127;

const NON_IMAGE = new Set(NON_IMAGE_STORAGE_SOP_CLASSES);

/**
 * The storage contexts a C-GET proposes when nothing tells us what will come (the C-FIND before it,
 * planGetStorageContexts, failed or found nothing; or Scu.get is called without storageContexts).
 * First {Explicit, Implicit VR LE} for each of the 39 image and 32 non-image SOP classes — first
 * because an SCP that sends on the first context it finds for a SOP class (as DCMTK's dcmqrscp
 * does) then sends native data, which it can always make; then, since an SCP accepts one transfer
 * syntax per context, one context PER compressed syntax: JPEG baseline, JPEG lossless SV1, RLE
 * and JPEG 2000 lossless for the 12 common classes (COMMON_IMAGE_SOP_CLASSES), and JPEG baseline
 * for 8 photographic ones. 71 + 12 * 4 + 8 = 127 storage contexts, with the Q/R GET one 128. An
 * instance of a class outside these lists, or compressed in another syntax, arrives only if the SCP
 * can decompress it to a native syntax.
 */
export const DEFAULT_GET_STORAGE_CONTEXTS: readonly StorageContextSpec[] = [
  ...IMAGE_STORAGE_SOP_CLASSES.map((sopClassUid) => ({ sopClassUid, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES })),
  ...NON_IMAGE_STORAGE_SOP_CLASSES.map((sopClassUid) => ({ sopClassUid, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES })),
  ...COMMON_IMAGE_SOP_CLASSES.flatMap((sopClassUid) => DEFAULT_COMPRESSED_TRANSFER_SYNTAXES.map((ts) => ({ sopClassUid, transferSyntaxes: [ts] }))),
  ...PHOTO_IMAGE_SOP_CLASSES.map((sopClassUid) => ({ sopClassUid, transferSyntaxes: [JPEG_BASELINE] })),
];

/** What a C-FIND said will come: a SOP class, how many instances of it, and their transfer syntaxes when the peer said. */
export interface GetContentClass {
  sopClassUid: string;
  instances: number;
  /** Empty or absent: not known (the peer did not return them). */
  transferSyntaxes?: readonly string[];
}

/** A syntax the native context carries: the SCP re-encodes between these (Big Endian included). */
function isNative(ts: string): boolean {
  const t = transferSyntax(ts);
  return t !== undefined && !t.encapsulated && !t.deflated;
}

/**
 * The storage contexts for what will come: per SOP class {Explicit, Implicit VR LE}, then one
 * context per compressed syntax — exactly the syntaxes the peer named for the class when it named
 * them (those we know; a native one needs nothing more), else every syntax of
 * COMPRESSED_TRANSFER_SYNTAXES (non-image classes: deflated only). At most `limit` (127): the
 * native contexts of every class first (classes with the most instances first, if even those do
 * not fit), then the compressed ones class by class, most instances first, each class's in the
 * order of COMPRESSED_TRANSFER_SYNTAXES, until the limit. What is left out then (a documented cap:
 * no second association) arrives only if the SCP can send it natively. In the list, a class's
 * native context comes before its compressed ones (an SCP that sends on the first context it
 * accepted for the class, as DCMTK's dcmqrscp does, then sends native data), except for a class
 * the peer said comes compressed only: its contexts lead.
 */
export function planGetStorageContexts(classes: readonly GetContentClass[], limit = MAX_STORAGE_CONTEXTS): StorageContextSpec[] {
  const merged = new Map<string, { instances: number; syntaxes: Set<string> }>();
  for (const c of classes) {
    const sop = c.sopClassUid.trim();
    if (sop === '') continue;
    const m = merged.get(sop) ?? { instances: 0, syntaxes: new Set<string>() };
    m.instances += c.instances;
    for (const ts of c.transferSyntaxes ?? []) if (ts.trim() !== '') m.syntaxes.add(ts.trim());
    merged.set(sop, m);
  }
  const ordered = [...merged.entries()].sort((a, b) => b[1].instances - a[1].instances).slice(0, Math.max(0, limit));
  const natives: StorageContextSpec[] = ordered.map(([sopClassUid]) => ({ sopClassUid, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES }));
  const compressedOf: StorageContextSpec[] = [];
  // Classes known to come compressed only: their contexts go before the native ones, for an SCP that
  // sends on the first context it accepted for the class.
  const compressedOnly = new Set<string>();
  for (const [sopClassUid, { syntaxes }] of ordered) {
    let compressed: readonly string[];
    if (syntaxes.size > 0) {
      const named = [...syntaxes].filter((ts) => isKnownTransferSyntax(ts) && !isNative(ts));
      // The known ones in our order of preference, then any other we know.
      compressed = [...COMPRESSED_TRANSFER_SYNTAXES.filter((ts) => named.includes(ts)), ...named.filter((ts) => !COMPRESSED_TRANSFER_SYNTAXES.includes(ts))];
      if (named.length > 0 && [...syntaxes].every((ts) => !isNative(ts))) compressedOnly.add(sopClassUid);
    } else {
      compressed = NON_IMAGE.has(sopClassUid) ? [DEFLATED_EXPLICIT_VR_LE] : COMPRESSED_TRANSFER_SYNTAXES;
    }
    for (const ts of compressed) {
      if (natives.length + compressedOf.length >= limit) break;
      compressedOf.push({ sopClassUid, transferSyntaxes: [ts] });
    }
  }
  const lead = compressedOf.filter((c) => compressedOnly.has(c.sopClassUid));
  return [...lead, ...natives, ...compressedOf.filter((c) => !compressedOnly.has(c.sopClassUid))];
}

/** The C-FIND as the callers' SCU ports offer it (Scu.find, and NodeScu.find of the REST routes). */
export type GetPlanFind = (
  target: ScuTarget,
  request: { level: 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE'; model: 'study' | 'patient'; keys: Record<string, string | null>; returnKeys: string[]; signal?: AbortSignal },
) => AsyncIterable<DicomJsonDataset>;

/** What planGetFromPeer found. */
export interface GetPlan {
  /** The contexts to propose (pass as GetOptions.storageContexts); absent: use the default list. */
  storageContexts?: StorageContextSpec[];
  /** The SOP classes found (empty when the C-FIND failed or matched nothing). */
  classes: GetContentClass[];
  /** Why the default list is used, when it is. */
  fallback?: string;
}

const SOP_CLASS_UID = '00080016';
const TRANSFER_SYNTAX_UID = '00020010';
const AVAILABLE_TRANSFER_SYNTAX_UID = '00083002';

function uidValues(ds: DicomJsonDataset, tag: string): string[] {
  const values = ds[tag]?.Value ?? ds[tag.toLowerCase()]?.Value ?? [];
  return values.filter((v): v is string => typeof v === 'string').map((v) => v.replace(/[\0 ]+$/, '').trim()).filter((v) => v !== '');
}

/**
 * Before a C-GET: a C-FIND at IMAGE level on the same peer for the same patient/study/series/
 * instances, asking for SOP Class UID (0008,0016) and Available Transfer Syntax UID (0008,3002)
 * (which some SCPs fill; a (0002,0010) in a response is taken too, but not asked for: a group 0002
 * key in an identifier makes some SCPs, ours included, fail the C-FIND), and the storage contexts
 * planned from the distinct classes (planGetStorageContexts). At STUDY and PATIENT level the query
 * is relational first (one C-FIND, which most SCPs answer); an SCP that refuses it (strictly
 * hierarchical ones such as DCMTK's dcmqrscp want the Series Instance UID at IMAGE level) is walked
 * down instead: its studies, their series, then one IMAGE C-FIND per series, each on an
 * association of its own. Only the classes and their counts are kept, never the matches. Never
 * rejects: a failed or empty C-FIND (or a peer without Q/R FIND) answers the fallback to the
 * default list.
 */
/** Matches a C-GET plan reads at most (a whole patient of many studies); then the default list serves. */
export const MAX_PLAN_MATCHES = 200_000;
/** Distinct SOP classes a plan keeps (planGetStorageContexts then picks the contexts among them). */
const MAX_PLAN_CLASSES = 1_000;
/** Studies, or series in all, the hierarchical walk of a plan visits at most. */
const MAX_PLAN_WALK = 10_000;
/** Transfer syntaxes kept per SOP class (a node naming more names nonsense). */
const MAX_PLAN_SYNTAXES = 64;

/** A plan stopped at one of its bounds: the C-FIND is cancelled and the default list serves. */
class PlanLimit extends Error {}

export async function planGetFromPeer(find: GetPlanFind, target: ScuTarget, request: RetrieveRequest, options: { signal?: AbortSignal; limit?: number } = {}): Promise<GetPlan> {
  const { signal } = options;
  const model = retrieveModel(request);
  const depth = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'].indexOf(request.level);
  const patientKeys: Record<string, string | null> = model === 'patient' && request.patientId !== undefined ? { PatientID: request.patientId } : {};
  const keys: Record<string, string | null> = { ...patientKeys };
  if (depth >= 1 && request.studyUid !== undefined) keys['StudyInstanceUID'] = request.studyUid;
  if (depth >= 2 && request.seriesUid !== undefined) keys['SeriesInstanceUID'] = request.seriesUid;
  if (depth >= 3 && request.sopUids !== undefined) keys['SOPInstanceUID'] = request.sopUids.join('\\');
  // A class's syntaxes count only when every match of it named one (else an unnamed one may be any).
  const found = new Map<string, { instances: number; syntaxes: Set<string>; unnamed: boolean }>();
  let seen = 0;
  const tally = (ds: DicomJsonDataset): void => {
    seen++;
    // The plan is only worth its bounds: past them the default list serves (PlanLimit, below).
    if (seen > MAX_PLAN_MATCHES) throw new PlanLimit(`more than ${MAX_PLAN_MATCHES} matches`);
    const sop = uidValues(ds, SOP_CLASS_UID)[0];
    if (sop === undefined) return;
    const c = found.get(sop) ?? { instances: 0, syntaxes: new Set<string>(), unnamed: false };
    if (!found.has(sop) && found.size >= MAX_PLAN_CLASSES) throw new PlanLimit(`more than ${MAX_PLAN_CLASSES} SOP classes`);
    c.instances++;
    const named = [...uidValues(ds, TRANSFER_SYNTAX_UID), ...uidValues(ds, AVAILABLE_TRANSFER_SYNTAX_UID)];
    if (named.length === 0) c.unnamed = true;
    for (const ts of named) if (c.syntaxes.size < MAX_PLAN_SYNTAXES) c.syntaxes.add(ts);
    found.set(sop, c);
  };
  const query = async (level: RetrieveRequest['level'], queryKeys: Record<string, string | null>, returnKeys: string[], onMatch: (ds: DicomJsonDataset) => void): Promise<void> => {
    for await (const ds of find(target, { level, model, keys: queryKeys, returnKeys, ...(signal ? { signal } : {}) })) {
      onMatch(ds);
      // Stopping early sends C-CANCEL; the C-GET then sees the aborted signal itself.
      if (signal?.aborted) return;
    }
  };
  const uidsAt = async (level: 'STUDY' | 'SERIES', queryKeys: Record<string, string | null>, tag: string, keyword: string): Promise<string[]> => {
    const uids = new Set<string>();
    await query(level, queryKeys, [keyword], (ds) => {
      for (const u of uidValues(ds, tag)) uids.add(u);
      if (uids.size > MAX_PLAN_WALK) throw new PlanLimit(`more than ${MAX_PLAN_WALK} ${level === 'STUDY' ? 'studies' : 'series'} to walk`);
    });
    return [...uids];
  };
  let walked = 0;
  const imageKeys = ['SOPClassUID', 'AvailableTransferSyntaxUID'];
  try {
    try {
      await query('IMAGE', keys, imageKeys, tally);
    } catch (err) {
      if (seen > 0 || depth >= 2 || signal?.aborted) throw err;
      const studies = depth === 1 && request.studyUid !== undefined ? [request.studyUid] : await uidsAt('STUDY', patientKeys, '0020000D', 'StudyInstanceUID');
      for (const study of studies) {
        const studyKeys = { ...patientKeys, StudyInstanceUID: study };
        for (const series of await uidsAt('SERIES', studyKeys, '0020000E', 'SeriesInstanceUID')) {
          // one IMAGE C-FIND (and association) per series: bounded over the whole walk, not per study
          if (++walked > MAX_PLAN_WALK) throw new PlanLimit(`more than ${MAX_PLAN_WALK} series to walk`);
          if (signal?.aborted) break;
          await query('IMAGE', { ...studyKeys, SeriesInstanceUID: series }, imageKeys, tally);
        }
      }
    }
  } catch (err) {
    if (err instanceof PlanLimit) return { classes: [], fallback: `the C-FIND found ${err.message}` };
    return { classes: [], fallback: `C-FIND failed: ${logDetail(err)}` };
  }
  const classes = [...found.entries()].map(([sopClassUid, c]) => ({ sopClassUid, instances: c.instances, ...(!c.unnamed ? { transferSyntaxes: [...c.syntaxes] } : {}) }));
  if (classes.length === 0) return { classes, fallback: 'the C-FIND matched no instance with a SOP Class UID' };
  return { storageContexts: planGetStorageContexts(classes, options.limit), classes };
}

const MAX_CONTEXTS = MAX_STORAGE_CONTEXTS + 1;

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
    h.onInstance?.({ sopClassUid, sopInstanceUid, transferSyntaxUid: ctx.transferSyntax, status, outcome: storeOutcomeOf(status), bytes, ...(error ? { error } : {}) });
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
    await assoc.endAfter(err);
    if (err instanceof ScuError) Object.assign(err.details, { received: totals.received });
    throw err;
  }
}
