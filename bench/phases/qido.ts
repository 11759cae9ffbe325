// QIDO-RS latency: load a corpus of single-instance studies, then run study searches of varied
// kinds one after another on one connection.
import { ctPixels, DATE_SPAN_DAYS, dicomDate, encodeInstance, FIRST_STUDY_DATE, makeSeries, makeStudy, MODALITIES, pick, prng, type EncodedInstance, type StudyAttributes } from '../dataset.js';
import { keepAliveAgent, request, stow } from '../http-client.js';
import { runPool } from '../pool.js';
import { mean, MB, nowMs, percentile } from '../stats.js';

export interface QidoLoadOptions {
  readonly baseUrl: string;
  readonly concurrency: number;
  readonly deadline: number;
  readonly requestTimeoutMs: number;
}

export interface QidoLoadFigures {
  readonly studies: number;
  readonly seconds: number;
  readonly instancesPerSecond: number;
  readonly megabytesPerSecond: number;
}

/** What the searches may ask for: values that exist in the loaded corpus. */
export interface Corpus {
  readonly patientIds: readonly string[];
  readonly accessionNumbers: readonly string[];
  readonly studies: number;
}

export interface PreparedCorpus {
  readonly bodies: readonly EncodedInstance[][];
  readonly corpus: Corpus;
}

/**
 * `studies` single-instance studies (8x8 pixels) over 0.4 x studies patients, in request bodies of
 * `batchSize`, encoded before the clock starts (the load generator shares the machine).
 */
export function prepareCorpus(studies: number, batchSize: number): PreparedCorpus {
  const patients = Math.max(1, Math.round(studies * 0.4));
  const pixels = ctPixels(8, 8, 42);
  const attrs: StudyAttributes[] = Array.from({ length: studies }, (_, i) => makeStudy(i, patients));
  const batches = Math.ceil(studies / batchSize);
  const bodies: EncodedInstance[][] = Array.from({ length: batches }, (_, b) =>
    attrs.slice(b * batchSize, (b + 1) * batchSize).map((study) => encodeInstance({ study, series: makeSeries(1), instanceNumber: 1, rows: 8, columns: 8, pixels })),
  );
  return {
    bodies,
    corpus: { patientIds: [...new Set(attrs.map((a) => a.patient.id))], accessionNumbers: attrs.map((a) => a.accessionNumber), studies },
  };
}

export async function loadCorpus(o: QidoLoadOptions, prepared: PreparedCorpus): Promise<QidoLoadFigures> {
  const { bodies } = prepared;
  const batches = bodies.length;
  const agent = keepAliveAgent(o.concurrency);
  let bytes = 0;
  let stored = 0;
  const started = nowMs();
  try {
    await runPool({ tasks: batches, concurrency: o.concurrency, deadline: o.deadline, label: 'QIDO corpus load' }, async (b) => {
      const result = await stow(o.baseUrl, bodies[b] as EncodedInstance[], agent, o.requestTimeoutMs);
      bytes += result.bytes;
      stored += result.stored;
    });
  } finally {
    agent.destroy();
  }
  const seconds = (nowMs() - started) / 1000;
  if (stored !== prepared.corpus.studies) throw new Error(`QIDO corpus load stored ${stored} of ${prepared.corpus.studies} studies`);
  return { studies: stored, seconds, instancesPerSecond: stored / seconds, megabytesPerSecond: bytes / MB / seconds };
}

// ---------------------------------------------------------------------------------------------

export const SEARCH_KINDS = ['PatientID', 'PatientName DOE*', 'StudyDate range', 'AccessionNumber', 'ModalitiesInStudy', 'no filter limit=100', 'PatientName *ohn*'] as const;
export type SearchKind = (typeof SEARCH_KINDS)[number];

export interface LatencyFigures {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  /** Mean number of studies per answer: shows what each kind actually asked the index. */
  readonly meanResults: number;
}

export interface QidoSearchOptions {
  readonly baseUrl: string;
  readonly corpus: Corpus;
  readonly searches: number;
  readonly deadline: number;
  readonly requestTimeoutMs: number;
}

/** PatientName searches with a wildcard (prefix `DOE*` and infix `*ohn*`): aimed at separately. */
export const WILDCARD_KINDS: ReadonlySet<SearchKind> = new Set<SearchKind>(['PatientName DOE*', 'PatientName *ohn*']);

export interface QidoSearchFigures {
  readonly overall: LatencyFigures;
  /** Every kind except the wildcard name searches. */
  readonly study: LatencyFigures;
  /** The wildcard name searches. */
  readonly wildcardName: LatencyFigures;
  readonly byKind: Readonly<Record<SearchKind, LatencyFigures>>;
}

