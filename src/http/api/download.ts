import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Archive } from '../../archive/archive.js';
import { ArchiveError } from '../../archive/errors.js';
import type { DicomJsonDataset } from '../../dicom/types.js';
import { callContext } from '../request-context.js';
import { binaryResponse, errorResponses, uidParam } from '../schemas.js';
import { sendInstancesZip } from '../zip-response.js';

export interface DownloadDeps {
  archive: Archive;
}

const zipResponses = {
  200: binaryResponse(
    'ZIP of the original DICOM files, streamed (chunked, no Content-Length): entries `{StudyUID}/{SeriesUID}/{SOPUID}.dcm`, stored (not deflated), ZIP64 when needed, CRC-32 in data descriptors.',
    ['application/zip'],
  ),
  ...errorResponses(400, 404),
};

function studyUidOf(ds: DicomJsonDataset): string | undefined {
  const v = ds['0020000D']?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

/** GET /api/studies/{study}/archive and /api/series/{series}/archive (SPEC §5). */
export function registerDownloadRoutes(app: FastifyInstance, deps: DownloadDeps): void {
  const { archive } = deps;
  const typed = app.withTypeProvider<ZodTypeProvider>();

  typed.get(
    '/api/studies/:study/archive',
    {
      schema: {
        params: z.object({ study: uidParam('Study Instance UID') }),
        tags: ['studies'],
        summary: 'Download a study as a ZIP of its original DICOM files',
        operationId: 'downloadStudyArchive',
        response: zipResponses,
      },
    },
    async (request, reply) => {
      const ctx = callContext(request, 'rest');
      const { study } = request.params;
      return sendInstancesZip(reply, archive, ctx, [{ studyUid: study }], `${study}.zip`);
    },
  );

  typed.get(
    '/api/series/:series/archive',
    {
      schema: {
        params: z.object({ series: uidParam('Series Instance UID') }),
        tags: ['series'],
        summary: 'Download a series as a ZIP of its original DICOM files',
        operationId: 'downloadSeriesArchive',
        response: zipResponses,
      },
    },
    async (request, reply) => {
      const ctx = callContext(request, 'rest');
      const { series } = request.params;
      // The index keys series under their study; find it (or them, should one UID appear twice) first.
      const found = await archive.query(ctx, {
        level: 'series',
        params: [
          ['SeriesInstanceUID', series],
          ['includefield', 'StudyInstanceUID'],
        ],
      });
      const studies = [...new Set(found.datasets.map(studyUidOf).filter((uid): uid is string => uid !== undefined))];
      if (studies.length === 0) throw new ArchiveError('NOT_FOUND', 'series not found', { seriesUid: series });
      return sendInstancesZip(
        reply,
        archive,
        ctx,
        studies.map((studyUid) => ({ studyUid, seriesUid: series })),
        `${series}.zip`,
      );
    },
  );
}
