import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StorageError } from '../errors.js';
import type {
  BlobGetOptions,
  BlobListOptions,
  BlobPutOptions,
  BlobPutResult,
  BlobStat,
  BlobStore,
} from '../blobs.js';
import { assertValidBlobKey } from '../blob-key.js';

export type S3ChecksumMode = 'when_required' | 'when_supported';

export interface S3BlobStoreOptions {
  /** Endpoint URL (MinIO, s3rver, …); undefined or "" = AWS S3 for `region`. */
  endpoint?: string | undefined;
  bucket: string;
  /** Static credentials; both undefined/"" = the AWS default credential chain (env, IAM role…). */
  accessKey?: string | undefined;
  secretKey?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /**
   * `when_required` (default, works everywhere): no flexible checksums on requests, no response
   * validation. With the SDK's default (`when_supported`) streamed bodies are sent aws-chunked
   * with a checksum trailer, which several S3-compatible servers store verbatim (corrupt objects).
   */
  checksumMode: S3ChecksumMode;
  /** Multipart part size in bytes (≥ 5 MiB, S3's minimum). Default 8 MiB. */
  partSize?: number;
  /** Parts uploaded concurrently per put; memory per put ≈ (queueSize + 1) × partSize. Default 2. */
  queueSize?: number;
}

const MIB = 1024 * 1024;
const MIN_PART_SIZE = 5 * MIB;
/** S3 allows 10,000 parts; keep a margin when the size hint is only a hint. */
const MAX_PARTS = 9_000;

/** The S3Client configuration for the options: pure, no network (tests check it from a config file). */
export function s3ClientConfig(options: S3BlobStoreOptions): S3ClientConfig {
  const checksum = options.checksumMode === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  const accessKey = options.accessKey ?? '';
  const secretKey = options.secretKey ?? '';
  if ((accessKey === '') !== (secretKey === '')) {
    throw new StorageError('INVALID_PARAMETER', 'S3: give both storage.access_key and storage.secret_key, or neither (default credential chain)');
  }
  const config: S3ClientConfig = {
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    requestChecksumCalculation: checksum,
    responseChecksumValidation: checksum,
    // A dead endpoint must fail /health and start-up quickly, not after the OS TCP timeout.
    requestHandler: { connectionTimeout: 5_000 },
  };
  if (options.endpoint !== undefined && options.endpoint !== '') config.endpoint = options.endpoint;
  if (accessKey !== '') config.credentials = { accessKeyId: accessKey, secretAccessKey: secretKey };
  return config;
}

