import { z } from 'zod';
import { isValidUid, normalizeUid } from '../dicom/uid.js';

/**
 * Schema pieces shared by the routes (zod, through fastify-type-provider-zod): they validate
 * requests, serialize JSON responses and become the OpenAPI document (@fastify/swagger).
 */

/** Marks a validation issue that the error handler reports as INVALID_UID rather than INVALID_PARAMETER. */
export const UID_ISSUE = 'INVALID_UID';

/**
 * A UID in a path: checked by the one validator of dicom/uid.ts (SPEC §3: trailing NUL/space
 * stripped, then 1–64 characters of [0-9.]), documented by its pattern, and handed on stripped —
 * a padded UID names the stored one, and its NUL never reaches a database (PostgreSQL refuses
 * U+0000 in text).
 */
export function uidParam(description: string) {
  return z
    .string()
    .refine((v) => isValidUid(v), { message: 'not a valid UID', params: { errorCode: UID_ISSUE } })
    .transform(normalizeUid)
    .meta({ description, pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, example: '1.2.840.113619.2.55.3.604688119.969.1268071029.320' });
}

/** SPEC §3: every 4xx/5xx body. */
export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable UPPER_SNAKE code, listed in docs/errors.md', example: 'NOT_FOUND' }),
      message: z.string(),
      details: z.record(z.string(), z.unknown()),
    }),
  })
  .meta({ id: 'Error', description: 'Error body (SPEC §3)' });

/** The error responses a route documents (serialized with the same shape). */
export function errorResponses(...statuses: (400 | 403 | 404 | 406 | 409 | 413 | 415 | 503)[]): Record<number, typeof errorSchema> {
  const out: Record<number, typeof errorSchema> = {};
  for (const s of statuses) out[s] = errorSchema;
  return out;
}

/** A response whose body is not JSON (streams, DICOM): documented by media type, never serialized by a schema. */
export function binaryResponse(description: string, mediaTypes: string[]) {
  const content: Record<string, { schema: z.ZodType }> = {};
  for (const t of mediaTypes) content[t] = { schema: z.unknown() };
  return { description, content };
}

/** Query-string integers arrive as text. */
export function intQuery(description: string, bounds: { min: number; max?: number; default: number }) {
  let n = z.number().int().min(bounds.min);
  if (bounds.max !== undefined) n = n.max(bounds.max);
  // Decimal digits only: coercing with Number() would take 0x10, 1e3, +5 and an empty value (as
  // 0). Anything else stays a string, which the integer schema refuses (400 naming the field).
  return z
    .preprocess((v) => (typeof v === 'string' && /^[0-9]{1,15}$/.test(v) ? Number(v) : v), n)
    .default(bounds.default)
    .meta({ description });
}
