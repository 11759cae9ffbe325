import type { FastifyRequest } from 'fastify';
import type { Archive } from '../../archive/archive.js';
import type { ResourceRef } from '../../archive/query/results.js';
import { requestOrigin, type BaseUrlSettings } from '../base-url.js';

export interface DicomwebDeps {
  archive: Archive;
  baseUrl: BaseUrlSettings;
  /** 0 = none */
  maxRequestBytes: number;
  /** STOW-RS: a request body that sends nothing this long while it is being read is abandoned. */
  stowStallMs: number;
}

export interface DicomwebRouteOptions extends DicomwebDeps {
  /** '/wado' or '/dicom-web': generated URLs keep the root the request used. */
  root: string;
}

/** `${origin}${root}` for the request: the prefix of every URL we generate. */
export function serviceUrl(request: FastifyRequest, opts: DicomwebRouteOptions): string {
  return `${requestOrigin(request, opts.baseUrl)}${opts.root}`;
}

export function resourceUrl(base: string, ref: ResourceRef): string {
  let url = `${base}/studies/${ref.studyUid}`;
  if (ref.seriesUid) url += `/series/${ref.seriesUid}`;
  if (ref.sopUid) url += `/instances/${ref.sopUid}`;
  return url;
}
