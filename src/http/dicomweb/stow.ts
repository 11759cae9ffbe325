import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { IngestFailure, IngestWarning, type IngestOutcome } from '../../archive/ingest/outcome.js';
import { MultipartError, parseContentType, parseMultipart } from '../../dicom/multipart.js';
import type { DicomJsonDataset, DicomJsonElement } from '../../dicom/types.js';
import { isAddressableUid } from '../../dicom/uid.js';
import { chunksOf } from '../../util/chunks.js';
import { sendError } from '../errors.js';
import { callContext } from '../request-context.js';
import { resourceUrl, serviceUrl, type DicomwebRouteOptions } from './context.js';
import { DICOM_JSON, errorResponses, operationId, params } from './schemas.js';

/** PS3.18 Annex I / PS3.4 B.2.3 FailureReason values (SPEC §3). */
const FAILURE_REASON: Record<IngestFailure, number> = {
  OUT_OF_RESOURCES: 0xa700,
  MISSING_ATTRIBUTE: 0xa900,
  NOT_PARSEABLE: 0xc000,
  TRANSFER_SYNTAX_NOT_SUPPORTED: 0xc122,
  SOP_CLASS_REFUSED: 0x0122,
  STUDY_MISMATCH: 0xa901,
  PATIENT_MISMATCH: 0xc410,
  DUPLICATE: 0x0111,
  PROCESSING_FAILURE: 0x0110,
};

/** WarningReason (0008,1196) is single-valued: the most significant warning wins. */
const WARNING_REASON: [IngestWarning, number][] = [
  [IngestWarning.COERCED, 0xb000],
  [IngestWarning.INVALID_INDEXED_VALUE, 0xb007],
  [IngestWarning.ELEMENTS_DISCARDED, 0xb006],
];

class RequestLimitExceeded extends Error {
  constructor() {
    super('request body larger than max_request_bytes');
  }
}

class RequestStalled extends Error {
  constructor(ms: number) {
    super(`no request bytes for ${Math.round(ms / 1000)} s`);
  }
}

/**
 * Counts request bytes and fails the stream once the limit is crossed (SPEC §3: stops reading).
 * While it waits for the client's next bytes (only then: not while pacsnode does not read), a
 * silence of `stallMs` destroys the request (STOW_STALL_MS).
 */
async function* limited(body: Readable, max: number, stallMs: number, onExceeded: () => void): AsyncGenerator<Uint8Array> {
  let total = 0;
  const chunks = chunksOf(body)[Symbol.asyncIterator]();
  for (;;) {
    const stall = setTimeout(() => body.destroy(new RequestStalled(stallMs)), stallMs);
    let next: IteratorResult<Uint8Array>;
    try {
      next = await chunks.next();
    } finally {
      clearTimeout(stall);
    }
    if (next.done === true) return;
    const chunk = next.value;
    total += chunk.length;
    if (max > 0 && total > max) {
      // Pass on the bytes still under the limit: a part that ends before it is stored.
      const allowed = chunk.length - (total - max);
      if (allowed > 0) yield chunk.subarray(0, allowed);
      onExceeded();
      throw new RequestLimitExceeded();
    }
    yield chunk;
  }
}

/** Parts of one request between receipt and commit at once (their bodies are already on disk). */
const MAX_PARTS_IN_FLIGHT = 4;

const us = (n: number): DicomJsonElement => ({ vr: 'US', Value: [n] });
const ui = (s: string): DicomJsonElement => ({ vr: 'UI', Value: [s] });

