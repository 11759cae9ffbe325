import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { LocatedInstance } from '../../archive/retrieve/retrieve.js';
import { acceptFromQuery, dicomJsonResponseType, negotiate, type MediaRange } from '../../dicom/media-types.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE, transferSyntax } from '../../dicom/transfer-syntax.js';
import type { DicomJsonDataset, DicomJsonElement } from '../../dicom/types.js';
import { sendError } from '../errors.js';
import { callContext } from '../request-context.js';
import { sendInstancesZip } from '../zip-response.js';
import { resourceUrl, serviceUrl, type DicomwebRouteOptions } from './context.js';
import { multipartResponse, sendStoredParts, type ResponsePart } from './multipart-response.js';
import { queryPairs } from './query-string.js';
import { acceptQuery, binaryResponse, dicomJsonResponse, errorResponses, MULTIPART_DICOM, MULTIPART_OCTETS, operationId, params } from './schemas.js';

type Params = { study: string; series?: string; instance?: string; frames?: string; '*'?: string };

function acceptOf(request: FastifyRequest): MediaRange[] {
  const q = queryPairs(request.url)
    .filter(([k]) => k === 'accept')
    .map(([, v]) => v);
  return acceptFromQuery(q, request.headers.accept);
}

/**
 * PS3.18 8.7.8.2 as SPEC §3 words it: `*` or the stored TS -> stored bytes; absent or Explicit VR LE
 * -> stored bytes (transcoding to Explicit VR LE does not exist yet: a documented deviation);
 * anything else -> 406.
 */
function servesStored(requested: string | undefined, stored: string): boolean {
  return requested === undefined || requested === '*' || requested === stored || requested === EXPLICIT_VR_LE;
}

const INSTANCE_OFFERS = [
  { mediaType: 'multipart/related', type: 'application/dicom' },
  { mediaType: 'application/dicom' },
] as const;

const METADATA_OFFERS = [{ mediaType: 'application/dicom+json' }, { mediaType: 'application/json' }] as const;

/**
 * If-None-Match (RFC 9110 13.1.2 and 13.1.5): `*`, or a list of entity tags compared with the weak
 * comparison — `W/"x"` and `"x"` both match `"x"`, whichever side is weak. Tolerant: a `*` inside a
 * list also matches; entries that are not entity tags are skipped. Quoted tags may contain commas.
 */
export function ifNoneMatchHits(header: string, etag: string): boolean {
  const opaque = (tag: string): string => (tag.startsWith('W/') ? tag.slice(2) : tag);
  const ours = opaque(etag.trim());
  let i = 0;
  while (i < header.length) {
    const ch = header[i];
    if (ch === ' ' || ch === '\t' || ch === ',') {
      i++;
      continue;
    }
    if (ch === '*') return true;
    const quote = header.startsWith('W/"', i) ? i + 2 : ch === '"' ? i : -1;
    if (quote >= 0) {
      const close = header.indexOf('"', quote + 1);
      if (close < 0) return false;
      if (header.slice(quote, close + 1) === ours) return true;
      i = close + 1;
      continue;
    }
    // Not an entity tag: skip to the next list element.
    const comma = header.indexOf(',', i);
    if (comma < 0) return false;
    i = comma + 1;
  }
  return false;
}

function scopeOf(p: Params): { studyUid: string; seriesUid?: string; sopUid?: string } {
  return { studyUid: p.study, ...(p.series !== undefined ? { seriesUid: p.series } : {}), ...(p.instance !== undefined ? { sopUid: p.instance } : {}) };
}

/** Peeks all rows once (cheap, no headers) — decisions such as 406 must precede the first byte. */
async function collectRows(it: AsyncIterable<LocatedInstance>): Promise<LocatedInstance[]> {
  const rows: LocatedInstance[] = [];
  for await (const r of it) rows.push(r);
  return rows;
}

