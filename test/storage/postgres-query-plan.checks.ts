// QIDO on PostgreSQL uses indexes (issue 5, "how it is proven"): after ~2,000 studies and ANALYZE,
// with enable_seqscan = off, EXPLAIN of the exact SQL the shared compiler emits shows no Seq Scan on
// patients/studies/series/instances, and each key is served by the index meant for it — PN
// wildcards (prefix and infix) by the pg_trgm index on the framed normalised name.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Kysely, PostgresDialect, type Compilable } from 'kysely';
import pg from 'pg';
import type { Constraint, Query, QueryLevel } from '../../src/dicom/query-model.js';
import type { CommitOptions } from '../../src/storage/metadata.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { countMatches, selectPatients, selectStudies } from '../../src/storage/sql/compile-query.js';
import { postgresDialect } from '../../src/storage/sql/dialect.js';
import type { IndexDatabase } from '../../src/storage/sql/schema.js';
import { makeRecord, newUid } from '../contract/records.js';
import type { TestDatabase } from '../helpers/postgres.js';

const REPLACE: CommitOptions = { onDuplicate: 'replace', onPatientMismatch: 'accept' };
const STUDIES = 2000;
const FILLER_PATIENTS = 50_000;
const SYLLABLES = ['ka', 'to', 'mi', 'ra', 'no', 'be', 'li', 'su', 'de', 'vo', 'gan', 'ter', 'wel', 'bri', 'sch', 'mar'];
/** Realistically many distinct names (none contains "doe" or "ohn"), plus a few Doe and John. */
function nameOf(k: number): string {
  const word = (seed: number): string => {
    let x = (seed * 2_654_435_761) >>> 0;
    let w = '';
    for (let s = 0; s < 3; s++) {
      w += SYLLABLES[x % SYLLABLES.length];
      x = Math.floor(x / SYLLABLES.length);
    }
    return w[0]?.toUpperCase() + w.slice(1);
  };
  const family = k % 97 === 0 ? 'Doe' : word(k + 1);
  const given = k % 89 === 0 ? 'John' : word(k + 100_003);
  return `${family}^${given}`;
}
const MODALITIES = ['CT', 'MR', 'US', 'CR', 'DX', 'MG', 'PT', 'NM', 'XA', 'RF'];

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

function q(level: QueryLevel, constraints: Constraint[], extra: Partial<Query> = {}): Query {
  return { level, constraints, includeFields: [], fuzzy: false, limit: 100, offset: 0, ...extra };
}

/**
 * The plan checks, on the server that `createDatabase` makes a fresh database on: run by
 * postgres-query-plan.test.ts on the system PostgreSQL and by postgres16.test.ts on PostgreSQL 16.
 */
