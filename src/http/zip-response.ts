import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { Archive } from '../archive/archive.js';
import type { CallContext } from '../archive/context.js';
import type { LocatedInstance } from '../archive/retrieve/retrieve.js';
import type { InstanceScope } from '../storage/metadata.js';
import { zipStream, type ZipEntry } from '../util/zip.js';

/**
 * Locates every scope first — so an unknown study or series still gets its 404 JSON before any
 * byte — then answers a streamed ZIP of the originals, `{StudyUID}/{SeriesUID}/{SOPUID}.dcm`.
 * Used by `GET /api/{studies|series}/…/archive` and WADO-RS `?accept=application/zip`.
 */
export async function sendInstancesZip(reply: FastifyReply, archive: Archive, ctx: CallContext, scopes: InstanceScope[], filename: string): Promise<FastifyReply> {
  const located: AsyncIterable<LocatedInstance>[] = [];
  for (const scope of scopes) located.push(await archive.locate(ctx, scope));

  reply.code(200).type('application/zip').header('content-disposition', `attachment; filename="${filename}"`);
  // HEAD: Fastify would drain a body stream, i.e. read every blob for nothing; open none.
  if (reply.request.method === 'HEAD') return reply.send(Readable.from([]));

  let instances = 0;
  let bytes = 0;
  async function* entries(): AsyncGenerator<ZipEntry> {
    for (const rows of located) {
      for await (const row of rows) {
        instances++;
        bytes += row.size;
        yield {
          name: `${row.studyUid}/${row.seriesUid}/${row.sopUid}.dcm`,
          size: row.size,
          mtime: row.receivedAt,
          open: () => archive.openInstance(ctx, row),
        };
      }
    }
  }
  const body = zipStream(entries());
  const started = Date.now();
  body.once('end', () => reply.log.info({ ...scopes[0], instances, bytes, ms: Date.now() - started }, 'zip download sent'));
  // No Content-Length: the archive is chunked as it is produced.
  return reply.send(body);
}