const NAME_PREFIXES = ['DOE*', 'doe*', 'Doe*'];

function searchQuery(kind: SearchKind, rand: () => number, corpus: Corpus): string {
  switch (kind) {
    case 'PatientID':
      return `PatientID=${encodeURIComponent(pick(rand, corpus.patientIds))}`;
    case 'PatientName DOE*':
      return `PatientName=${encodeURIComponent(pick(rand, NAME_PREFIXES))}`;
    case 'StudyDate range': {
      const from = FIRST_STUDY_DATE + Math.floor(rand() * (DATE_SPAN_DAYS - 30)) * 86_400_000;
      return `StudyDate=${dicomDate(from)}-${dicomDate(from + 30 * 86_400_000)}`;
    }
    case 'AccessionNumber':
      return `AccessionNumber=${encodeURIComponent(pick(rand, corpus.accessionNumbers))}`;
    case 'ModalitiesInStudy':
      return `ModalitiesInStudy=${pick(rand, MODALITIES)}`;
    case 'no filter limit=100':
      return 'limit=100';
    case 'PatientName *ohn*':
      return `PatientName=${encodeURIComponent('*ohn*')}`;
  }
}

/** Kinds whose query values come from the corpus, so an empty answer is a bug, not a miss. */
const MUST_MATCH: ReadonlySet<SearchKind> = new Set<SearchKind>(['PatientID', 'AccessionNumber', 'PatientName DOE*', 'ModalitiesInStudy', 'no filter limit=100', 'PatientName *ohn*']);

function latency(ms: readonly number[], results: readonly number[]): LatencyFigures {
  return {
    count: ms.length,
    p50: percentile(ms, 0.5),
    p95: percentile(ms, 0.95),
    p99: percentile(ms, 0.99),
    max: ms.length === 0 ? Number.NaN : Math.max(...ms),
    meanResults: mean(results),
  };
}

export async function runSearches(o: QidoSearchOptions): Promise<QidoSearchFigures> {
  const rand = prng(7);
  const agent = keepAliveAgent(1);
  const samples = new Map<SearchKind, { ms: number[]; results: number[] }>(SEARCH_KINDS.map((k) => [k, { ms: [], results: [] }]));
  const search = async (kind: SearchKind): Promise<{ ms: number; results: number }> => {
    const url = `${o.baseUrl}/studies?${searchQuery(kind, rand, o.corpus)}`;
    const res = await request(url, { agent, headers: { accept: 'application/dicom+json' }, timeoutMs: o.requestTimeoutMs, collect: true });
    if (res.status !== 200) throw new Error(`QIDO-RS ${url} answered ${res.status}: ${(res.body ?? Buffer.alloc(0)).toString('utf8').slice(0, 300)}`);
    const doc: unknown = JSON.parse((res.body ?? Buffer.alloc(0)).toString('utf8'));
    if (!Array.isArray(doc)) throw new Error(`QIDO-RS ${url} did not answer a JSON array`);
    if (doc.length === 0 && MUST_MATCH.has(kind)) throw new Error(`QIDO-RS ${url} found nothing, but the corpus holds matches`);
    return { ms: res.ms, results: doc.length };
  };
  try {
    // Warm-up, not counted: one search of each kind (JIT, SQLite page cache, prepared statements)
    for (const kind of SEARCH_KINDS) await search(kind);
    for (let i = 0; i < o.searches; i++) {
      if (Date.now() > o.deadline) throw new Error(`QIDO-RS searches: time budget exceeded after ${i} of ${o.searches}`);
      const kind = SEARCH_KINDS[i % SEARCH_KINDS.length] as SearchKind;
      const { ms, results } = await search(kind);
      const s = samples.get(kind);
      s?.ms.push(ms);
      s?.results.push(results);
    }
  } finally {
    agent.destroy();
  }
  const all = [...samples.values()];
  const byKind = Object.fromEntries(SEARCH_KINDS.map((k) => {
    const s = samples.get(k) ?? { ms: [], results: [] };
    return [k, latency(s.ms, s.results)];
  })) as Record<SearchKind, LatencyFigures>;
  const group = (wildcard: boolean): LatencyFigures => {
    const picked = SEARCH_KINDS.filter((k) => WILDCARD_KINDS.has(k) === wildcard).map((k) => samples.get(k) ?? { ms: [], results: [] });
    return latency(picked.flatMap((s) => s.ms), picked.flatMap((s) => s.results));
  };
  return { overall: latency(all.flatMap((s) => s.ms), all.flatMap((s) => s.results)), study: group(false), wildcardName: group(true), byKind };
}