export function registerStow(app: FastifyInstance, opts: DicomwebRouteOptions): void {
  const handler = async (request: FastifyRequest<{ Params: { study?: string } }>, reply: FastifyReply): Promise<FastifyReply> => {
    const studyUid = request.params.study;
    if (studyUid !== undefined && !isAddressableUid(studyUid)) return sendError(reply, 400, 'INVALID_UID', 'StudyInstanceUID in the path is not a valid UID', { key: 'StudyInstanceUID' });
    const contentLength = Number(request.headers['content-length']);
    if (opts.maxRequestBytes > 0 && Number.isFinite(contentLength) && contentLength > opts.maxRequestBytes) {
      reply.header('connection', 'close');
      return sendError(reply, 413, 'PAYLOAD_TOO_LARGE', `request body larger than max_request_bytes (${opts.maxRequestBytes})`);
    }
    let ct: { type: string; params: Record<string, string> };
    try {
      ct = parseContentType(request.headers['content-type'] ?? '');
    } catch {
      return sendError(reply, 415, 'UNSUPPORTED_MEDIA_TYPE', 'STOW-RS accepts multipart/related; type="application/dicom" or application/dicom');
    }
    const raw = request.body as Readable;
    let overLimit = false;
    const body = limited(raw, opts.maxRequestBytes, opts.stowStallMs, () => (overLimit = true));
    const ctx = callContext(request, 'dicomweb');
    // Outcomes in part order. The parts of one request overlap: the next part is read while the
    // previous one is made durable and committed (commits still in part order, via commitAfter).
    const pending: Promise<IngestOutcome>[] = [];
    let previous: Promise<unknown> | undefined;
    const ingest = (part: AsyncIterable<Uint8Array>, onBodyConsumed?: () => void): Promise<IngestOutcome> => {
      const outcome = opts.archive.ingest(ctx, {
        body: part,
        ...(studyUid !== undefined ? { expectedStudyUid: studyUid } : {}),
        ...(onBodyConsumed ? { onBodyConsumed } : {}),
        ...(previous ? { commitAfter: previous } : {}),
      });
      // Awaited later with the others: marked handled now so a rejection meanwhile is not "unhandled".
      outcome.catch(() => undefined);
      previous = outcome;
      pending.push(outcome);
      return outcome;
    };
    let parseError: unknown;
    let lastPartEnded = true;

    if (ct.type === 'application/dicom') {
      await ingest(body);
    } else if (ct.type === 'multipart/related') {
      const partType = (ct.params['type'] ?? 'application/dicom').toLowerCase();
      if (partType !== 'application/dicom') {
        return sendError(reply, 415, 'UNSUPPORTED_MEDIA_TYPE', `multipart/related type ${partType} is not supported (use application/dicom)`);
      }
      const boundary = ct.params['boundary'];
      if (!boundary) return sendError(reply, 400, 'BAD_REQUEST', 'multipart/related without a boundary parameter');
      try {
        for await (const part of parseMultipart(body, boundary)) {
          // Whether this part's body reached its end: a multipart error after that lies between parts.
          lastPartEnded = false;
          part.body.once('end', () => (lastPartEnded = true));
          const partCt = part.contentType?.split(';')[0]?.trim().toLowerCase();
          if (partCt !== undefined && partCt !== 'application/dicom') {
            part.body.resume();
            pending.push(Promise.resolve({ ok: false, failure: IngestFailure.NOT_PARSEABLE, warnings: [], message: `part of type ${partCt} is not application/dicom` }));
            continue;
          }
          // The parser may read on only once this part's body has been consumed.
          let consumed!: () => void;
          const bodyConsumed = new Promise<void>((resolve) => (consumed = resolve));
          await Promise.race([bodyConsumed, ingest(part.body, consumed)]);
          if (overLimit) break;
          // Bounded overlap: at most MAX_PARTS_IN_FLIGHT parts between receipt and commit.
          const oldest = pending[pending.length - MAX_PARTS_IN_FLIGHT];
          if (oldest) await oldest;
        }
      } catch (err) {
        if (!(err instanceof MultipartError) && !(err instanceof RequestLimitExceeded) && !(err instanceof RequestStalled)) {
          await Promise.allSettled(pending);
          throw err;
        }
        parseError = err;
      }
    } else {
      return sendError(reply, 415, 'UNSUPPORTED_MEDIA_TYPE', 'STOW-RS accepts multipart/related; type="application/dicom" or application/dicom');
    }
    const outcomes = await Promise.all(pending);
    if (parseError !== undefined) {
      const err = parseError as MultipartError | RequestLimitExceeded | RequestStalled;
      // The rest of the body is not read: this connection cannot carry another request.
      reply.header('connection', 'close');
      if (outcomes.length === 0 && !overLimit) {
        return sendError(reply, 400, 'BAD_REQUEST', `the body is not valid multipart/related: ${err.message}`, { reason: err instanceof MultipartError ? err.code : 'LIMIT' });
      }
      if (lastPartEnded || outcomes.length === 0) {
        // The error lies after the last complete part (in the next part's headers, or the limit was
        // crossed there): that part and any after it are lost and must be reported, never a 200.
        outcomes.push({
          ok: false,
          failure: overLimit ? IngestFailure.OUT_OF_RESOURCES : IngestFailure.NOT_PARSEABLE,
          warnings: [],
          message: overLimit ? 'request body larger than max_request_bytes' : `the body after part ${outcomes.length} is not valid multipart/related: ${err.message}`,
        });
      }
      // Otherwise the part in flight failed because its stream broke, and reports it.
    }
    if (overLimit) {
      // The rest of the body was not read: this connection cannot carry another request.
      reply.header('connection', 'close');
      const last = outcomes[outcomes.length - 1];
      if (last && !last.ok) last.failure = IngestFailure.OUT_OF_RESOURCES;
    }

    const base = serviceUrl(request, opts);
    const { status, response } = storeResponse(outcomes, base, studyUid);
    request.log.info({ stored: outcomes.filter((o) => o.ok).length, failed: outcomes.filter((o) => !o.ok).length, status }, 'stow-rs');
    return reply.code(status).type('application/dicom+json').send(response);
  };
  const storeContent = { content: { [DICOM_JSON]: { schema: z.record(z.string(), z.unknown()) } } };
  const schema = {
    tags: ['dicomweb'],
    // The body is a stream, read part by part by the handler: described, never validated here.
    consumes: ['multipart/related', 'application/dicom'],
    body: z.unknown().meta({ description: 'multipart/related; type="application/dicom" (one Part-10 file per part) or a single application/dicom file', format: 'binary' }),
    response: {
      200: { description: 'Every instance stored without warning (PS3.18 Annex I store response)', ...storeContent },
      202: { description: 'Some stored, with failures or warnings', ...storeContent },
      409: { description: 'Nothing stored', ...storeContent },
      ...errorResponses(400, 413, 415),
    },
  };
  app.post('/studies', { schema: { ...schema, operationId: operationId(opts.root, 'storeInstances'), summary: 'STOW-RS: store instances' } }, handler);
  app.post('/studies/:study', {
    schema: { ...schema, operationId: operationId(opts.root, 'storeStudyInstances'), summary: 'STOW-RS: store instances of one study', params: params.study },
  }, handler);
}

