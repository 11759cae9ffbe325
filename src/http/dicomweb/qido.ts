import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { QueryLevel } from '../../dicom/query-model.js';
import { acceptFromQuery, dicomJsonResponseType, negotiate } from '../../dicom/media-types.js';
import { sendError } from '../errors.js';
import { callContext } from '../request-context.js';
import { resourceUrl, serviceUrl, type DicomwebRouteOptions } from './context.js';
import { queryPairs } from './query-string.js';
import { operationId, params, qidoQuery, qidoResponses } from './schemas.js';

type Params = { study?: string; series?: string };

const JSON_OFFERS = [{ mediaType: 'application/dicom+json' }, { mediaType: 'application/json' }];

/** QIDO-RS (PS3.18 10.6): the six search resources on the one Query model. */
export function registerQido(app: FastifyInstance, opts: DicomwebRouteOptions): void {
  const search = (level: QueryLevel) => async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply): Promise<FastifyReply> => {
    const pairs = queryPairs(request.url);
    const accept = acceptFromQuery(
      pairs.filter(([k]) => k === 'accept').map(([, v]) => v),
      request.headers.accept,
    );
    // application/dicom+json, also for Accept: application/json (SPEC §3); a client that refuses
    // application/dicom+json (q=0) but takes application/json gets application/json (RFC 9110 12.5.1).
    const chosen = negotiate(accept, JSON_OFFERS);
    if (!chosen) return sendError(reply, 406, 'NOT_ACCEPTABLE', 'QIDO-RS answers application/dicom+json or application/json');
    const base = serviceUrl(request, opts);
    const { study, series } = request.params;
    const result = await opts.archive.query(callContext(request, 'dicomweb'), {
      level,
      ...(study !== undefined ? { studyUid: study } : {}),
      ...(series !== undefined ? { seriesUid: series } : {}),
      params: pairs.filter(([k]) => k !== 'accept'),
      retrieveUrl: (ref) => resourceUrl(base, ref),
    });
    if (result.remaining > 0) {
      reply.header('warning', `299 pacsnode: "There are ${result.remaining} additional results that can be requested"`);
    }
    return reply.code(200).type(dicomJsonResponseType(accept, chosen.offer)).send(JSON.stringify(result.datasets));
  };
  // The query string is parsed by the handler (keys repeat, are keywords or tags): the schema describes it.
  const route = (url: string, level: QueryLevel, name: string, summary: string, p?: (typeof params)['study' | 'series']) =>
    app.get(url, {
      schema: { tags: ['dicomweb'], operationId: operationId(opts.root, name), summary, querystring: qidoQuery, ...(p ? { params: p } : {}), response: qidoResponses },
    }, search(level));
  route('/studies', 'study', 'searchStudies', 'QIDO-RS: search for studies');
  route('/series', 'series', 'searchSeries', 'QIDO-RS: search for series');
  route('/instances', 'instance', 'searchInstances', 'QIDO-RS: search for instances');
  route('/studies/:study/series', 'series', 'searchStudySeries', 'QIDO-RS: search for series of a study', params.study);
  route('/studies/:study/instances', 'instance', 'searchStudyInstances', 'QIDO-RS: search for instances of a study', params.study);
  route('/studies/:study/series/:series/instances', 'instance', 'searchSeriesInstances', 'QIDO-RS: search for instances of a series', params.series);
}
