import type { NodeFields, NodeRecord, NodeStore } from '../storage/nodes.js';
import { ALLOW_ALL, authorize, type AccessPolicy } from './access/policy.js';
import { pageOptions } from './browse.js';
import { silentLogger, type CallContext, type Logger } from './context.js';
import { ArchiveError, toArchiveError } from './errors.js';

/**
 * Remote DICOM nodes (SPEC §5): validation and upsert by AE title, the AE whitelist and the
 * move-destination catalogue used by DIMSE. Every call takes a CallContext; changes need 'admin',
 * reads 'read'. Invalid input is INVALID_PARAMETER naming the SPEC field in details.field.
 */

/** What an edge gives to create or replace a node; omitted flags default to true. */
export interface NodeInput {
  aeTitle: string;
  host: string;
  port: number;
  description?: string | null;
  allowStore?: boolean;
  allowFind?: boolean;
  allowRetrieve?: boolean;
  moveDestination?: boolean;
}

export interface NodePageResult {
  items: NodeRecord[];
  total: number;
  limit: number;
  offset: number;
}

export interface NodeService {
  list(ctx: CallContext, options?: { limit?: number; offset?: number; moveDestination?: boolean }): Promise<NodePageResult>;
  /** NOT_FOUND when unknown. */
  get(ctx: CallContext, aeTitle: string): Promise<NodeRecord>;
  /** The node with this AE title (exact, after trimming spaces), or undefined: the DIMSE whitelist and C-MOVE destination lookup. */
  find(ctx: CallContext, aeTitle: string): Promise<NodeRecord | undefined>;
  /** Nodes usable as C-MOVE destinations. */
  moveDestinations(ctx: CallContext): Promise<NodeRecord[]>;
  /** Creates or replaces the node of `input.aeTitle`. */
  upsert(ctx: CallContext, input: NodeInput): Promise<{ node: NodeRecord; created: boolean }>;
  /** NOT_FOUND when unknown. */
  remove(ctx: CallContext, aeTitle: string): Promise<void>;
}

export interface NodeServiceDeps {
  store: NodeStore;
  policy?: AccessPolicy;
  logger?: Logger;
  now?: () => Date;
}

export const AE_TITLE_MAX = 16;
export const HOST_MAX = 253;
export const DESCRIPTION_MAX = 256;

function invalid(field: string, message: string): ArchiveError {
  return new ArchiveError('INVALID_PARAMETER', message, { field });
}

/** Leading and trailing spaces are not significant in an AE title (PS3.5 AE); other whitespace is refused below. */
function trimSpaces(s: string): string {
  return s.replace(/^ +/, '').replace(/ +$/, '');
}

/**
 * An AE title as stored: spaces trimmed, 1–16 characters of the DICOM default repertoire
 * (printable ASCII), no backslash, no control characters; case is kept (titles are case-sensitive).
 */