/** The STOW-RS response (PS3.18 10.5.3) and its status: 200 / 202 / 409. */
export function storeResponse(outcomes: IngestOutcome[], base: string, studyUid: string | undefined): { status: number; response: DicomJsonDataset } {
  const referenced: DicomJsonDataset[] = [];
  const failed: DicomJsonDataset[] = [];
  let warned = false;
  for (const o of outcomes) {
    if (o.ok && o.sopInstanceUid && o.studyUid) {
      const item: DicomJsonDataset = {
        '00081150': ui(o.sopClassUid ?? ''),
        '00081155': ui(o.sopInstanceUid),
        '00081190': { vr: 'UR', Value: [resourceUrl(base, { studyUid: o.studyUid, ...(o.seriesUid ? { seriesUid: o.seriesUid } : {}), sopUid: o.sopInstanceUid })] },
      };
      const w = WARNING_REASON.find(([code]) => o.warnings.includes(code));
      if (w) {
        item['00081196'] = us(w[1]);
        warned = true;
      }
      referenced.push(item);
    } else {
      const item: DicomJsonDataset = {};
      if (o.sopClassUid) item['00081150'] = ui(o.sopClassUid);
      if (o.sopInstanceUid) item['00081155'] = ui(o.sopInstanceUid);
      item['00081197'] = us(FAILURE_REASON[o.failure ?? IngestFailure.PROCESSING_FAILURE]);
      failed.push(item);
    }
  }
  const response: DicomJsonDataset = {};
  const studies = new Set(outcomes.filter((o) => o.ok).map((o) => o.studyUid));
  const retrieveStudy = studyUid ?? (studies.size === 1 ? [...studies][0] : undefined);
  if (retrieveStudy) response['00081190'] = { vr: 'UR', Value: [resourceUrl(base, { studyUid: retrieveStudy })] };
  if (failed.length > 0) response['00081198'] = { vr: 'SQ', Value: failed };
  if (referenced.length > 0) response['00081199'] = { vr: 'SQ', Value: referenced };
  const status = referenced.length === 0 ? 409 : failed.length > 0 || warned ? 202 : 200;
  return { status, response };
}
