import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { HeaderError, readPart10Header, type ParsedHeader } from '../../dicom/header-reader.js';
import { isKnownTransferSyntax } from '../../dicom/transfer-syntax.js';
import type { DicomJsonDataset } from '../../dicom/types.js';
import { validateUid } from '../../dicom/uid.js';
import { newBlobKey, type BlobStore } from '../../storage/blobs.js';
import { levelHeaders } from '../../dicom/levels.js';
import type { InstanceRecord, MetadataStore } from '../../storage/metadata.js';
import type { ArchiveSettings, CallContext, Logger } from '../context.js';
import type { EventBus } from '../events.js';
import { chunksOf } from '../../util/chunks.js';
import { drainedOrClosed } from '../../util/streams.js';
import { ChunkQueue } from './chunk-queue.js';
import type { Semaphore } from '../../util/semaphore.js';
import { extractIndexValues } from './index-values.js';
import { IngestFailure, IngestWarning, type IngestOutcome } from './outcome.js';
import { loggableError } from '../../util/loggable-error.js';

export interface IngestDeps {
  metadata: MetadataStore;
  blobs: BlobStore;
  settings: ArchiveSettings;
  logger: Logger;
  events: EventBus;
  now?: () => Date;
  /**
   * Ingests whose header grew past LARGE_HEADER_BYTES hold one permit until they finish (ADR
   * 0021): each such header costs ~10x its size in JS values and JSON, and blocks the event loop
   * for ~0.5 s per step, so only a few run at once; the others wait, their input paused.
   */
  largeHeaders?: Semaphore;
}

/** Ingests with a large header (over LARGE_HEADER_BYTES of values) at once, per archive. */
export const LARGE_HEADER_PERMITS = 2;

export interface IngestInput {
  /** A Part-10 stream (preamble, DICM, File Meta, dataset). Read exactly once, with backpressure. */
  body: AsyncIterable<Uint8Array> | Readable;
  /** STOW-RS /studies/{study}: instances of another study fail with STUDY_MISMATCH (A901). */
  expectedStudyUid?: string;
  /**
   * Called once the body has been read to its end (or abandoned), before the blob is made
   * durable and the index commits: a caller may start reading its next input meanwhile.
   */
  onBodyConsumed?: () => void;
  /**
   * The index commit waits for this to settle first, so that instances received in one order
   * commit in that order (the last of two copies of one SOP Instance wins, as if sequential).
   */
  commitAfter?: Promise<unknown>;
  /**
   * The SOP Class and Instance UIDs the request announced (a C-STORE-RQ's Affected SOP Class and
   * Instance UID): a data set naming others fails with MISSING_ATTRIBUTE (A900), nothing stored.
   */
  expectedIdentity?: { sopClassUid: string; sopInstanceUid: string };
  /**
   * The body's File Meta was built by pacsnode in front of a data set received over DIMSE, so its
   * group length is exact and the data set may hold no group 0002 element (PS3.5 7.1): one that
   * does fails NOT_PARSEABLE (C000) instead of overriding the negotiated transfer syntax.
   */
  builtFileMeta?: boolean;
}

/** The header reader may lag behind the pump; past this many queued bytes the pump waits for it. */
const PARSER_QUEUE_HIGH = 8 * 1024 * 1024;
const PARSER_QUEUE_LOW = 1024 * 1024;

const fail = (failure: IngestFailure, message: string, extra: Partial<IngestOutcome> = {}): IngestOutcome => ({
  ok: false,
  failure,
  message,
  warnings: [],
  ...extra,
});

/**
 * Ingest one instance (SPEC §6): stream to a new blob while hashing and reading the header,
 * validate what is indexed, commit the index row, then acknowledge. Order: blob -> commit -> ack.
 * Never throws for bad input: every problem is an IngestOutcome.
 */
export async function ingestInstance(deps: IngestDeps, ctx: CallContext, input: IngestInput): Promise<IngestOutcome> {
  const permit: { release?: () => void } = {};
  try {
    return await ingestWith(deps, ctx, input, permit);
  } finally {
    permit.release?.();
  }
}

