// Study searches and their Warning 299 counts stay exact when the compiler takes its shorter forms
// (ADR 0016): a study search joins patients only for a patient condition, and a count by
// ModalitiesInStudy alone counts the distinct studies of the matching series. On SQLite and
// PostgreSQL alike, every count equals the number of rows of the same search without a limit, and
// both equal what a brute force over the loaded records finds — with studies holding several series
// of one modality, of several modalities, and series without a modality.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Constraint, Query } from '../../src/dicom/query-model.js';
import type { CommitOptions, MetadataStore } from '../../src/storage/metadata.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { makeRecord, newUid } from '../contract/records.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const REPLACE: CommitOptions = { onDuplicate: 'replace', onPatientMismatch: 'accept' };
const MODALITY_SETS: (string | null)[][] = [['CT'], ['CT', 'CT'], ['CT', 'MR'], ['MR', 'SR', 'MR'], [null], [null, 'US'], ['CR'], ['DX', 'CR', 'CT']];

interface Loaded {
  studyUid: string;
  patientId: string;
  studyDate: string;
  modalities: (string | null)[];
}

/** 48 studies over 12 patients, each with the series of one of MODALITY_SETS. */
function corpus(): Loaded[] {
  return Array.from({ length: 48 }, (_, k) => ({
    studyUid: newUid(),
    patientId: `CNT${String(k % 12).padStart(3, '0')}`,
    studyDate: `2020${String((k % 12) + 1).padStart(2, '0')}${String((k % 28) + 1).padStart(2, '0')}`,
    modalities: MODALITY_SETS[k % MODALITY_SETS.length] ?? [],
  }));
}

async function load(store: MetadataStore, studies: Loaded[]): Promise<void> {
  for (const s of studies) {
    for (const [n, modality] of s.modalities.entries()) {
      await store.commitInstance(makeRecord({ studyUid: s.studyUid, seriesUid: newUid(), patientId: s.patientId, studyDate: s.studyDate, modality, seriesNumber: n + 1 }), REPLACE);
    }
  }
}

const q = (constraints: Constraint[], extra: Partial<Query> = {}): Query => ({ level: 'study', constraints, includeFields: [], fuzzy: false, limit: 0, offset: 0, ...extra });
const mis = (c: Partial<Constraint> & Pick<Constraint, 'kind'>): Constraint => ({ tag: '00080061', ...c }) as Constraint;

/** Searches with the brute-force predicate over the loaded studies. */
const CASES: [string, Constraint[], (s: Loaded) => boolean][] = [
  ['ModalitiesInStudy=CT', [mis({ kind: 'single', value: 'CT' })], (s) => s.modalities.includes('CT')],
  ['ModalitiesInStudy=MR\\SR', [mis({ kind: 'list', values: ['MR', 'SR'] })], (s) => s.modalities.some((m) => m === 'MR' || m === 'SR')],
  ['ModalitiesInStudy=C*', [mis({ kind: 'wildcard', pattern: 'C*' })], (s) => s.modalities.some((m) => m?.startsWith('C') === true)],
  ['ModalitiesInStudy=?R', [mis({ kind: 'wildcard', pattern: '?R' })], (s) => s.modalities.some((m) => m !== null && /^.R$/.test(m))],
  ['ModalitiesInStudy=PT (none)', [mis({ kind: 'single', value: 'PT' })], () => false],
  ['ModalitiesInStudy=* (universal)', [mis({ kind: 'wildcard', pattern: '*' })], () => true],
  ['ModalitiesInStudy=CT and a universal PatientName', [mis({ kind: 'single', value: 'CT' }), { kind: 'wildcard', tag: '00100010', pattern: '*' }], (s) => s.modalities.includes('CT')],
  ['ModalitiesInStudy=CT and =MR', [mis({ kind: 'single', value: 'CT' }), mis({ kind: 'single', value: 'MR' })], (s) => s.modalities.includes('CT') && s.modalities.includes('MR')],
  ['ModalitiesInStudy=CT and a StudyDate range', [mis({ kind: 'single', value: 'CT' }), { kind: 'range', tag: '00080020', from: '20200301', to: '20200630' }], (s) => s.modalities.includes('CT') && s.studyDate >= '20200301' && s.studyDate <= '20200630'],
  ['ModalitiesInStudy=CT and PatientID', [mis({ kind: 'single', value: 'CT' }), { kind: 'single', tag: '00100020', value: 'CNT002' }], (s) => s.modalities.includes('CT') && s.patientId === 'CNT002'],
  ['StudyDate range', [{ kind: 'range', tag: '00080020', from: '20200201', to: '20200415' }], (s) => s.studyDate >= '20200201' && s.studyDate <= '20200415'],
  ['PatientID', [{ kind: 'single', tag: '00100020', value: 'CNT007' }], (s) => s.patientId === 'CNT007'],
  ['no condition', [], () => true],
];

function countChecks(name: string, open: () => Promise<{ store: MetadataStore; close: () => Promise<void> }>): void {
  describe(name, () => {
    let store: MetadataStore;
    let close: () => Promise<void>;
    const studies = corpus();
    before(async () => {
      ({ store, close } = await open());
      await load(store, studies);
    });
    after(async () => {
      await close();
    });

    for (const [label, constraints, matches] of CASES) {
      it(`${label}: the count equals the rows found and the brute force`, async () => {
        const expected = studies.filter(matches).map((s) => s.studyUid).sort();
        const found = (await store.query(q(constraints))).rows.map((r) => ('studyUid' in r ? r.studyUid : '')).sort();
        assert.deepEqual(found, expected);
        assert.equal(await store.count(q(constraints, { limit: 3, offset: 2 })), expected.length);
      });
    }

    it('a StudyInstanceUID scope with ModalitiesInStudy counts that study only', async () => {
      const target = studies.find((s) => s.modalities.filter((m) => m === 'CT').length === 2);
      assert.ok(target);
      assert.equal(await store.count(q([mis({ kind: 'single', value: 'CT' })], { studyUid: target.studyUid })), 1);
      assert.equal(await store.count(q([mis({ kind: 'single', value: 'MR' })], { studyUid: target.studyUid })), 0);
    });
  });
}

countChecks('study search counts on SQLite', async () => {
  const store = createSqliteMetadataStore({ path: ':memory:' });
  await store.migrate();
  return { store, close: async () => store.close() };
});

let database: TestDatabase | undefined;
countChecks('study search counts on PostgreSQL', async () => {
  database = await createTestDatabase();
  const stores = createPostgresStores({ url: database.url, maxConnections: 4 });
  await stores.migrate();
  return {
    store: stores.metadata,
    close: async () => {
      await stores.close();
      await database?.drop();
    },
  };
});
