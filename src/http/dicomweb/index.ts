import type { FastifyInstance } from 'fastify';
import type { DicomwebRouteOptions } from './context.js';
import { registerQido } from './qido.js';
import { registerStow } from './stow.js';
import { registerWado } from './wado.js';

/** DICOMweb (PS3.18) under one root; registered once per root (`/wado`, `/dicom-web`). */
export async function dicomwebRoutes(app: FastifyInstance, opts: DicomwebRouteOptions): Promise<void> {
  registerStow(app, opts);
  registerQido(app, opts);
  registerWado(app, opts);
}
