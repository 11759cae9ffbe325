/**
 * Query/Retrieve FIND SCP (PS3.4 C.4.1), Study Root and Patient Root, at every level. The
 * identifier is decoded in its context's transfer syntax and its own Specific Character Set, each
 * non-empty key becomes a QIDO-style parameter of archive.query, so C-FIND matches exactly as
 * QIDO-RS does (one Query model), and the matches are fetched page by page and sent one pending
 * response at a time: nothing is collected first, and a C-CANCEL stops the stream at the next
 * response (final status FE00). Each response holds only the requested keys (empty where the match
 * has no value), the Query/Retrieve Level and (0008,0005) ISO_IR 192: answers are always UTF-8.
 */
import type { Archive } from '../../archive/archive.js';
import type { QueryParams } from '../../archive/query/build-query.js';
import { returnKeysOf, selectReturnKeys, type ReturnKey } from '../../archive/query/return-keys.js';
import { HeaderError, readPart10HeaderFromBuffer } from '../../dicom/header-reader.js';
import { personNameString } from '../../dicom/json.js';
import type { QueryLevel } from '../../dicom/query-model.js';
import { EXPLICIT_VR_LE } from '../../dicom/transfer-syntax.js';
import type { DicomJsonDataset, DicomJsonElement, DicomJsonValue, PersonName, Tag, VR } from '../../dicom/types.js';
import { isAddressableUid } from '../../dicom/uid.js';
import { encodeDicomJsonDataset, encodeFileMeta } from '../../dicom/writer.js';
import { PATIENT_ROOT_FIND, STUDY_ROOT_FIND } from '../acse/sop-classes.js';
import { CommandField, DATA_SET_PRESENT, NO_DATA_SET, type CommandSet } from '../message/command.js';
import { findFailure, Status } from '../message/status.js';
import type { FindHandler } from './acceptor.js';
import type { OperationContext } from './context.js';
import { loggableError } from '../../util/loggable-error.js';

export interface FindDeps {
  archive: Pick<Archive, 'query' | 'settings'>;
  /** server.ae_title: the value of Retrieve AE Title (0008,0054) when a request asks for it. */
  aeTitle?: string;
  /** Matches fetched per archive.query call; default (and at most) archive.settings.qidoMaxLimit. */
  pageSize?: number;
}

const QUERY_RETRIEVE_LEVEL: Tag = '00080052';
const SPECIFIC_CHARACTER_SET: Tag = '00080005';
const RETRIEVE_AE_TITLE: Tag = '00080054';

/** The levels of each information model (PS3.4 C.6.1 and C.6.2) and the query level they mean. */
const LEVELS: Readonly<Record<string, Readonly<Record<string, QueryLevel>>>> = {
  [PATIENT_ROOT_FIND]: { PATIENT: 'patient', STUDY: 'study', SERIES: 'series', IMAGE: 'instance' },
  [STUDY_ROOT_FIND]: { STUDY: 'study', SERIES: 'series', IMAGE: 'instance' },
};

/**
 * Keys that are return keys only: computed by the archive (counts, availability, ModalitiesInStudy
 * is matched though), or ours (Retrieve AE Title), or not part of matching (timezone offset; PS3.4
 * C.4.1.1.3.1 timezone adjustment is not negotiated). A value in one of these is not matched on,
 * and the pending responses say so with FF01.
 */
const RETURN_ONLY: ReadonlySet<Tag> = new Set([
  '00080054', // RetrieveAETitle
  '00080056', // InstanceAvailability
  '00080062', // SOPClassesInStudy
  '00080201', // TimezoneOffsetFromUTC
  '00081190', // RetrieveURL
  '00201200', // NumberOfPatientRelatedStudies
  '00201202', // NumberOfPatientRelatedSeries
  '00201204', // NumberOfPatientRelatedInstances
  '00201206', // NumberOfStudyRelatedSeries
  '00201208', // NumberOfStudyRelatedInstances
  '00201209', // NumberOfSeriesRelatedInstances
]);

/** VRs the query model matches on (dicom/matching.ts); keys of other VRs are return keys only. */
const MATCHABLE_VRS: ReadonlySet<VR> = new Set<VR>([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UR', 'US', 'UT', 'UV',
]);

/** Identifiers are small; anything decoded beyond this is refused (the acceptor bounds the bytes too). */
const MAX_IDENTIFIER_HEADER = 1024 * 1024;

function isPersonName(v: DicomJsonValue): v is PersonName {
  return typeof v === 'object' && v !== null && ('Alphabetic' in v || 'Ideographic' in v || 'Phonetic' in v);
}

/** A key's value as QIDO text: values joined with `\` (UID lists, multiple CS values), PN as `A=I=P`. */
export function keyText(el: DicomJsonElement): string {
  return (el.Value ?? [])
    .map((v) => (v === null ? '' : isPersonName(v) ? personNameString(v) : typeof v === 'object' ? '' : String(v)))
    .join('\\');
}

