// STOW-RS throughput: 0.5 MB CT slices, one study of `batchSize` slices per request, `concurrency`
// clients, a fixed number of instances.
import { ctPixels, encodeInstance, makePatient, makeSeries, type EncodedInstance, type StudyAttributes } from '../dataset.js';
import { keepAliveAgent, stow } from '../http-client.js';
import { runPool } from '../pool.js';
import { MB, nowMs, percentile } from '../stats.js';
import { generateUid } from '../../src/dicom/uids.js';

export interface StowOptions {
  readonly baseUrl: string;
  readonly concurrency: number;
  readonly deadline: number;
  readonly requestTimeoutMs: number;
}

export interface StoredStudy {
  readonly studyUid: string;
  readonly seriesUid: string;
  readonly sopInstanceUids: readonly string[];
  /** Part-10 bytes of each instance as sent, in the order of sopInstanceUids. */
  readonly instanceBytes: readonly number[];
  /** Part-10 bytes of the study as sent. */
  readonly bytes: number;
}

export interface StowFigures {
  readonly instances: number;
  readonly batches: number;
  readonly instanceBytes: number;
  readonly seconds: number;
  readonly instancesPerSecond: number;
  readonly megabytesPerSecond: number;
  readonly batchMsP50: number;
  readonly batchMsP95: number;
}

const ROWS = 512;
const COLUMNS = 512;

/** One CT study per batch: `size` slices of one series. Headers are encoded now, pixels shared. */
function ctStudy(index: number, size: number, pixels: Buffer): EncodedInstance[] {
  const study: StudyAttributes = {
    patient: makePatient(1_000_000 + index),
    studyUid: generateUid(),
    studyDate: '20240315',
    studyTime: '101500',
    accessionNumber: `CT${String(index).padStart(8, '0')}`,
    studyId: String(index),
    description: 'CT CHEST W CONTRAST',
    modality: 'CT',
  };
  const series = makeSeries(1);
  return Array.from({ length: size }, (_, i) => encodeInstance({ study, series, instanceNumber: i + 1, rows: ROWS, columns: COLUMNS, pixels }));
}

/** The request bodies, encoded before the clock starts (the load generator shares the machine). */
export function prepareStow(instances: number, batchSize: number): EncodedInstance[][] {
  const batches = Math.ceil(instances / batchSize);
  // A few pixel buffers so that consecutive instances are not byte-identical
  const pixelSets = [1, 2, 3, 4].map((seed) => ctPixels(ROWS, COLUMNS, seed));
  return Array.from({ length: batches }, (_, b) =>
    ctStudy(b, Math.min(batchSize, instances - b * batchSize), pixelSets[b % pixelSets.length] as Buffer),
  );
}

export async function runStow(o: StowOptions, bodies: readonly EncodedInstance[][]): Promise<{ figures: StowFigures; studies: StoredStudy[] }> {
  const batches = bodies.length;
  const agent = keepAliveAgent(o.concurrency);
  const batchMs: number[] = [];
  let bytes = 0;
  let stored = 0;
  const started = nowMs();
  try {
    await runPool({ tasks: batches, concurrency: o.concurrency, deadline: o.deadline, label: 'STOW-RS' }, async (b) => {
      const result = await stow(o.baseUrl, bodies[b] as EncodedInstance[], agent, o.requestTimeoutMs);
      batchMs.push(result.ms);
      bytes += result.bytes;
      stored += result.stored;
    });
  } finally {
    agent.destroy();
  }
  const seconds = (nowMs() - started) / 1000;
  const studies = bodies.map((instances) => ({
    studyUid: instances[0]?.studyUid ?? '',
    seriesUid: instances[0]?.seriesUid ?? '',
    sopInstanceUids: instances.map((i) => i.sopInstanceUid),
    instanceBytes: instances.map((i) => i.bytes),
    bytes: instances.reduce((n, i) => n + i.bytes, 0),
  }));
  return {
    figures: {
      instances: stored,
      batches,
      instanceBytes: bodies[0]?.[0]?.bytes ?? 0,
      seconds,
      instancesPerSecond: stored / seconds,
      megabytesPerSecond: bytes / MB / seconds,
      batchMsP50: percentile(batchMs, 0.5),
      batchMsP95: percentile(batchMs, 0.95),
    },
    studies,
  };
}