export function postgresQueryPlanChecks(name: string, createDatabase: () => Promise<TestDatabase>): void {
  describe(name, () => {
    let database: TestDatabase;
    let client: pg.Client;
    let db: Kysely<IndexDatabase>;
    const studyUids: string[] = [];

    before(async () => {
      database = await createDatabase();
      const stores = createPostgresStores({ url: database.url, maxConnections: 8 });
      await stores.migrate();
      // Patients with no study (as after a migration from another archive), stored first: with only
      // the 2,000 patients below, whose rows are slim (patient attributes only) and whose names are
      // built from 16 syllables, the planner rightly reads them all instead of the trigram index;
      // a real archive has more patients with more varied names.
      const fill = new pg.Client({ connectionString: database.url });
      await fill.connect();
      const ids = Array.from({ length: FILLER_PATIENTS }, (_, k) => `FILL${String(k).padStart(7, '0')}`);
      // Names as varied as a real population's (hex digits: none contains "doe" or "ohn").
      const hex = (s: string, n: number): string => createHash('md5').update(s).digest('hex').slice(0, n);
      const names = ids.map((_, k) => `${hex(`f${k}`, 10)}^${hex(`g${k}`, 8)}`);
      await fill.query(
        `INSERT INTO patients (patient_id, issuer, patient_name, patient_name_norm, header, num_studies, created_at, updated_at)
         SELECT id, '', name, lower(name), '{}'::jsonb, 0, now(), now() FROM unnest($1::text[], $2::text[]) AS t(id, name)`,
        [ids, names],
      );
      await fill.end();
      const specs = Array.from({ length: STUDIES }, (_, k) => {
        const studyUid = newUid();
        studyUids.push(studyUid);
        const day = new Date(Date.UTC(2015, 0, 1) + k * 2 * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '');
        return makeRecord({
          issuer: k % 50 === 0 ? 'OTHER' : '',
          patientId: `PID${String(k).padStart(6, '0')}`,
          patientName: nameOf(k),
          studyUid,
          studyDate: day,
          accessionNumber: `ACC${String(k).padStart(7, '0')}`,
          modality: MODALITIES[k % MODALITIES.length],
          studyDescription: `Study ${k % 40}`,
        });
      });
      // Eight writers at a time, each commit its own short transaction, as ingest does.
      for (let k = 0; k < specs.length; k += 8) {
        await Promise.all(specs.slice(k, k + 8).map((r) => stores.metadata.commitInstance(r, REPLACE)));
      }
      await stores.close();

      client = new pg.Client({ connectionString: database.url });
      await client.connect();
      // ANALYZE samples 300 × default_statistics_target rows: at the default (100), 30,000 of the
      // 52,000 patients, and a random sample whose 100-entry histogram happens to hold a name with
      // "ohn" or "doe" (~1 run in 15, on 15 and 16 alike) makes the planner expect 1% of the patients
      // to match and walk patients_pkey with a filter instead. 1000 samples every row: the same
      // statistics, and the same plans, on every run.
      await client.query('SET default_statistics_target = 1000');
      await client.query('ANALYZE');
      await client.query('SET enable_seqscan = off');
      // Only to compile: kysely never connects through this pool.
      db = new Kysely<IndexDatabase>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 1 }) }) });
    });
    after(async () => {
      await client.end();
      await db.destroy();
      await database.drop();
    });

    async function explain(c: Compilable): Promise<PlanNode[]> {
      const compiled = c.compile();
      const res = await client.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(`EXPLAIN (FORMAT JSON) ${compiled.sql}`, [...compiled.parameters]);
      const plan = res.rows[0]?.['QUERY PLAN'][0]?.Plan;
      assert.ok(plan);
      return nodes(plan);
    }

    /** EXPLAINs the study query and its count; no Seq Scan on an index table; returns the indexes used. */
    async function studyPlan(query: Query): Promise<Set<string>> {
      const used = new Set<string>();
      for (const c of [selectStudies(db, postgresDialect, query), countMatches(db, postgresDialect, query)]) {
        const plan = await explain(c);
        const seq = plan.filter((n) => n['Node Type'] === 'Seq Scan').map((n) => n['Relation Name']);
        assert.deepEqual(seq, [], `Seq Scan in ${c.compile().sql}`);
        for (const n of plan) if (n['Index Name'] !== undefined) used.add(n['Index Name']);
      }
      return used;
    }

    const expectIndex = (used: Set<string>, ...any: string[]): void =>
      assert.ok(any.some((i) => used.has(i)), `expected one of ${any.join(', ')}; used: ${[...used].join(', ')}`);

    it('PatientID', async () => {
      expectIndex(await studyPlan(q('study', [{ kind: 'single', tag: '00100020', value: 'PID000123' }])), 'patients_patient_id_issuer');
    });

    it('PatientName DOE* (prefix) and *OHN* (infix) through the pg_trgm index, also at patient level', async () => {
      for (const pattern of ['DOE*', '*OHN*', 'Doe^J*']) {
        const c: Constraint = { kind: 'wildcard', tag: '00100010', pattern };
        expectIndex(await studyPlan(q('study', [c])), 'patients_patient_name_norm_trgm');
        const plan = await explain(selectPatients(db, postgresDialect, q('patient', [c])));
        const shape = `${pattern}: ${JSON.stringify(plan.map((n) => [n['Node Type'], n['Relation Name'], n['Index Name']]))}`;
        assert.ok(plan.some((n) => n['Index Name'] === 'patients_patient_name_norm_trgm'), shape);
        assert.ok(!plan.some((n) => n['Node Type'] === 'Seq Scan'), shape);
      }
      expectIndex(await studyPlan(q('study', [{ kind: 'single', tag: '00100010', value: 'Doe^John' }])), 'patients_patient_name_norm_trgm');
      // Fuzzy matching is three LIKEs OR-ed (a word may start after '=', '^' or a space); the planner
      // may prefer walking an index with a filter over a BitmapOr, but never reads the table whole.
      await studyPlan(q('study', [{ kind: 'fuzzy', tag: '00100010', value: 'joh' }]));
    });

    it('StudyDate range', async () => {
      expectIndex(await studyPlan(q('study', [{ kind: 'range', tag: '00080020', from: '20200101', to: '20200131' }])), 'studies_study_date');
    });

    it('a study search without a patient condition reads no patient (ADR 0016): a StudyDate range fetches its matches by index', async () => {
      const range = q('study', [{ kind: 'range', tag: '00080020', from: '20200101', to: '20200131' }]);
      const plan = await explain(selectStudies(db, postgresDialect, { ...range, limit: range.limit + 1 }));
      const shape = JSON.stringify(plan.map((n) => [n['Node Type'], n['Relation Name'], n['Index Name']]));
      assert.ok(!plan.some((n) => n['Relation Name'] === 'patients'), shape);
      assert.ok(plan.some((n) => n['Index Name'] === 'studies_study_date'), shape);
      // With a patient condition the join is there.
      const byPatient = await explain(selectStudies(db, postgresDialect, q('study', [{ kind: 'single', tag: '00100020', value: 'PID000123' }])));
      assert.ok(byPatient.some((n) => n['Relation Name'] === 'patients' || n['Index Name']?.startsWith('patients_') === true));
    });

    it('AccessionNumber, exact and prefix wildcard', async () => {
      expectIndex(await studyPlan(q('study', [{ kind: 'single', tag: '00080050', value: 'ACC0000042' }])), 'studies_accession_number');
      expectIndex(await studyPlan(q('study', [{ kind: 'wildcard', tag: '00080050', pattern: 'ACC00001*' }])), 'studies_accession_number');
    });

    it('ModalitiesInStudy', async () => {
      expectIndex(await studyPlan(q('study', [{ kind: 'single', tag: '00080061', value: 'MG' }])), 'series_modality', 'series_study_fk_modality');
      expectIndex(await studyPlan(q('study', [{ kind: 'list', tag: '00080061', values: ['MG', 'PT'] }])), 'series_modality', 'series_study_fk_modality');
    });

    it('the count of a ModalitiesInStudy search reads series only, by its modality index (ADR 0016)', async () => {
      for (const c of [{ kind: 'single', tag: '00080061', value: 'MG' }, { kind: 'list', tag: '00080061', values: ['MG', 'PT'] }] satisfies Constraint[]) {
        const plan = await explain(countMatches(db, postgresDialect, q('study', [c])));
        const shape = JSON.stringify(plan.map((n) => [n['Node Type'], n['Relation Name'], n['Index Name']]));
        assert.deepEqual([...new Set(plan.flatMap((n) => (n['Relation Name'] === undefined ? [] : [n['Relation Name']])))], ['series'], shape);
        assert.ok(plan.some((n) => n['Index Name'] === 'series_modality' || n['Index Name'] === 'series_study_fk_modality'), shape);
      }
    });

    it('StudyInstanceUID list', async () => {
      expectIndex(await studyPlan(q('study', [{ kind: 'list', tag: '0020000D', values: studyUids.slice(100, 110) }])), 'studies_study_uid');
    });

    it('default order with a limit walks the primary key backwards', async () => {
      const plan = await explain(selectStudies(db, postgresDialect, q('study', [], { limit: 25 })));
      assert.ok(!plan.some((n) => n['Node Type'] === 'Seq Scan'));
      assert.ok(plan.some((n) => n['Node Type'] === 'Index Scan Backward' || (n['Index Name'] === 'studies_pkey' && n['Node Type'] === 'Index Scan')), JSON.stringify(plan.map((n) => [n['Node Type'], n['Index Name']])));
    });

    it('the queries return what was loaded (the plans are of working queries)', async () => {
      const stores = createPostgresStores({ url: database.url, maxConnections: 2 });
      try {
        const count = (c: Constraint[]): Promise<number> => stores.metadata.count(q('study', c));
        const names = Array.from({ length: STUDIES }, (_, k) => nameOf(k).toLowerCase());
        assert.equal(await count([{ kind: 'wildcard', tag: '00100010', pattern: 'DOE*' }]), names.filter((n) => n.startsWith('doe')).length);
        assert.equal(await count([{ kind: 'wildcard', tag: '00100010', pattern: '*OHN*' }]), names.filter((n) => n.includes('ohn')).length);
        assert.equal(await count([{ kind: 'range', tag: '00080020', from: '20150101', to: '20150110' }]), 5);
        assert.equal(await count([{ kind: 'single', tag: '00080061', value: 'MG' }]), STUDIES / MODALITIES.length);
        assert.equal(await count([{ kind: 'wildcard', tag: '00080050', pattern: 'ACC00001*' }]), 100);
      } finally {
        await stores.close();
      }
    });
  });
}