interface SdkErrorShape {
  name?: unknown;
  Code?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

function errName(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const s = e as SdkErrorShape;
  if (typeof s.Code === 'string') return s.Code;
  if (typeof s.name === 'string') return s.name;
  return undefined;
}

function httpStatus(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const st = (e as SdkErrorShape).$metadata?.httpStatusCode;
  return typeof st === 'number' ? st : undefined;
}

function isNotFound(e: unknown): boolean {
  const n = errName(e);
  return n === 'NoSuchKey' || n === 'NotFound' || (httpStatus(e) === 404 && n !== 'NoSuchBucket');
}

function isAbortError(e: unknown): boolean {
  return errName(e) === 'AbortError';
}

/** An SDK or network failure as StorageError STORAGE_UNAVAILABLE (no credentials in the message). */
function unavailable(operation: string, bucket: string, e: unknown, key?: string): StorageError {
  if (e instanceof StorageError) return e;
  const name = errName(e) ?? 'Error';
  const status = httpStatus(e);
  const code = typeof e === 'object' && e !== null ? (e as SdkErrorShape).code : undefined;
  const reason =
    name === 'NoSuchBucket'
      ? `bucket "${bucket}" does not exist`
      : typeof code === 'string'
        ? code
        : status !== undefined
          ? `${name} (HTTP ${status})`
          : name;
  const details: Record<string, unknown> = { operation, bucket, s3Error: name };
  if (status !== undefined) details.httpStatus = status;
  if (key !== undefined) details.key = key;
  return new StorageError('STORAGE_UNAVAILABLE', `S3 ${operation} failed: ${reason}`, details);
}

function abortErrorFrom(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error('The operation was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * S3 BlobStore. put = lib-storage Upload: a body up to one part goes as a single PutObject, a
 * larger one as a multipart upload with at most `queueSize` parts in flight (memory is bounded by
 * the part size, never by the object size). The object exists only once PutObject or
 * CompleteMultipartUpload returned 200 — S3's own atomicity. A failed or aborted put aborts its
 * multipart upload; whatever a crash leaves behind is removed by `cleanupTemporary`
 * (ListMultipartUploads + AbortMultipartUpload). The bucket is never created here.
 */
export function createS3BlobStore(options: S3BlobStoreOptions): BlobStore {
  const { bucket } = options;
  const partSize = options.partSize ?? 8 * MIB;
  const queueSize = options.queueSize ?? 2;
  if (!Number.isInteger(partSize) || partSize < MIN_PART_SIZE) {
    throw new StorageError('INVALID_PARAMETER', `S3 part size must be an integer ≥ ${MIN_PART_SIZE}`);
  }
  if (!Number.isInteger(queueSize) || queueSize < 1) throw new StorageError('INVALID_PARAMETER', 'S3 queue size must be ≥ 1');
  if (bucket === '') throw new StorageError('INVALID_PARAMETER', 'S3 bucket name is empty');
  const client = new S3Client(s3ClientConfig(options));
  const where = options.endpoint ? ` at ${options.endpoint}` : '';

  async function abortMultipart(key: string, uploadId: string): Promise<boolean> {
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
      return true;
    } catch (e) {
      // Already completed or aborted (by another instance's cleanup): nothing left to remove.
      if (errName(e) === 'NoSuchUpload' || httpStatus(e) === 404) return false;
      throw e;
    }
  }

  async function put(key: string, body: Readable, putOptions: BlobPutOptions = {}): Promise<BlobPutResult> {
    assertValidBlobKey(key);
    const { signal, sizeHint } = putOptions;
    // Failures surface through the iteration below; without a listener an early 'error' would crash.
    body.on('error', () => {});
    if (signal?.aborted) {
      body.destroy();
      throw abortErrorFrom(signal);
    }
    let size = 0;
    // The Upload reads this with backpressure: one chunk ahead, never the whole body.
    const counted = Readable.from(
      (async function* count() {
        for await (const chunk of body as AsyncIterable<Buffer | string>) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          size += buf.length;
          yield buf;
        }
      })(),
      { highWaterMark: 1 },
    );
    counted.on('error', () => {});
    // Big bodies need bigger parts to stay under S3's 10,000-part limit.
    const effectivePartSize =
      sizeHint !== undefined && Number.isFinite(sizeHint) && sizeHint > partSize * MAX_PARTS
        ? Math.ceil(sizeHint / MAX_PARTS)
        : partSize;
    const upload = new Upload({
      client,
      params: { Bucket: bucket, Key: key, Body: counted, ContentType: 'application/dicom' },
      partSize: effectivePartSize,
      queueSize,
      // We abort the multipart upload ourselves, so that its failure never hides the real error.
      leavePartsOnError: true,
    });
    // Aborting ends the body; the Upload then fails like on a body error. We do not race done():
    // put() settles only once nothing can appear under the key any more.
    const onAbort = (): void => {
      if (signal) body.destroy(abortErrorFrom(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await upload.done();
    } catch (e) {
      // Like a failed pipeline: the rest of the body is not wanted any more.
      counted.destroy();
      body.destroy();
      if (upload.uploadId !== undefined) {
        await abortMultipart(key, upload.uploadId).catch(() => undefined); // else cleanupTemporary removes it
      }
      if (signal?.aborted) throw abortErrorFrom(signal);
      if (body.errored) throw body.errored;
      if (isAbortError(e) || !isSdkError(e)) throw e;
      throw unavailable('upload', bucket, e, key);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (signal?.aborted) {
      // The abort arrived while the upload was completing: the caller sees a failure, so the
      // object must not stay (keys are never reused, so deleting it cannot hit anyone else's data).
      await del(key).catch(() => undefined);
      throw abortErrorFrom(signal);
    }
    return { key, size };
  }

  async function get(key: string, getOptions: BlobGetOptions = {}): Promise<Readable> {
    assertValidBlobKey(key);
    const { start, end } = getOptions;
    if ((start !== undefined && (!Number.isInteger(start) || start < 0)) || (end !== undefined && (!Number.isInteger(end) || end < (start ?? 0) - 1))) {
      throw new StorageError('INVALID_PARAMETER', 'invalid byte range');
    }
    if (end !== undefined && end < (start ?? 0)) {
      // An empty range: HTTP cannot express it. Still NOT_FOUND for an absent key.
      if ((await stat(key)) === undefined) throw new StorageError('NOT_FOUND', 'blob not found', { key });
      return Readable.from([]);
    }
    const range = start !== undefined || end !== undefined ? `bytes=${start ?? 0}-${end ?? ''}` : undefined;
    try {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
      const stream = res.Body;
      if (!(stream instanceof Readable)) {
        throw new StorageError('STORAGE_UNAVAILABLE', 'S3 get returned no stream', { key });
      }
      return stream;
    } catch (e) {
      if (isNotFound(e)) throw new StorageError('NOT_FOUND', 'blob not found', { key });
      if (errName(e) === 'InvalidRange' || httpStatus(e) === 416) {
        // A start at or past the end: an empty read, as from a file.
        if ((await stat(key)) === undefined) throw new StorageError('NOT_FOUND', 'blob not found', { key });
        return Readable.from([]);
      }
      throw unavailable('get', bucket, e, key);
    }
  }

  async function stat(key: string): Promise<BlobStat | undefined> {
    assertValidBlobKey(key);
    try {
      const res = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { key, size: res.ContentLength ?? 0, modifiedAt: res.LastModified ?? new Date(0) };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw unavailable('stat', bucket, e, key);
    }
  }

  async function del(key: string): Promise<void> {
    assertValidBlobKey(key);
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (e) {
      if (isNotFound(e)) return;
      throw unavailable('delete', bucket, e, key);
    }
  }

  async function* list(listOptions: BlobListOptions = {}): AsyncGenerator<BlobStat> {
    const { prefix, olderThan } = listOptions;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix === '' ? undefined : prefix, ContinuationToken: token }),
        );
      } catch (e) {
        throw unavailable('list', bucket, e);
      }
      for (const obj of page.Contents ?? []) {
        if (obj.Key === undefined) continue;
        // Objects someone else put into the bucket under keys we would never write are not ours.
        try {
          assertValidBlobKey(obj.Key);
        } catch {
          continue;
        }
        const modifiedAt = obj.LastModified ?? new Date(0);
        if (olderThan && !(modifiedAt < olderThan)) continue;
        yield { key: obj.Key, size: obj.Size ?? 0, modifiedAt };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async function cleanupTemporary(olderThan: Date): Promise<number> {
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await client.send(
          new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (e) {
        // A server without ListMultipartUploads (s3rver) keeps no listable temporaries to clean.
        if (errName(e) === 'NotImplemented' || httpStatus(e) === 501) return removed;
        throw unavailable('list multipart uploads', bucket, e);
      }
      for (const u of page.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined || u.Initiated === undefined) continue;
        if (!(u.Initiated < olderThan)) continue;
        try {
          if (await abortMultipart(u.Key, u.UploadId)) removed++;
        } catch (e) {
          throw unavailable('abort multipart upload', bucket, e, u.Key);
        }
      }
      if (!page.IsTruncated) return removed;
      const nextKey = page.NextKeyMarker;
      const nextId = page.NextUploadIdMarker;
      if (nextKey === undefined || (nextKey === keyMarker && nextId === uploadIdMarker)) return removed; // no progress: stop
      keyMarker = nextKey;
      uploadIdMarker = nextId;
    }
  }

  async function check(): Promise<void> {
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (e) {
      const status = httpStatus(e);
      const name = errName(e);
      if (status === 404 || name === 'NotFound' || name === 'NoSuchBucket') {
        throw new StorageError(
          'STORAGE_UNAVAILABLE',
          `S3 bucket "${bucket}" does not exist${where}; create it first (pacsnode never creates buckets)`,
          { bucket },
        );
      }
      if (status === 403 || name === 'Forbidden' || name === 'AccessDenied') {
        throw new StorageError('STORAGE_UNAVAILABLE', `S3 access to bucket "${bucket}"${where} denied: check storage.access_key and storage.secret_key`, {
          bucket,
        });
      }
      if (status === undefined) {
        const reason = typeof e === 'object' && e !== null && typeof (e as SdkErrorShape).code === 'string' ? String((e as SdkErrorShape).code) : (name ?? 'error');
        throw new StorageError('STORAGE_UNAVAILABLE', `S3 endpoint${where || ' (AWS)'} is unreachable (${reason}) for bucket "${bucket}"`, { bucket });
      }
      throw unavailable('check', bucket, e);
    }
  }

  return {
    kind: 's3',
    put,
    get,
    delete: del,
    stat,
    list: (listOptions?: BlobListOptions) => list(listOptions),
    cleanupTemporary,
    check,
    close: async () => {
      client.destroy();
    },
  };
}

/** An error from the SDK (a service answer or a transport failure), as opposed to the body's own. */
function isSdkError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && ('$metadata' in e || '$fault' in e || typeof (e as SdkErrorShape).code === 'string');
}