/** Whether a sequence key carries a value to match on (which we do not: FF01). */
function sequenceHasValue(el: DicomJsonElement): boolean {
  for (const item of el.Value ?? []) {
    if (item === null || typeof item !== 'object' || isPersonName(item)) continue;
    for (const inner of Object.values(item as DicomJsonDataset)) {
      if (inner.vr === 'SQ' ? sequenceHasValue(inner) : keyText(inner).trim() !== '') return true;
    }
  }
  return false;
}

export interface Plan {
  level: QueryLevel;
  levelText: string;
  studyUid?: string;
  seriesUid?: string;
  params: [string, string][];
  returnKeys: ReturnKey[];
  retrieveAeTitle: boolean;
  /** Some non-empty key is not matched on: pending responses are FF01. */
  unsupportedMatching: boolean;
}

export class IdentifierError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly offending?: Tag,
  ) {
    super(message);
    this.name = 'IdentifierError';
  }
}

/** The identifier as DICOM JSON: wrapped in a File Meta naming the context's transfer syntax. */
export function decodeIdentifier(identifier: Buffer, ctx: OperationContext, defaultCharacterSet: string): DicomJsonDataset {
  const meta = encodeFileMeta({ sopClassUid: ctx.presentation.abstractSyntax, sopInstanceUid: '2.25.0', transferSyntaxUid: ctx.presentation.transferSyntax });
  try {
    const parsed = readPart10HeaderFromBuffer(Buffer.concat([meta, identifier]), {
      bulkdataThreshold: MAX_IDENTIFIER_HEADER,
      maxHeaderBytes: MAX_IDENTIFIER_HEADER,
      defaultCharacterSet,
    });
    if (parsed.pixelData !== undefined) throw new IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, 'Pixel Data in a C-FIND identifier', parsed.pixelData.tag);
    return parsed.dataset;
  } catch (err) {
    if (err instanceof IdentifierError) throw err;
    throw new IdentifierError(Status.CANNOT_UNDERSTAND, `identifier cannot be decoded${err instanceof HeaderError ? `: ${err.code}` : ''}`);
  }
}

export function plan(ds: DicomJsonDataset, sopClassUid: string): Plan {
  const levelEl = ds[QUERY_RETRIEVE_LEVEL];
  const levelText = levelEl ? keyText(levelEl).trim().toUpperCase() : '';
  const level = LEVELS[sopClassUid]?.[levelText];
  if (level === undefined) {
    const why = levelText === '' ? 'no Query/Retrieve Level (0008,0052)' : `Query/Retrieve Level ${levelText.slice(0, 16)} not in this information model`;
    throw new IdentifierError(Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, why, QUERY_RETRIEVE_LEVEL);
  }
  const p: Plan = {
    level,
    levelText,
    params: [],
    returnKeys: returnKeysOf(ds, new Set([QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET])),
    retrieveAeTitle: ds[RETRIEVE_AE_TITLE] !== undefined,
    unsupportedMatching: false,
  };
  for (const [rawTag, el] of Object.entries(ds)) {
    const tag = rawTag.toUpperCase();
    if (tag === QUERY_RETRIEVE_LEVEL || tag === SPECIFIC_CHARACTER_SET || tag.endsWith('0000')) continue;
    if (el.vr === 'SQ') {
      if (sequenceHasValue(el)) p.unsupportedMatching = true;
      continue;
    }
    // A binary value (a key sent as UN, say) is not matched: with bytes, it is a key we did not
    // match (FF01), not universal matching.
    if (el.InlineBinary !== undefined && el.InlineBinary !== '') {
      p.unsupportedMatching = true;
      continue;
    }
    const value = keyText(el);
    if (value.replace(/[ \0]/g, '') === '') continue;
    const privateTag = (parseInt(tag.slice(0, 4), 16) & 1) === 1;
    if (privateTag || RETURN_ONLY.has(tag) || !MATCHABLE_VRS.has(el.vr)) {
      p.unsupportedMatching = true;
      continue;
    }
    // The unique keys of the levels above are the query's scope when they name one UID; anything
    // else (a list, `*` for universal matching, a value that is no UID) is matched as a key, which
    // validates it as one (PS3.4 C.2.2.2.4: `*` alone matches everything).
    const single = value.trim().replace(/\0+$/, '');
    const scope = isAddressableUid(single);
    if (tag === '0020000D' && level !== 'study' && level !== 'patient' && scope) {
      p.studyUid = single;
      continue;
    }
    if (tag === '0020000E' && level === 'instance' && scope) {
      p.seriesUid = single;
      continue;
    }
    p.params.push([tag, value]);
  }
  return p;
}

