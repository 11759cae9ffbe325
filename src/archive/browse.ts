import { MODALITIES_IN_STUDY } from '../dicom/indexed.js';
import { buildConstraint } from '../dicom/matching.js';
import type { Constraint } from '../dicom/query-model.js';
import type { Tag, VR } from '../dicom/types.js';
import { isAddressableUid } from '../dicom/uid.js';
import type {
  ChangeKind,
  InstanceRow,
  MetadataStore,
  Page,
  PageOptions,
  SeriesSummary,
  StoreStatistics,
  StudySortKey,
  StudySummary,
} from '../storage/metadata.js';
import { authorize, type AccessPolicy } from './access/policy.js';
import type { CallContext } from './context.js';
import { ArchiveError } from './errors.js';

/**
 * Browsing the archive as the REST API does (SPEC §5): study lists with filters, sort and paging;
 * study, series and instance details. Filters are turned into the one Query model's constraints,
 * so they match exactly as QIDO-RS and C-FIND do (PN case-insensitive with wildcards, date ranges).
 */

export const BROWSE_DEFAULT_LIMIT = 100;
export const BROWSE_MAX_LIMIT = 1000;

export interface StudyFilters {
  /** DICOM wildcards `*` `?`; case-insensitive (PN rules). */
  patientName?: string;
  patientId?: string;
  /** `YYYYMMDD` or `YYYYMMDD-YYYYMMDD` (either end may be left open). */
  studyDate?: string;
  /** Any series of the study has this modality. */
  modality?: string;
  accessionNumber?: string;
}

export interface StudyListInput extends StudyFilters {
  /** `study_date`, `-study_date`, `received_at`, `-received_at` (default `-received_at`). */
  sort?: string;
  limit?: number;
  offset?: number;
}

export interface Paged<T> extends Page<T> {
  limit: number;
  offset: number;
}

export interface StudyDetail extends StudySummary {
  /** The study's series (all of them, in series-number order). */
  series: SeriesSummary[];
}

export interface ArchiveStatistics extends StoreStatistics {
  /** Instances stored or replaced in the last 24 hours (from `changes`). */
  receivedLast24h: number;
}

export interface Browse {
  studies(ctx: CallContext, input: StudyListInput): Promise<Paged<StudySummary>>;
  study(ctx: CallContext, studyUid: string): Promise<StudyDetail>;
  studySeries(ctx: CallContext, studyUid: string, page?: Partial<PageOptions>): Promise<Paged<SeriesSummary>>;
  series(ctx: CallContext, seriesUid: string): Promise<SeriesSummary>;
  seriesInstances(ctx: CallContext, seriesUid: string, page?: Partial<PageOptions>): Promise<Paged<InstanceRow>>;
  instanceRow(ctx: CallContext, sopUid: string): Promise<InstanceRow>;
  statistics(ctx: CallContext): Promise<ArchiveStatistics>;
}

export const STUDY_SORTS: readonly string[] = ['study_date', '-study_date', 'received_at', '-received_at'];
export const STUDY_DATE_PATTERN = /^(\d{8}|\d{8}-\d{8}|\d{8}-|-\d{8})$/;
const DAY_MS = 24 * 3600 * 1000;
/** Enough for any real study, and a bound on one response. */
const DETAIL_MAX_SERIES = 10_000;

function invalid(field: string, message: string): ArchiveError {
  return new ArchiveError('INVALID_PARAMETER', message, { field });
}

function checkUid(field: string, uid: string): void {
  if (!isAddressableUid(uid)) throw new ArchiveError('INVALID_UID', `${field} is not a valid UID`, { field });
}

export function pageOptions(page: Partial<PageOptions> | undefined): PageOptions {
  const limit = page?.limit ?? BROWSE_DEFAULT_LIMIT;
  const offset = page?.offset ?? 0;
  if (!Number.isInteger(limit) || limit < 1 || limit > BROWSE_MAX_LIMIT) throw invalid('limit', `limit must be an integer from 1 to ${BROWSE_MAX_LIMIT}`);
  if (!Number.isInteger(offset) || offset < 0) throw invalid('offset', 'offset must be a non-negative integer');
  return { limit, offset };
}

