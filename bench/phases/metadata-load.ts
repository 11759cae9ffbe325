// The production QIDO corpus: studies committed straight through the PostgreSQL MetadataStore
// (commitInstance, one short transaction each, several at once), not through HTTP — 100,000
// studies over STOW-RS would measure ingest, not search. Each study holds one small synthetic
// instance whose indexed columns come from the ingest's own extractIndexValues, so the rows are
// those STOW-RS would write; the blob keys point at nothing (these instances are never retrieved).
import { randomBytes, randomUUID } from 'node:crypto';
import { extractIndexValues } from '../../src/archive/ingest/index-values.js';
import { levelHeaders } from '../../src/dicom/levels.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { generateUid } from '../../src/dicom/uids.js';
import type { InstanceRecord } from '../../src/storage/metadata.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { EXPLICIT_VR_LITTLE_ENDIAN, makeStudy, type StudyAttributes } from '../dataset.js';
import { runPool } from '../pool.js';
import { nowMs } from '../stats.js';
import type { Corpus, QidoLoadFigures } from './qido.js';

export interface DirectLoadOptions {
  readonly databaseUrl: string;
  readonly studies: number;
  /** Commits in flight at once (also the pool size). */
  readonly concurrency: number;
  /** Studies per batch (records are built per batch, before its commits). */
  readonly batchSize: number;
  readonly deadline: number;
  readonly onBatch?: (done: number) => void;
}

const SOP_CLASS_CT = '1.2.840.10008.5.1.4.1.1.2';

function header(s: StudyAttributes, seriesUid: string, sopUid: string): DicomJsonDataset {
  return {
    '00080005': { vr: 'CS', Value: ['ISO_IR 100'] },
    '00080016': { vr: 'UI', Value: [SOP_CLASS_CT] },
    '00080018': { vr: 'UI', Value: [sopUid] },
    '00080020': { vr: 'DA', Value: [s.studyDate] },
    '00080030': { vr: 'TM', Value: [s.studyTime] },
    '00080050': { vr: 'SH', Value: [s.accessionNumber] },
    '00080060': { vr: 'CS', Value: [s.modality] },
    '00080090': { vr: 'PN', Value: [{ Alphabetic: 'HOUSE^GREGORY^^DR' }] },
    '00081030': { vr: 'LO', Value: [s.description] },
    '00100010': { vr: 'PN', Value: [{ Alphabetic: s.patient.name }] },
    '00100020': { vr: 'LO', Value: [s.patient.id] },
    '00100030': { vr: 'DA', Value: [s.patient.birthDate] },
    '00100040': { vr: 'CS', Value: [s.patient.sex] },
    '0020000D': { vr: 'UI', Value: [s.studyUid] },
    '0020000E': { vr: 'UI', Value: [seriesUid] },
    '00200010': { vr: 'SH', Value: [s.studyId] },
    '00200011': { vr: 'IS', Value: [1] },
    '00200013': { vr: 'IS', Value: [1] },
    '00280010': { vr: 'US', Value: [8] },
    '00280011': { vr: 'US', Value: [8] },
  };
}

function record(s: StudyAttributes): InstanceRecord {
  const seriesUid = generateUid();
  const sopUid = generateUid();
  const ds = header(s, seriesUid, sopUid);
  const index = extractIndexValues(ds);
  return {
    studyUid: s.studyUid,
    seriesUid,
    sopUid,
    patient: index.patient,
    study: index.study,
    series: index.series,
    instance: { sop_class_uid: SOP_CLASS_CT, ...index.instance },
    header: ds,
    levelHeaders: levelHeaders(ds),
    transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN,
    blob: { key: `bench/${randomUUID()}.dcm`, size: 2048, sha256: randomBytes(32).toString('hex') },
    receivedAt: new Date(),
  };
}

/** Loads `studies` single-instance studies over 0.4 x studies patients; returns what searches may ask for. */
export async function loadStudiesDirect(o: DirectLoadOptions): Promise<{ figures: QidoLoadFigures; corpus: Corpus }> {
  const patients = Math.max(1, Math.round(o.studies * 0.4));
  const stores = createPostgresStores({ url: o.databaseUrl, maxConnections: o.concurrency });
  const patientIds = new Set<string>();
  const accessionNumbers: string[] = [];
  let stored = 0;
  const started = nowMs();
  try {
    for (let first = 0; first < o.studies; first += o.batchSize) {
      const batch = Array.from({ length: Math.min(o.batchSize, o.studies - first) }, (_, i) => makeStudy(first + i, patients));
      const records = batch.map(record);
      await runPool({ tasks: records.length, concurrency: o.concurrency, deadline: o.deadline, label: 'MetadataStore load' }, async (i) => {
        const result = await stores.metadata.commitInstance(records[i] as InstanceRecord, { onDuplicate: 'replace', onPatientMismatch: 'accept' });
        if (result.kind !== 'stored') throw new Error(`commitInstance answered ${result.kind} for a new study`);
        stored++;
      });
      for (const s of batch) {
        patientIds.add(s.patient.id);
        accessionNumbers.push(s.accessionNumber);
      }
      o.onBatch?.(stored);
    }
  } finally {
    await stores.close();
  }
  const seconds = (nowMs() - started) / 1000;
  return {
    figures: { studies: stored, seconds, instancesPerSecond: stored / seconds, megabytesPerSecond: 0 },
    corpus: { patientIds: [...patientIds], accessionNumbers, studies: stored },
  };
}