async function ingestWith(deps: IngestDeps, ctx: CallContext, input: IngestInput, permit: { release?: () => void }): Promise<IngestOutcome> {
  const { settings, logger } = deps;
  const largeHeaders = deps.largeHeaders;
  let awaitingAdmission = false;
  const now = deps.now ?? (() => new Date());
  const key = newBlobKey(now(), randomUUID());
  const hash = createHash('sha256');
  const queue = new ChunkQueue();
  let parserActive = true;

  const headerPromise: Promise<ParsedHeader> = readPart10Header(queue, {
    bulkdataThreshold: settings.bulkdataThreshold,
    defaultCharacterSet: settings.defaultCharacterSet,
    ...(input.builtFileMeta === true ? { exactFileMetaLength: true } : {}),
    ...(largeHeaders !== undefined
      ? {
          admitLargeHeader: async () => {
            awaitingAdmission = true;
            try {
              permit.release = await largeHeaders.acquire();
            } finally {
              awaitingAdmission = false;
            }
          },
        }
      : {}),
  }).finally(() => {
    parserActive = false;
    queue.close();
  });

  const sink = new PassThrough({ highWaterMark: 1024 * 1024 });
  // Failures surface through putPromise; without a listener, destroy(err) would crash the process.
  sink.on('error', () => {});
  const putAbort = new AbortController();
  let sinkFailed = false;
  const failSink = (reason: string): void => {
    if (sinkFailed) return;
    sinkFailed = true;
    const err = new Error(reason);
    putAbort.abort(err);
    sink.destroy(err);
  };
  const putPromise = deps.blobs.put(key, sink, { signal: putAbort.signal });
  putPromise.catch(() => {
    sinkFailed = true;
  });
  headerPromise.catch(() => failSink('header could not be read'));

  let size = 0;
  let early: IngestOutcome | undefined;
  try {
    for await (const chunk of chunksOf(input.body)) {
      // The store failed (a write error destroys the sink before put() rejects): drain the rest
      // of this input, so that the next multipart part can be read and the outcome is reported.
      if (sinkFailed || sink.destroyed) continue;
      size += chunk.length;
      if (settings.maxInstanceBytes > 0 && size > settings.maxInstanceBytes) {
        early = fail(IngestFailure.OUT_OF_RESOURCES, `instance larger than max_instance_bytes (${settings.maxInstanceBytes})`);
        failSink('over max_instance_bytes');
        continue;
      }
      hash.update(chunk);
      if (parserActive) {
        queue.push(chunk);
        // While the parser waits for admission, the input waits with it after PARSER_QUEUE_LOW:
        // a waiting ingest holds ~1 MiB, not 8.
        if (queue.bytes > (awaitingAdmission ? PARSER_QUEUE_LOW : PARSER_QUEUE_HIGH)) await queue.drained(PARSER_QUEUE_LOW);
      }
      if (!sink.write(chunk)) await drainedOrClosed(sink);
    }
  } catch (err) {
    early ??= fail(IngestFailure.NOT_PARSEABLE, `upload ended before the instance was complete: ${errorMessage(err)}`);
    failSink('input failed');
  }
  queue.end();
  if (!sinkFailed) sink.end();
  input.onBodyConsumed?.();

  let header: ParsedHeader | undefined;
  let headerError: unknown;
  try {
    header = await headerPromise;
  } catch (err) {
    headerError = err;
  }
  let stored = false;
  let putError: unknown;
  try {
    await putPromise;
    stored = true; // the object exists (even if the header later proved bad): discard() removes it
  } catch (err) {
    putError = err;
  }
  const discard = async (): Promise<void> => {
    if (!stored) return;
    await deps.blobs.delete(key).catch((err: unknown) => logger.warn({ blobKey: key, err: errorMessage(err) }, 'could not delete discarded blob'));
  };

  if (early) {
    await discard();
    return early;
  }
  if (headerError !== undefined || header === undefined) {
    await discard();
    if (headerError instanceof HeaderError) {
      return fail(IngestFailure.NOT_PARSEABLE, `not a parseable DICOM Part-10 file (${headerError.code}): ${headerError.message}`);
    }
    return fail(IngestFailure.NOT_PARSEABLE, `not a parseable DICOM Part-10 file: ${errorMessage(headerError)}`);
  }
  if (putError !== undefined) {
    logger.error({ blobKey: key, err: errorMessage(putError) }, 'blob write failed');
    return fail(IngestFailure.OUT_OF_RESOURCES, 'the instance could not be written to storage');
  }

  const digest = hash.digest('hex');
  if (input.commitAfter) await input.commitAfter.catch(() => undefined);
  const outcome = await commit(deps, ctx, { header, key, size, sha256: digest, expectedStudyUid: input.expectedStudyUid, expectedIdentity: input.expectedIdentity, receivedAt: now() });
  if (!outcome.ok || outcome.disposition === 'duplicate') await discard();
  return outcome;
}

interface CommitInput {
  header: ParsedHeader;
  key: string;
  size: number;
  sha256: string;
  expectedStudyUid: string | undefined;
  expectedIdentity: { sopClassUid: string; sopInstanceUid: string } | undefined;
  receivedAt: Date;
}

function uidAt(ds: DicomJsonDataset, tag: string): unknown {
  const v = ds[tag]?.Value;
  return v && v.length > 0 ? v[0] : undefined;
}