function filterConstraint(field: string, tag: Tag, vr: VR, value: string | undefined): Constraint | null {
  if (value === undefined) return null;
  try {
    return buildConstraint(tag, vr, value, { fuzzy: false });
  } catch (err) {
    throw invalid(field, `${field}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** REST filters -> the Query model's study-level constraints. */
export function studyConstraints(filters: StudyFilters): Constraint[] {
  if (filters.studyDate !== undefined) {
    if (!STUDY_DATE_PATTERN.test(filters.studyDate)) {
      throw invalid('study_date', 'study_date must be YYYYMMDD or YYYYMMDD-YYYYMMDD');
    }
  }
  const out = [
    filterConstraint('patient_name', '00100010', 'PN', filters.patientName),
    filterConstraint('patient_id', '00100020', 'LO', filters.patientId),
    filterConstraint('study_date', '00080020', 'DA', filters.studyDate),
    filterConstraint('modality', MODALITIES_IN_STUDY, 'CS', filters.modality),
    filterConstraint('accession_number', '00080050', 'SH', filters.accessionNumber),
  ];
  return out.filter((c): c is Constraint => c !== null);
}

export function parseStudySort(sort: string | undefined): { key: StudySortKey; descending: boolean } {
  const s = sort ?? '-received_at';
  if (!STUDY_SORTS.includes(s)) throw invalid('sort', `sort must be one of ${STUDY_SORTS.join(', ')}`);
  return { key: s.replace(/^-/, '') as StudySortKey, descending: s.startsWith('-') };
}

export function createBrowse(deps: { metadata: MetadataStore; policy: AccessPolicy; now: () => Date }): Browse {
  const { metadata, policy } = deps;

  async function study(ctx: CallContext, studyUid: string): Promise<StudyDetail> {
    checkUid('study', studyUid);
    authorize(policy, ctx, 'read', { studyUid });
    const summary = await metadata.getStudy(studyUid);
    const series = summary ? await metadata.listSeries(studyUid, { limit: DETAIL_MAX_SERIES, offset: 0 }) : undefined;
    if (!summary || !series) throw new ArchiveError('NOT_FOUND', 'study not found', { studyUid });
    return { ...summary, series: series.items };
  }

  return {
    async studies(ctx, input) {
      authorize(policy, ctx, 'read');
      const sort = parseStudySort(input.sort);
      const page = pageOptions(input);
      const constraints = studyConstraints(input);
      const result = await metadata.listStudies({ constraints, sort, ...page });
      return { ...result, ...page };
    },
    study,
    async studySeries(ctx, studyUid, pageIn) {
      checkUid('study', studyUid);
      authorize(policy, ctx, 'read', { studyUid });
      const page = pageOptions(pageIn);
      const result = await metadata.listSeries(studyUid, page);
      if (!result) throw new ArchiveError('NOT_FOUND', 'study not found', { studyUid });
      return { ...result, ...page };
    },
    async series(ctx, seriesUid) {
      checkUid('series', seriesUid);
      const row = await metadata.getSeries(seriesUid);
      // Authorized on the series' study once it is known; unknown series say nothing more.
      authorize(policy, ctx, 'read', row ? { studyUid: row.studyUid } : undefined);
      if (!row) throw new ArchiveError('NOT_FOUND', 'series not found', { seriesUid });
      return row;
    },
    async seriesInstances(ctx, seriesUid, pageIn) {
      checkUid('series', seriesUid);
      const page = pageOptions(pageIn);
      const result = await metadata.listSeriesInstances(seriesUid, page);
      const first = result?.items[0];
      authorize(policy, ctx, 'read', first ? { studyUid: first.studyUid } : undefined);
      if (!result) throw new ArchiveError('NOT_FOUND', 'series not found', { seriesUid });
      return { ...result, ...page };
    },
    async instanceRow(ctx, sopUid) {
      checkUid('instance', sopUid);
      const row = await metadata.getInstance(sopUid);
      authorize(policy, ctx, 'read', row ? { studyUid: row.studyUid } : undefined);
      if (!row) throw new ArchiveError('NOT_FOUND', 'instance not found', { sopUid });
      return row;
    },
    async statistics(ctx) {
      authorize(policy, ctx, 'read');
      // One snapshot of the index: the figures agree with each other under concurrent writes.
      const kinds: ChangeKind[] = ['stored', 'replaced'];
      const received = { since: new Date(deps.now().getTime() - DAY_MS), kinds };
      const { changesSince, ...stats } = await metadata.statistics({ changesSince: received });
      const receivedLast24h = changesSince ?? (await metadata.countChangesSince(received.since, received.kinds));
      return { ...stats, receivedLast24h };
    },
  };
}