/** The tag to name in Offending Element for a key the archive reported (a tag, or a scope keyword). */
export function offendingTag(key: string | undefined): Tag | undefined {
  if (key === undefined) return undefined;
  if (/^[0-9A-Fa-f]{8}$/.test(key)) return key.toUpperCase();
  if (key === 'StudyInstanceUID') return '0020000D';
  if (key === 'SeriesInstanceUID') return '0020000E';
  return undefined;
}

export function createFindHandler(deps: FindDeps): FindHandler {
  const { archive } = deps;
  const maxPage = archive.settings.qidoMaxLimit;
  const pageSize = Math.max(1, Math.min(deps.pageSize ?? maxPage, maxPage));

  return async function* find(ctx: OperationContext, req: CommandSet, identifier: Buffer) {
    const sopClassUid = ctx.presentation.abstractSyntax;
    const response = (status: number, extra: Partial<CommandSet> = {}, withData = false): CommandSet => ({
      commandField: CommandField.C_FIND_RSP,
      commandDataSetType: withData ? DATA_SET_PRESENT : NO_DATA_SET,
      affectedSopClassUid: req.affectedSopClassUid ?? sopClassUid,
      ...(req.messageId !== undefined ? { messageIdBeingRespondedTo: req.messageId } : {}),
      status,
      ...extra,
    });
    const failure = (status: number, comment: string, offending?: Tag): { command: CommandSet } => ({
      command: response(status, { errorComment: comment.slice(0, 64), ...(offending !== undefined ? { offendingElement: [offending] } : {}) }),
    });
    const started = Date.now();
    let matches = 0;
    const log = (status: number, level?: QueryLevel): void => {
      ctx.logger.debug({ callingAe: ctx.callingAe, sopClassUid, queryLevel: level, matches, status: status.toString(16).padStart(4, '0'), durationMs: Date.now() - started }, 'C-FIND');
    };

    if (req.affectedSopClassUid !== undefined && req.affectedSopClassUid !== sopClassUid) {
      log(Status.SOP_CLASS_NOT_SUPPORTED);
      yield failure(Status.SOP_CLASS_NOT_SUPPORTED, 'Affected SOP Class differs from the presentation context');
      return;
    }

    let p: Plan;
    try {
      p = plan(decodeIdentifier(identifier, ctx, archive.settings.defaultCharacterSet), sopClassUid);
    } catch (err) {
      if (!(err instanceof IdentifierError)) throw err;
      log(err.status);
      yield failure(err.status, err.message, err.offending);
      return;
    }

    const explicitVr = ctx.presentation.transferSyntax === EXPLICIT_VR_LE;
    const include = p.returnKeys.map((k) => k.tag).join(',');
    const pending = p.unsupportedMatching ? Status.PENDING_WARNING : Status.PENDING;
    const cancelled = (): { command: CommandSet } => {
      log(Status.CANCEL, p.level);
      return { command: response(Status.CANCEL) };
    };

    let offset = 0;
    for (;;) {
      if (ctx.signal.aborted) {
        yield cancelled();
        return;
      }
      const params: QueryParams = [...p.params, ...(include !== '' ? [['includefield', include] as const] : []), ['limit', String(pageSize)], ['offset', String(offset)]];
      let page;
      try {
        page = await archive.query(ctx.call, {
          level: p.level,
          ...(p.studyUid !== undefined ? { studyUid: p.studyUid } : {}),
          ...(p.seriesUid !== undefined ? { seriesUid: p.seriesUid } : {}),
          params,
        });
      } catch (err) {
        const f = findFailure(err);
        if (f.status === Status.UNABLE_TO_PROCESS || f.status === Status.OUT_OF_RESOURCES) {
          ctx.logger.error({ callingAe: ctx.callingAe, err: loggableError(err) }, 'C-FIND query failed');
        }
        log(f.status, p.level);
        yield failure(f.status, f.comment, offendingTag(f.key));
        return;
      }
      for (const match of page.datasets) {
        if (ctx.signal.aborted) {
          yield cancelled();
          return;
        }
        const answer = selectReturnKeys(match, p.returnKeys);
        answer[QUERY_RETRIEVE_LEVEL] = { vr: 'CS', Value: [p.levelText] };
        if (p.retrieveAeTitle && deps.aeTitle !== undefined) answer[RETRIEVE_AE_TITLE] = { vr: 'AE', Value: [deps.aeTitle] };
        matches++;
        // encodeDicomJsonDataset writes every text value as UTF-8 and sets (0008,0005) ISO_IR 192.
        yield { command: response(pending, {}, true), identifier: encodeDicomJsonDataset(answer, { explicitVr }) };
      }
      if (page.remaining === 0 || page.datasets.length === 0) break;
      offset += page.datasets.length;
    }
    log(Status.SUCCESS, p.level);
    yield { command: response(Status.SUCCESS) };
  };
}