async function commit(deps: IngestDeps, ctx: CallContext, c: CommitInput): Promise<IngestOutcome> {
  const { header } = c;
  const ds = header.dataset;
  const warnings = new Set<IngestWarning>();

  const required: [string, string][] = [
    ['00080016', 'SOPClassUID'],
    ['00080018', 'SOPInstanceUID'],
    ['0020000D', 'StudyInstanceUID'],
    ['0020000E', 'SeriesInstanceUID'],
  ];
  const uids: string[] = [];
  for (const [tag, keyword] of required) {
    const raw = uidAt(ds, tag);
    const check = typeof raw === 'string' ? validateUid(raw) : undefined;
    if (!check || !check.ok) {
      return fail(IngestFailure.MISSING_ATTRIBUTE, `${keyword} (${tag.slice(0, 4)},${tag.slice(4)}) is missing or not a valid UID`);
    }
    if (check.leadingZero) warnings.add(IngestWarning.INVALID_INDEXED_VALUE);
    uids.push(check.uid);
  }
  const [sopClassUid, sopInstanceUid, studyUid, seriesUid] = uids as [string, string, string, string];
  const ids = { sopClassUid, sopInstanceUid, studyUid, seriesUid, transferSyntaxUid: header.transferSyntaxUid };

  const expected = c.expectedIdentity;
  if (expected !== undefined && (expected.sopInstanceUid !== sopInstanceUid || expected.sopClassUid !== sopClassUid)) {
    const which = expected.sopInstanceUid !== sopInstanceUid ? 'SOP Instance UID (0008,0018)' : 'SOP Class UID (0008,0016)';
    return fail(IngestFailure.MISSING_ATTRIBUTE, `the data set's ${which} differs from the request's`, ids);
  }
  // The header reader stops at Pixel Data: a value announced longer than what arrived means the
  // data set ended inside it (a sender that set the last-fragment flag too early). Offsets of a
  // deflated data set count inflated bytes: not comparable with the size received.
  const pd = header.pixelData;
  if (pd !== undefined && !header.deflated && (pd.length !== undefined ? pd.offset + pd.length > c.size : pd.offset >= c.size)) {
    return fail(IngestFailure.NOT_PARSEABLE, 'the data set ends inside Pixel Data (7FE0,0010)', ids);
  }
  if (!isKnownTransferSyntax(header.transferSyntaxUid)) {
    return fail(IngestFailure.TRANSFER_SYNTAX_NOT_SUPPORTED, `transfer syntax ${header.transferSyntaxUid} is not supported`, ids);
  }
  if (c.expectedStudyUid !== undefined && c.expectedStudyUid !== studyUid) {
    return fail(IngestFailure.STUDY_MISMATCH, 'the instance does not belong to the study named in the request', ids);
  }

  const index = extractIndexValues(ds, header.droppedValues);
  if (index.invalid.length > 0) warnings.add(IngestWarning.INVALID_INDEXED_VALUE);

  const stored: DicomJsonDataset = { ...ds };
  if (header.pixelData) {
    const pd = header.pixelData;
    stored[pd.tag] = { vr: pd.vr, _bulk: pd.length === undefined ? { offset: pd.offset } : { offset: pd.offset, length: pd.length } };
  }

  const record: InstanceRecord = {
    studyUid,
    seriesUid,
    sopUid: sopInstanceUid,
    patient: index.patient,
    study: index.study,
    series: index.series,
    instance: { sop_class_uid: sopClassUid, instance_number: index.instance.instance_number },
    header: stored,
    levelHeaders: levelHeaders(stored),
    transferSyntaxUid: header.transferSyntaxUid,
    blob: { key: c.key, size: c.size, sha256: c.sha256 },
    receivedAt: c.receivedAt,
  };

  let result;
  try {
    result = await deps.metadata.commitInstance(record, {
      onDuplicate: deps.settings.onDuplicate,
      onPatientMismatch: deps.settings.onPatientMismatch,
    });
  } catch (err) {
    deps.logger.error({ sopInstanceUid, studyUid, err: loggableError(err) }, 'index commit failed');
    return fail(IngestFailure.PROCESSING_FAILURE, 'the instance could not be indexed', ids);
  }

  const base = { ...ids, size: c.size };
  switch (result.kind) {
    case 'rejected-duplicate':
      return fail(IngestFailure.DUPLICATE, 'an instance with this SOP Instance UID is already stored', ids);
    case 'rejected-patient-mismatch':
      return fail(IngestFailure.PATIENT_MISMATCH, 'the study is stored under another patient', ids);
    case 'duplicate':
      return { ok: true, warnings: [...warnings], disposition: 'duplicate', ...base };
    case 'stored':
    case 'replaced': {
      if (result.patientMismatch) {
        warnings.add(IngestWarning.COERCED);
        deps.logger.warn({ studyUid, sopInstanceUid, origin: ctx.origin.protocol }, 'patient mismatch accepted: the study now follows the new instance');
      }
      if (result.kind === 'replaced') {
        const old = result.oldBlobKey;
        await deps.blobs.delete(old).catch((err: unknown) => deps.logger.warn({ blobKey: old, err: errorMessage(err) }, 'could not delete replaced blob (gc will)'));
      }
      deps.events.emit({ type: 'InstanceStored', studyUid, seriesUid, sopUid: sopInstanceUid, size: c.size, replaced: result.kind === 'replaced' });
      return { ok: true, warnings: [...warnings], disposition: result.kind, ...base };
    }
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