export function normaliseAeTitle(value: unknown, field = 'ae_title'): string {
  if (typeof value !== 'string') throw invalid(field, `${field} must be a string`);
  const ae = trimSpaces(value);
  if (ae.length === 0) throw invalid(field, `${field} must not be empty`);
  if (ae.length > AE_TITLE_MAX) throw invalid(field, `${field} must be at most ${AE_TITLE_MAX} characters`);
  if (ae.includes('\\')) throw invalid(field, `${field} must not contain a backslash`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(ae)) throw invalid(field, `${field} must not contain control characters`);
  if (/[^\u0020-\u007e]/.test(ae)) throw invalid(field, `${field} must use ASCII characters only (DICOM default repertoire)`);
  return ae;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX_GROUP_RE = /^[0-9A-Fa-f]{1,4}$/;
const LABEL_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export function isIpv4(s: string): boolean {
  return IPV4_RE.test(s);
}

export function isIpv6(s: string): boolean {
  let text = s;
  const zone = text.indexOf('%');
  if (zone >= 0) {
    if (!/^%[A-Za-z0-9._-]+$/.test(text.slice(zone))) return false;
    text = text.slice(0, zone);
  }
  if (!text.includes(':')) return false;
  // An embedded IPv4 tail (::ffff:192.0.2.1) counts as two groups.
  const last = text.lastIndexOf(':');
  const tail = text.slice(last + 1);
  if (tail.includes('.')) {
    if (!isIpv4(tail)) return false;
    text = `${text.slice(0, last + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = (part: string | undefined): string[] => (part === undefined || part === '' ? [] : part.split(':'));
  const all = [...groups(halves[0]), ...groups(halves[1])];
  if (!all.every((g) => HEX_GROUP_RE.test(g))) return false;
  return halves.length === 2 ? all.length <= 7 : all.length === 8;
}

/** RFC 1123 host name (underscores tolerated: container and Windows names use them); the last label is not all digits. */
export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > HOST_MAX) return false;
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  const labels = name.split('.');
  if (!labels.every((l) => LABEL_RE.test(l))) return false;
  return !/^\d+$/.test(labels[labels.length - 1] ?? '');
}

/** A host as stored: whitespace trimmed, a host name or an IP literal (IPv6 brackets removed). */
export function normaliseHost(value: unknown, field = 'host'): string {
  if (typeof value !== 'string') throw invalid(field, `${field} must be a string`);
  let host = value.trim();
  if (host.length === 0) throw invalid(field, `${field} must not be empty`);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.length > HOST_MAX) throw invalid(field, `${field} must be at most ${HOST_MAX} characters`);
  if (isIpv4(host) || isIpv6(host) || isHostname(host)) return host;
  throw invalid(field, `${field} must be a host name or an IP address`);
}

export function checkPort(value: unknown, field = 'port'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw invalid(field, `${field} must be an integer from 1 to 65535`);
  }
  return value;
}

function checkFlag(value: unknown, field: string): boolean {
  if (value === undefined) return true;
  if (typeof value !== 'boolean') throw invalid(field, `${field} must be true or false`);
  return value;
}

/**
 * Control characters: C0 (U+0000–U+001F, ESC included), DEL and C1 (U+007F–U+009F). Free text of
 * the API (a node's description, a PatientID, C-FIND matching values) refuses them all: DICOM's LO
 * allows only ESC, and only inside ISO 2022 byte encodings, never in the decoded Unicode text a JSON
 * body carries; PostgreSQL stores no U+0000 in text or jsonb at all.
 */
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
/** An unpaired UTF-16 surrogate: no Unicode character (a text column would get U+FFFD, jsonb refuses it). */
const LONE_SURROGATE_RE = /\p{Surrogate}/u;

/** Why `text` cannot be stored or sent as free text, or undefined when it can. */
export function textProblem(text: string): string | undefined {
  if (CONTROL_RE.test(text)) return 'must not contain control characters';
  if (LONE_SURROGATE_RE.test(text)) return 'must be well-formed Unicode (no unpaired surrogate)';
  return undefined;
}

/** INVALID_PARAMETER naming `field` when `text` holds control characters or unpaired surrogates. */
export function checkText(text: string, field: string): string {
  const problem = textProblem(text);
  if (problem !== undefined) throw invalid(field, `${field} ${problem}`);
  return text;
}

/**
 * The AE title a lookup (get, find, remove) asks the store for: spaces trimmed; undefined when it
 * cannot be a valid AE title, so no node can have it (and the database never sees it).
 */
function lookupAeTitle(value: string): string | undefined {
  try {
    return normaliseAeTitle(value);
  } catch {
    return undefined;
  }
}

function checkDescription(value: unknown, field = 'description'): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw invalid(field, `${field} must be a string`);
  const text = checkText(value, field).trim();
  if ([...text].length > DESCRIPTION_MAX) throw invalid(field, `${field} must be at most ${DESCRIPTION_MAX} characters`);
  return text.length === 0 ? null : text;
}

/** Validates and normalises a node (SPEC §5), in field order, so the first bad field is reported. */
export function validateNode(input: NodeInput): NodeFields {
  return {
    aeTitle: normaliseAeTitle(input.aeTitle),
    host: normaliseHost(input.host),
    port: checkPort(input.port),
    description: checkDescription(input.description),
    allowStore: checkFlag(input.allowStore, 'allow_store'),
    allowFind: checkFlag(input.allowFind, 'allow_find'),
    allowRetrieve: checkFlag(input.allowRetrieve, 'allow_retrieve'),
    moveDestination: checkFlag(input.moveDestination, 'move_destination'),
  };
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toArchiveError(err);
  }
}

export function createNodeService(deps: NodeServiceDeps): NodeService {
  const { store } = deps;
  const policy = deps.policy ?? ALLOW_ALL;
  const logger = deps.logger ?? silentLogger;
  const now = deps.now ?? (() => new Date());

  return {
    list: (ctx, options) =>
      guard(async () => {
        authorize(policy, ctx, 'read');
        const page = pageOptions(options);
        const result = await store.list({ ...page, ...(options?.moveDestination !== undefined ? { moveDestination: options.moveDestination } : {}) });
        return { ...result, ...page };
      }),
    get: (ctx, aeTitle) =>
      guard(async () => {
        authorize(policy, ctx, 'read');
        const ae = lookupAeTitle(aeTitle);
        const node = ae === undefined ? undefined : await store.get(ae);
        if (!node) throw new ArchiveError('NOT_FOUND', 'node not found', { ae_title: aeTitle });
        return node;
      }),
    find: (ctx, aeTitle) =>
      guard(async () => {
        authorize(policy, ctx, 'read');
        const ae = lookupAeTitle(aeTitle);
        return ae === undefined ? undefined : store.get(ae);
      }),
    moveDestinations: (ctx) =>
      guard(async () => {
        authorize(policy, ctx, 'read');
        return store.listMoveDestinations();
      }),
    upsert: (ctx, input) =>
      guard(async () => {
        authorize(policy, ctx, 'admin');
        const fields = validateNode(input);
        const result = await store.upsert(fields, { at: now() });
        logger.info({ aeTitle: fields.aeTitle, created: result.created, origin: ctx.origin.protocol }, result.created ? 'node created' : 'node updated');
        return result;
      }),
    remove: (ctx, aeTitle) =>
      guard(async () => {
        authorize(policy, ctx, 'admin');
        const ae = lookupAeTitle(aeTitle);
        if (ae === undefined || !(await store.delete(ae))) throw new ArchiveError('NOT_FOUND', 'node not found', { ae_title: aeTitle });
        logger.info({ aeTitle: ae, origin: ctx.origin.protocol }, 'node deleted');
      }),
  };
}