export function registerWado(app: FastifyInstance, opts: DicomwebRouteOptions): void {
  const { archive } = opts;

  // ---- instances (study, series, instance) ----
  const retrieve = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply): Promise<FastifyReply> => {
    const ctx = callContext(request, 'dicomweb');
    const scope = scopeOf(request.params);
    const accept = acceptOf(request);
    // ---- ZIP of the originals (SPEC §3 `accept=application/zip`, study and series level; writer shared with /api/…/archive) ----
    if (accept.some((r) => r.type === 'application' && r.subtype === 'zip')) {
      const zipChoice = scope.sopUid ? undefined : negotiate(accept, [INSTANCE_OFFERS[0], { mediaType: 'application/zip' }]);
      if (zipChoice?.offer.mediaType === 'application/zip') {
        return sendInstancesZip(reply, archive, ctx, [scope], `${scope.seriesUid ?? scope.studyUid}.zip`);
      }
      if (!negotiate(accept, INSTANCE_OFFERS)) return sendError(reply, 406, 'NOT_ACCEPTABLE', 'application/zip is available for studies and series only');
    }
    // ---- end of ZIP ----
    const offers = scope.sopUid ? INSTANCE_OFFERS : INSTANCE_OFFERS.slice(0, 1);
    const chosen = negotiate(accept, offers);
    if (!chosen) return sendError(reply, 406, 'NOT_ACCEPTABLE', 'this resource is available as multipart/related; type="application/dicom"' + (scope.sopUid ? ' or application/dicom' : ''));
    const rows = await collectRows(await archive.locate(ctx, scope));
    for (const r of rows) {
      if (!servesStored(chosen.transferSyntax, r.transferSyntaxUid)) {
        return sendError(reply, 406, 'NOT_ACCEPTABLE', `transcoding to ${chosen.transferSyntax} is not supported yet`, { transferSyntax: chosen.transferSyntax });
      }
    }
    // Stored bytes, unchanged: every length is in the index, so the response has a Content-Length.
    const stored = rows.map((row) => ({
      headers: { 'Content-Type': `application/dicom; transfer-syntax=${row.transferSyntaxUid}`, 'Content-Length': String(row.size) },
      length: row.size,
      open: () => archive.openInstance(ctx, row),
    }));
    if (chosen.offer.mediaType === 'application/dicom') {
      const only = stored[0] as (typeof stored)[number];
      return sendStoredParts(reply, [{ ...only, headers: { 'Content-Type': 'application/dicom' } }]);
    }
    return sendStoredParts(reply, stored, 'application/dicom');
  };
  const retrieveSchema = (name: string, summary: string, p: (typeof params)[keyof typeof params], types: string[]) => ({
    schema: {
      tags: ['dicomweb'],
      operationId: operationId(opts.root, name),
      summary,
      params: p,
      querystring: acceptQuery,
      response: { 200: binaryResponse('The stored Part-10 files (transfer-syntax named on each part)', types), ...errorResponses(400, 404, 406) },
    },
  });
  app.get('/studies/:study', retrieveSchema('retrieveStudy', 'WADO-RS: retrieve a study', params.study, [MULTIPART_DICOM, 'application/zip']), retrieve);
  app.get('/studies/:study/series/:series', retrieveSchema('retrieveSeries', 'WADO-RS: retrieve a series', params.series, [MULTIPART_DICOM, 'application/zip']), retrieve);
  app.get('/studies/:study/series/:series/instances/:instance', retrieveSchema('retrieveInstance', 'WADO-RS: retrieve an instance', params.instance, [MULTIPART_DICOM, 'application/dicom']), retrieve);

  // ---- metadata ----
  const metadata = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply): Promise<FastifyReply> => {
    const ctx = callContext(request, 'dicomweb');
    const scope = scopeOf(request.params);
    // application/dicom+json, also for Accept: application/json (SPEC §3); application/json when the
    // client refuses application/dicom+json (q=0).
    const accept = acceptOf(request);
    const chosen = negotiate(accept, METADATA_OFFERS);
    if (!chosen) return sendError(reply, 406, 'NOT_ACCEPTABLE', 'metadata is available as application/dicom+json or application/json');
    const base = serviceUrl(request, opts);
    const etagHash = createHash('sha256').update(base);
    for await (const row of await archive.locate(ctx, scope)) etagHash.update(`${row.sopUid}:${row.sha256};`);
    const etag = `"${etagHash.digest('base64url').slice(0, 27)}"`;
    reply.header('etag', etag);
    const inm = request.headers['if-none-match'];
    if (inm !== undefined && ifNoneMatchHits(inm, etag)) return reply.code(304).send();
    const rows = await archive.locate(ctx, scope, { withHeader: true });
    async function* json(): AsyncGenerator<string> {
      let first = true;
      yield '[';
      for await (const row of rows) {
        const ds = publicMetadata(row.header ?? {}, (path) => `${resourceUrl(base, { studyUid: row.studyUid, seriesUid: row.seriesUid, sopUid: row.sopUid })}/bulkdata/${path}`);
        ds['00020010'] = { vr: 'UI', Value: [row.transferSyntaxUid] };
        yield (first ? '' : ',') + JSON.stringify(sortDataset(ds));
        first = false;
      }
      yield ']';
    }
    reply.code(200).type(dicomJsonResponseType(accept, chosen.offer));
    return reply.send(Readable.from(json()));
  };
  const metadataSchema = (name: string, summary: string, p: (typeof params)[keyof typeof params]) => ({
    schema: {
      tags: ['dicomweb'],
      operationId: operationId(opts.root, name),
      summary,
      params: p,
      querystring: acceptQuery,
      response: { 200: dicomJsonResponse('DICOM JSON of each instance (large binary values as BulkDataURI)'), 304: z.undefined().meta({ description: 'Not modified (If-None-Match)' }), ...errorResponses(400, 404, 406) },
    },
  });
  app.get('/studies/:study/metadata', metadataSchema('retrieveStudyMetadata', 'WADO-RS: metadata of a study', params.study), metadata);
  app.get('/studies/:study/series/:series/metadata', metadataSchema('retrieveSeriesMetadata', 'WADO-RS: metadata of a series', params.series), metadata);
  app.get('/studies/:study/series/:series/instances/:instance/metadata', metadataSchema('retrieveInstanceMetadata', 'WADO-RS: metadata of an instance', params.instance), metadata);

  // ---- bulkdata ----
  app.get('/studies/:study/series/:series/instances/:instance/bulkdata/*', {
    schema: {
      tags: ['dicomweb'],
      operationId: operationId(opts.root, 'retrieveBulkdata'),
      summary: 'WADO-RS: a bulk data value',
      params: params.instance.extend({ '*': z.string().meta({ description: 'Tag path, e.g. 7FE00010 or 00540016/0/00181072' }) }),
      querystring: acceptQuery,
      response: { 200: binaryResponse('The value bytes', [MULTIPART_OCTETS, 'application/octet-stream']), ...errorResponses(400, 404, 406) },
    },
  }, async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const ctx = callContext(request, 'dicomweb');
    const p = request.params;
    const path = (p['*'] ?? '').split('/').filter((s) => s !== '');
    if (path.length === 0 || path.length % 2 === 0 || !path.every((s, i) => (i % 2 === 0 ? /^[0-9A-Fa-f]{8}$/.test(s) : /^\d+$/.test(s)))) {
      return sendError(reply, 400, 'INVALID_PARAMETER', 'bulkdata path must be tag(/item/tag)*', { field: 'path' });
    }
    const chosen = negotiate(acceptOf(request), [{ mediaType: 'multipart/related', type: 'application/octet-stream' }, { mediaType: 'application/octet-stream' }]);
    if (!chosen) return sendError(reply, 406, 'NOT_ACCEPTABLE', 'bulk data is available as multipart/related; type="application/octet-stream"');
    const value = await archive.bulkdata(ctx, { studyUid: p.study, seriesUid: p.series as string, sopUid: p.instance as string }, path);
    if (chosen.offer.mediaType === 'application/octet-stream') {
      reply.code(200).type('application/octet-stream');
      if (value.length !== undefined) reply.header('content-length', String(value.length));
      return reply.send(value.stream);
    }
    async function* one(): AsyncGenerator<ResponsePart> {
      yield { headers: { 'Content-Type': 'application/octet-stream' }, open: async () => value.stream };
    }
    const { contentType, body } = multipartResponse('application/octet-stream', one());
    reply.code(200).header('content-type', contentType);
    return reply.send(body);
  });

  // ---- frames ----
  app.get('/studies/:study/series/:series/instances/:instance/frames/:frames', {
    schema: {
      tags: ['dicomweb'],
      operationId: operationId(opts.root, 'retrieveFrames'),
      summary: 'WADO-RS: frames of an instance',
      params: params.instance.extend({ frames: z.string().meta({ description: 'Comma-separated 1-based frame numbers', pattern: '^[0-9]+(,[0-9]+)*$', example: '1,3' }) }),
      querystring: acceptQuery,
      response: { 200: binaryResponse('The frames, one part each', [MULTIPART_OCTETS]), ...errorResponses(400, 404, 406) },
    },
  }, async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const ctx = callContext(request, 'dicomweb');
    const p = request.params;
    const numbers = (p.frames ?? '').split(',').map((s) => s.trim());
    if (numbers.length === 0 || !numbers.every((s) => /^\d{1,9}$/.test(s))) {
      return sendError(reply, 400, 'INVALID_PARAMETER', 'frame list must be comma-separated positive integers', { field: 'frames' });
    }
    const chosen = negotiate(acceptOf(request), [{ mediaType: 'multipart/related', type: 'application/octet-stream' }]);
    if (!chosen) return sendError(reply, 406, 'NOT_ACCEPTABLE', 'frames are available as multipart/related; type="application/octet-stream"');
    const frames = await archive.frames(ctx, { studyUid: p.study, seriesUid: p.series as string, sopUid: p.instance as string }, numbers.map(Number));
    const requested = chosen.transferSyntax;
    for (const f of frames) {
      // Native frames are the same bytes in Implicit and Explicit VR Little Endian.
      const native = !transferSyntax(f.transferSyntaxUid)?.encapsulated;
      const ok = requested === '*' || requested === f.transferSyntaxUid || (native && (requested === undefined || requested === IMPLICIT_VR_LE));
      if (!ok) {
        return sendError(reply, 406, 'NOT_ACCEPTABLE', `frames stored as ${f.transferSyntaxUid} cannot be decoded or transcoded yet; ask for transfer-syntax=*`, { transferSyntax: requested ?? EXPLICIT_VR_LE });
      }
    }
    async function* parts(): AsyncGenerator<ResponsePart> {
      for (const f of frames) {
        // Exact spelling matters: OHIF's loader matches this part header case-sensitively.
        const label = requested === IMPLICIT_VR_LE ? IMPLICIT_VR_LE : f.transferSyntaxUid;
        yield { headers: { 'Content-Type': `application/octet-stream; transfer-syntax=${label}` }, open: () => f.open() };
      }
    }
    const { contentType, body } = multipartResponse('application/octet-stream', parts());
    reply.code(200).header('content-type', contentType);
    return reply.send(body);
  });

  // ---- rendered / thumbnail: the pixel pipeline comes later ----
  const notYet = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> =>
    sendError(reply, 406, 'NOT_ACCEPTABLE', 'rendered and thumbnail resources are not available yet');
  const frameParams = params.instance.extend({ frames: z.string().meta({ description: 'Comma-separated 1-based frame numbers' }) });
  for (const suffix of ['rendered', 'thumbnail']) {
    const Suffix = suffix === 'rendered' ? 'Rendered' : 'Thumbnail';
    const imageSchema = (level: string, p: (typeof params)[keyof typeof params] | typeof frameParams) => ({
      schema: {
        tags: ['dicomweb'],
        operationId: operationId(opts.root, `retrieve${level}${Suffix}`),
        summary: `WADO-RS: ${suffix} ${level.toLowerCase()} (not available yet: 406)`,
        params: p,
        querystring: acceptQuery,
        response: { 200: binaryResponse(`${Suffix} image`, ['image/jpeg', 'image/png']), ...errorResponses(400, 404, 406) },
      },
    });
    app.get(`/studies/:study/${suffix}`, imageSchema('Study', params.study), notYet);
    app.get(`/studies/:study/series/:series/${suffix}`, imageSchema('Series', params.series), notYet);
    app.get(`/studies/:study/series/:series/instances/:instance/${suffix}`, imageSchema('Instance', params.instance), notYet);
    app.get(`/studies/:study/series/:series/instances/:instance/frames/:frames/${suffix}`, imageSchema('Frames', frameParams), notYet);
  }
}

/** Header for output: `_bulk` refs become BulkDataURIs (with their tag path); nothing internal leaks. */
export function publicMetadata(ds: DicomJsonDataset, uri: (path: string) => string, prefix = ''): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const [tag, el] of Object.entries(ds)) {
    const path = prefix + tag;
    if (el._bulk) {
      out[tag] = { vr: el.vr, BulkDataURI: uri(path) };
    } else if (el.vr === 'SQ' && el.Value) {
      out[tag] = {
        vr: 'SQ',
        Value: el.Value.map((item, i) => publicMetadata(item as DicomJsonDataset, uri, `${path}/${i}/`)),
      } as DicomJsonElement;
    } else {
      out[tag] = el;
    }
  }
  return out;
}

function sortDataset(ds: DicomJsonDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const k of Object.keys(ds).sort()) out[k] = ds[k] as DicomJsonElement;
  return out;
}

