import { z } from 'zod';
import { binaryResponse, errorResponses, uidParam } from '../schemas.js';

/**
 * Route schemas of the DICOMweb transactions: path parameters are validated (UIDs by the one
 * validator), everything else is described only. Bodies are streams and QIDO's query keys are
 * open-ended (any attribute keyword or tag), so those stay with the handlers' own parsing.
 */

export const DICOM_JSON = 'application/dicom+json';
export const MULTIPART_DICOM = 'multipart/related; type="application/dicom"';
export const MULTIPART_OCTETS = 'multipart/related; type="application/octet-stream"';

export const params = {
  study: z.object({ study: uidParam('Study Instance UID') }),
  series: z.object({ study: uidParam('Study Instance UID'), series: uidParam('Series Instance UID') }),
  instance: z.object({ study: uidParam('Study Instance UID'), series: uidParam('Series Instance UID'), instance: uidParam('SOP Instance UID') }),
};

const oneOrMore = z.union([z.string(), z.array(z.string())]);

/** `?accept=` (PS3.18 8.3.3.1), honoured by every resource. */
export const acceptQuery = z.looseObject({
  accept: oneOrMore.optional().meta({ description: 'Media type(s) overriding the Accept header' }),
});

/** QIDO-RS: the control parameters; any other key is a matching key (keyword or 8-hex tag). */
export const qidoQuery = z
  .looseObject({
    limit: oneOrMore.optional().meta({ description: 'Maximum results (capped by qido_max_limit)' }),
    offset: oneOrMore.optional().meta({ description: 'Results to skip' }),
    fuzzymatching: oneOrMore.optional().meta({ description: '`true`: prefix match per person-name component' }),
    includefield: oneOrMore.optional().meta({ description: 'Extra attributes (keyword or tag, comma-separated or repeated) or `all`' }),
    accept: oneOrMore.optional(),
  })
  .meta({ description: 'Matching keys: `{attributeID}={value}`, e.g. `PatientName=DOE*`, `StudyDate=20240101-20241231`, `00080060=CT`' });

/** The DICOMweb root a route hangs under: OpenAPI operation ids must be unique across both roots. */
export function operationId(root: string, name: string): string {
  return root === '/wado' ? name : `${name}_${root.replace(/[^a-z]/gi, '')}`;
}

export const dicomJsonResponse = (description: string) => binaryResponse(description, [DICOM_JSON, 'application/json']);

export const qidoResponses = {
  200: { description: 'Matches (an empty array when none)', content: { [DICOM_JSON]: { schema: z.array(z.record(z.string(), z.unknown())) } } },
  ...errorResponses(400, 404, 406),
};

export { binaryResponse, errorResponses };
