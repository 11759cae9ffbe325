import type { Query } from '../../dicom/query-model.js';
import type { DicomJsonDataset, DicomJsonElement, Tag } from '../../dicom/types.js';
import type { QueryRows } from '../../storage/metadata.js';
import { INSTANCE_ATTRIBUTES, PATIENT_ATTRIBUTES, SERIES_ATTRIBUTES, STUDY_ATTRIBUTES, attributeLevel } from './return-attributes.js';

export interface ResourceRef {
  studyUid: string;
  seriesUid?: string;
  sopUid?: string;
}

export interface ResultOptions {
  /** Builds RetrieveURL (0008,1190); the edge knows the public base URL. Omitted when absent. */
  retrieveUrl?: (ref: ResourceRef) => string;
}

const COMPUTED_STUDY = new Set(['00080056', '00080061', '00081190', '00201206', '00201208']);
const COMPUTED_SERIES = new Set(['00080056', '00081190', '00201209']);

/** Deep copy without pacsnode-internal bulk references (values over the threshold are not returned by QIDO). */
function publicElement(el: DicomJsonElement): DicomJsonElement | undefined {
  if (el._bulk) return undefined;
  if (el.vr !== 'SQ' || !el.Value) return el;
  return {
    vr: 'SQ',
    Value: el.Value.map((item) => (item && typeof item === 'object' && !('Alphabetic' in item) ? publicDataset(item as DicomJsonDataset) : item)),
  };
}

function publicDataset(ds: DicomJsonDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const [tag, el] of Object.entries(ds)) {
    const p = publicElement(el);
    if (p) out[tag] = p;
  }
  return out;
}

interface Sources {
  study: DicomJsonDataset;
  series?: DicomJsonDataset;
  instance?: DicomJsonDataset;
}

function pick(sources: Sources, tag: Tag): DicomJsonElement | undefined {
  const lvl = attributeLevel(tag);
  const preferred = lvl === 'study' ? sources.study : lvl === 'series' ? (sources.series ?? sources.study) : (sources.instance ?? sources.series ?? sources.study);
  const el = preferred[tag] ?? sources.instance?.[tag] ?? sources.series?.[tag] ?? sources.study[tag];
  return el ? publicElement(el) : undefined;
}

function sorted(ds: DicomJsonDataset): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const tag of Object.keys(ds).sort()) out[tag] = ds[tag] as DicomJsonElement;
  return out;
}

function collect(tags: Iterable<Tag>, sources: Sources, skip: Set<string>, out: DicomJsonDataset): void {
  for (const tag of tags) {
    if (skip.has(tag) || out[tag]) continue;
    const el = pick(sources, tag);
    if (el) out[tag] = el;
  }
}

function withAll(query: Query, base: readonly Tag[], allOf: DicomJsonDataset[]): Iterable<Tag> {
  if (query.includeFields === 'all') {
    const s = new Set<Tag>(base);
    for (const ds of allOf) for (const t of Object.keys(ds)) s.add(t);
    return s;
  }
  return new Set<Tag>([...base, ...query.includeFields]);
}

const us = (n: number): DicomJsonElement => ({ vr: 'IS', Value: [n] });

/** Query rows -> QIDO-RS response datasets (PS3.18 10.6.3 return attributes, plus includefield). */
export function buildResultDatasets(query: Query, result: QueryRows, options: ResultOptions = {}): DicomJsonDataset[] {
  const url = options.retrieveUrl;
  switch (result.level) {
    case 'patient':
      return result.rows.map((r) => {
        const out: DicomJsonDataset = {};
        collect(withAll(query, PATIENT_ATTRIBUTES, [r.header]), { study: r.header }, new Set(), out);
        out['00201200'] = us(r.numStudies);
        return sorted(out);
      });
    case 'study':
      return result.rows.map((r) => {
        const out: DicomJsonDataset = {};
        out['00080056'] = { vr: 'CS', Value: ['ONLINE'] };
        if (r.modalities.length > 0) out['00080061'] = { vr: 'CS', Value: [...r.modalities] };
        out['00201206'] = us(r.numSeries);
        out['00201208'] = us(r.numInstances);
        if (url) out['00081190'] = { vr: 'UR', Value: [url({ studyUid: r.studyUid })] };
        collect(withAll(query, STUDY_ATTRIBUTES, [r.header]), { study: r.header }, COMPUTED_STUDY, out);
        return sorted(out);
      });
    case 'series':
      return result.rows.map((r) => {
        const out: DicomJsonDataset = {};
        out['00080056'] = { vr: 'CS', Value: ['ONLINE'] };
        out['00201209'] = us(r.numInstances);
        if (url) out['00081190'] = { vr: 'UR', Value: [url({ studyUid: r.studyUid, seriesUid: r.seriesUid })] };
        const base = query.studyUid === undefined ? [...SERIES_ATTRIBUTES, ...STUDY_ATTRIBUTES] : SERIES_ATTRIBUTES;
        collect(withAll(query, base, [r.header]), { study: r.studyHeader, series: r.header }, new Set([...COMPUTED_STUDY, ...COMPUTED_SERIES]), out);
        return sorted(out);
      });
    case 'instance':
      return result.rows.map((r) => {
        const out: DicomJsonDataset = {};
        out['00080056'] = { vr: 'CS', Value: ['ONLINE'] };
        if (url) out['00081190'] = { vr: 'UR', Value: [url({ studyUid: r.studyUid, seriesUid: r.seriesUid, sopUid: r.sopUid })] };
        const base: Tag[] = [...INSTANCE_ATTRIBUTES];
        if (query.studyUid === undefined) base.push(...STUDY_ATTRIBUTES);
        if (query.seriesUid === undefined) base.push(...SERIES_ATTRIBUTES);
        collect(
          withAll(query, base, [r.header]),
          { study: r.studyHeader, series: r.seriesHeader, instance: r.header },
          new Set([...COMPUTED_STUDY, ...COMPUTED_SERIES]),
          out,
        );
        // SOP Class/Instance UIDs are indexed columns: always present even if a header lacks them.
        out['00080016'] ??= { vr: 'UI', Value: [r.sopClassUid] };
        out['00080018'] ??= { vr: 'UI', Value: [r.sopUid] };
        return sorted(out);
      });
  }
}
