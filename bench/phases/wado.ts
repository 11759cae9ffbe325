// WADO-RS throughput: whole studies as multipart/related; type="application/dicom", and single
// instances as application/dicom, `concurrency` clients, bytes counted as they arrive.
import { keepAliveAgent, request } from '../http-client.js';
import { runPool } from '../pool.js';
import { MB, nowMs, percentile } from '../stats.js';
import type { StoredStudy } from './stow.js';

export interface WadoOptions {
  readonly baseUrl: string;
  readonly studies: readonly StoredStudy[];
  readonly singleInstances: number;
  readonly concurrency: number;
  readonly deadline: number;
  readonly requestTimeoutMs: number;
}

export interface ThroughputFigures {
  readonly requests: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly megabytesPerSecond: number;
  readonly requestMsP50: number;
  readonly requestMsP95: number;
}

export interface WadoFigures {
  readonly study: ThroughputFigures;
  readonly instance: ThroughputFigures;
}

const MULTIPART_DICOM = 'multipart/related; type="application/dicom"';

async function measure(
  o: WadoOptions,
  label: string,
  tasks: number,
  target: (i: number) => { url: string; accept: string; minBytes: number; exactBytes?: number },
): Promise<ThroughputFigures> {
  const agent = keepAliveAgent(o.concurrency);
  const ms: number[] = [];
  let bytes = 0;
  const started = nowMs();
  try {
    await runPool({ tasks, concurrency: o.concurrency, deadline: o.deadline, label }, async (i) => {
      const t = target(i);
      const res = await request(t.url, { agent, headers: { accept: t.accept }, timeoutMs: o.requestTimeoutMs });
      if (res.status !== 200) throw new Error(`${label}: ${t.url} answered ${res.status}`);
      if (t.exactBytes !== undefined && res.bytes !== t.exactBytes) throw new Error(`${label}: ${t.url} sent ${res.bytes} bytes, not the ${t.exactBytes} stored`);
      if (res.bytes < t.minBytes) throw new Error(`${label}: ${t.url} sent ${res.bytes} bytes, expected at least ${t.minBytes}`);
      ms.push(res.ms);
      bytes += res.bytes;
    });
  } finally {
    agent.destroy();
  }
  const seconds = (nowMs() - started) / 1000;
  return { requests: tasks, bytes, seconds, megabytesPerSecond: bytes / MB / seconds, requestMsP50: percentile(ms, 0.5), requestMsP95: percentile(ms, 0.95) };
}

export async function runWado(o: WadoOptions): Promise<WadoFigures> {
  if (o.studies.length === 0) throw new Error('WADO-RS needs stored studies');
  const study = await measure(o, 'WADO-RS study', o.studies.length, (i) => {
    const s = o.studies[i] as StoredStudy;
    return { url: `${o.baseUrl}/studies/${s.studyUid}`, accept: MULTIPART_DICOM, minBytes: s.bytes };
  });
  const all = o.studies.flatMap((s) => s.sopInstanceUids.map((sop, i) => ({ s, sop, bytes: s.instanceBytes[i] ?? 0 })));
  const instance = await measure(o, 'WADO-RS instance', o.singleInstances, (i) => {
    // Spread over every stored study, not one hot file
    const { s, sop, bytes } = all[(i * 7919) % all.length] as { s: StoredStudy; sop: string; bytes: number };
    return { url: `${o.baseUrl}/studies/${s.studyUid}/series/${s.seriesUid}/instances/${sop}`, accept: 'application/dicom', minBytes: bytes, exactBytes: bytes };
  });
  return { study, instance };
}
