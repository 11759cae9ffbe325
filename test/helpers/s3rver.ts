// An S3-compatible server for tests: s3rver on 127.0.0.1, port 0, a temporary directory, one bucket.
// Tests talk to it through the real AWS SDK (src/storage/s3/s3-blob-store.ts).
//
// s3rver 3.7 has no ListMultipartUploads (501 NotImplemented) and no AbortMultipartUpload (405).
// With `multipartExtensions` (the default) two small Koa routes add them over s3rver's own
// upload directories (`<dir>/<bucket>/._S3rver_uploads/<uploadId>/{key,metadata,<part>}`), so the
// adapter's abort and cleanup paths run end to end; `multipartExtensions: false` is plain s3rver.
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import S3rver from 's3rver';
import type { S3BlobStoreOptions } from '../../src/storage/s3/s3-blob-store.js';

export interface S3rverOptions {
  /** Bucket to create; default "pacs-test". */
  bucket?: string;
  /** Add ListMultipartUploads and AbortMultipartUpload (see above). Default true. */
  multipartExtensions?: boolean;
  /** Uploads per ListMultipartUploads page (exercises pagination). Default 1000. */
  uploadsPageSize?: number;
}

export interface RunningS3rver {
  /** e.g. http://127.0.0.1:41234 */
  endpoint: string;
  bucket: string;
  /** s3rver's storage directory. */
  directory: string;
  accessKey: string;
  secretKey: string;
  /** Options for createS3BlobStore against this server (checksum mode when_required, path style). */
  storeOptions(overrides?: Partial<S3BlobStoreOptions>): S3BlobStoreOptions;
  /** The directories of in-progress multipart uploads (ids). */
  pendingUploads(): Promise<string[]>;
  /** Idempotent; runs by itself in node:test's `after` at the end of the test file. */
  close(): Promise<void>;
}

/**
 * Servers still running when the test file ends. Registered once at import (top level, so on the
 * file's root): an `after` registered from inside a `before` hook would run when that hook ends.
 */
const running = new Set<() => Promise<void>>();
after(async () => {
  await Promise.all([...running].map((close) => close()));
});

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function q(ctx: S3rver.Context, name: string): string | undefined {
  const v = ctx.query[name];
  return Array.isArray(v) ? v[0] : v;
}

function s3Error(ctx: S3rver.Context, status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`;
}

interface PendingUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function multipartExtensions(directory: string, pageSize: number): S3rver.Middleware {
  const uploadsDir = (bucket: string): string => join(directory, bucket, '._S3rver_uploads');

  async function pending(bucket: string): Promise<PendingUpload[]> {
    let ids: string[];
    try {
      ids = await readdir(uploadsDir(bucket));
    } catch {
      return [];
    }
    const out: PendingUpload[] = [];
    for (const uploadId of ids) {
      try {
        const keyFile = join(uploadsDir(bucket), uploadId, 'key');
        const [key, info] = await Promise.all([readFile(keyFile, 'utf8'), stat(keyFile)]);
        out.push({ key, uploadId, initiated: info.mtime });
      } catch {
        // completed or aborted meanwhile
      }
    }
    // S3 orders uploads by key, then by initiation; the id is a stable tie-break here.
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.uploadId < b.uploadId ? -1 : a.uploadId > b.uploadId ? 1 : 0));
  }

  return async (ctx, next) => {
    const segments = ctx.path.split('/').slice(1);
    if (segments.length === 2 && segments[1] === '') segments.pop(); // the SDK sends bucket requests as `/bucket/`
    const bucket = segments[0] === undefined ? '' : decodeURIComponent(segments[0]);
    if (ctx.method === 'GET' && segments.length === 1 && bucket !== '' && 'uploads' in ctx.query) {
      if (!(await exists(join(directory, bucket)))) return s3Error(ctx, 404, 'NoSuchBucket', 'The specified bucket does not exist');
      const prefix = q(ctx, 'prefix') ?? '';
      const keyMarker = q(ctx, 'key-marker') ?? '';
      const idMarker = q(ctx, 'upload-id-marker') ?? '';
      const max = Math.min(Number(q(ctx, 'max-uploads') ?? pageSize) || pageSize, pageSize);
      const all = (await pending(bucket)).filter(
        (u) => u.key.startsWith(prefix) && (keyMarker === '' || u.key > keyMarker || (u.key === keyMarker && idMarker !== '' && u.uploadId > idMarker)),
      );
      const page = all.slice(0, max);
      const truncated = all.length > page.length;
      const last = page[page.length - 1];
      const parts = [
        `<?xml version="1.0" encoding="UTF-8"?>`,
        `<ListMultipartUploadsResult xmlns="${XMLNS}">`,
        `<Bucket>${xmlEscape(bucket)}</Bucket>`,
        `<KeyMarker>${xmlEscape(keyMarker)}</KeyMarker>`,
        `<UploadIdMarker>${xmlEscape(idMarker)}</UploadIdMarker>`,
        truncated && last ? `<NextKeyMarker>${xmlEscape(last.key)}</NextKeyMarker>` : '',
        truncated && last ? `<NextUploadIdMarker>${xmlEscape(last.uploadId)}</NextUploadIdMarker>` : '',
        `<MaxUploads>${max}</MaxUploads>`,
        `<IsTruncated>${truncated}</IsTruncated>`,
        ...page.map(
          (u) =>
            `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${xmlEscape(u.uploadId)}</UploadId>` +
            `<Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`,
        ),
        `</ListMultipartUploadsResult>`,
      ];
      ctx.status = 200;
      ctx.type = 'application/xml';
      ctx.body = parts.join('');
      return;
    }
    const uploadId = q(ctx, 'uploadId');
    if (ctx.method === 'DELETE' && segments.length >= 2 && uploadId !== undefined) {
      const key = segments.slice(1).map(decodeURIComponent).join('/');
      const dir = join(uploadsDir(bucket), uploadId);
      // Upload ids are s3rver's hex strings: refuse anything that could leave the uploads folder.
      const storedKey = /^[A-Za-z0-9_-]+$/.test(uploadId) ? await readFile(join(dir, 'key'), 'utf8').catch(() => undefined) : undefined;
      if (storedKey !== key) return s3Error(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist');
      await rm(dir, { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = null;
      return;
    }
    await next();
  };
}

export async function startS3rver(options: S3rverOptions = {}): Promise<RunningS3rver> {
  const bucket = options.bucket ?? 'pacs-test';
  const directory = await mkdtemp(join(tmpdir(), 'pacsnode-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory,
    silent: true,
    configureBuckets: [{ name: bucket }],
  });
  if (options.multipartExtensions ?? true) {
    // Before s3rver's router (the last middleware), which would answer 501/405.
    server.middleware.splice(server.middleware.length - 1, 0, multipartExtensions(directory, options.uploadsPageSize ?? 1000));
  }
  let address;
  try {
    address = await server.run();
  } catch (e) {
    await rm(directory, { recursive: true, force: true });
    throw e;
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await server.close().catch(() => undefined);
      await rm(directory, { recursive: true, force: true });
      running.delete(close);
    })();
    return closing;
  };
  running.add(close);
  return {
    endpoint,
    bucket,
    directory,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    storeOptions: (overrides = {}) => ({
      endpoint,
      bucket,
      accessKey: 'S3RVER',
      secretKey: 'S3RVER',
      region: 'us-east-1',
      forcePathStyle: true,
      checksumMode: 'when_required',
      ...overrides,
    }),
    pendingUploads: async () => {
      try {
        return await readdir(join(directory, bucket, '._S3rver_uploads'));
      } catch {
        return [];
      }
    },
    close,
  };
}
