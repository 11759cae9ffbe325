import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { callContext } from '../request-context.js';
import { errorResponses, uidParam } from '../schemas.js';
import { instanceJson, instanceSchema, listSchema, seriesJson, seriesSchema, type RestDeps } from './resources.js';
import { pageQuery } from './studies.js';

/** SPEC §5: /api/series/{series} (detail, its instances, DELETE). */

const seriesParams = z.object({ series: uidParam('Series Instance UID') });
export const instanceListSchema = listSchema(instanceSchema, 'InstanceList');

export function registerSeriesRoutes(app: FastifyInstance, deps: RestDeps): void {
  const { archive } = deps;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/api/series/:series', {
    schema: {
      tags: ['series'],
      operationId: 'getSeries',
      summary: 'A series',
      params: seriesParams,
      response: { 200: seriesSchema, ...errorResponses(400, 404) },
    },
  }, async (request) => seriesJson(await archive.series(callContext(request, 'rest'), request.params.series)));

  r.get('/api/series/:series/instances', {
    schema: {
      tags: ['series'],
      operationId: 'listSeriesInstances',
      summary: 'The instances of a series',
      params: seriesParams,
      querystring: z.object(pageQuery),
      response: { 200: instanceListSchema, ...errorResponses(400, 404) },
    },
  }, async (request) => {
    const page = await archive.seriesInstances(callContext(request, 'rest'), request.params.series, request.query);
    return { items: page.items.map(instanceJson), total: page.total, limit: page.limit, offset: page.offset };
  });

  r.delete('/api/series/:series', {
    schema: {
      tags: ['series'],
      operationId: 'deleteSeries',
      summary: 'Delete a series',
      description: 'Removes the series and its instances (index rows and stored files); an emptied study goes too.',
      params: seriesParams,
      response: { 204: z.undefined().meta({ description: 'Deleted' }), ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    await archive.remove(callContext(request, 'rest'), { level: 'series', seriesUid: request.params.series });
    return reply.code(204).send();
  });
}
