// Several pacsnode processes on one PostgreSQL database (SPEC §6, issue 5): concurrent ingests into
// the same NEW patient, study and series from two pools never fail, never duplicate a row, and
// leave exact counters — the write driver retries the loser of each first-insert race.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { CommitOptions, InstanceRecord } from '../../src/storage/metadata.js';
import { createPostgresStores, type PostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { makeRecord, newUid, token } from '../contract/records.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const REPLACE: CommitOptions = { onDuplicate: 'replace', onPatientMismatch: 'accept' };

describe('PostgreSQL: concurrent ingests from two processes', () => {
  let database: TestDatabase;
  let a: PostgresStores;
  let b: PostgresStores;
  let client: pg.Client;

  before(async () => {
    database = await createTestDatabase();
    a = createPostgresStores({ url: database.url, maxConnections: 10 });
    b = createPostgresStores({ url: database.url, maxConnections: 10 });
    await Promise.all([a.migrate(), b.migrate()]);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
  });
  after(async () => {
    await client.end();
    await a.close();
    await b.close();
    await database.drop();
  });

  const count = async (text: string, values: unknown[]): Promise<number> => Number((await client.query<{ n: string }>(text, values)).rows[0]?.n);

  /** Commits every record at once, alternating between the two stores. */
  const commitAll = (records: InstanceRecord[]) =>
    Promise.all(records.map((r, k) => (k % 2 === 0 ? a : b).metadata.commitInstance(r, REPLACE)));

  async function assertOneStudy(issuer: string, patientId: string, studyUid: string, seriesUids: string[], instances: number, bytes: number, storedChanges = instances): Promise<void> {
    assert.equal(await count('SELECT count(*) AS n FROM patients WHERE patient_id = $1 AND issuer = $2', [patientId, issuer]), 1);
    assert.equal(await count('SELECT count(*) AS n FROM studies WHERE study_uid = $1', [studyUid]), 1);
    for (const se of seriesUids) assert.equal(await count('SELECT count(*) AS n FROM series WHERE series_uid = $1', [se]), 1);
    const row = (
      await client.query<{ num_studies: number; num_series: number; num_instances: number; total_bytes: number; rows: number; series_sum: number }>(
        `SELECT p.num_studies::int, st.num_series::int, st.num_instances::int, st.total_bytes::int,
                (SELECT count(*)::int FROM instances i JOIN series se ON se.id = i.series_fk WHERE se.study_fk = st.id) AS rows,
                (SELECT sum(num_instances)::int FROM series se WHERE se.study_fk = st.id) AS series_sum
           FROM studies st JOIN patients p ON p.id = st.patient_fk WHERE st.study_uid = $1`,
        [studyUid],
      )
    ).rows[0];
    assert.deepEqual(row, { num_studies: 1, num_series: seriesUids.length, num_instances: instances, total_bytes: bytes, rows: instances, series_sum: instances });
    assert.equal(await count("SELECT count(*) AS n FROM changes WHERE study_uid = $1 AND kind = 'stored'", [studyUid]), storedChanges);
  }

  it('20 instances of one new patient, study and series at once: all stored, one row each, exact counters', async () => {
    for (let round = 0; round < 5; round++) {
      const issuer = token();
      const patientId = token('P');
      const studyUid = newUid();
      const seriesUid = newUid();
      const records = Array.from({ length: 20 }, (_, k) => makeRecord({ issuer, patientId, studyUid, seriesUid, size: 10 + k, instanceNumber: k + 1 }));
      const results = await commitAll(records);
      assert.deepEqual(results.map((r) => r.kind), records.map(() => 'stored'));
      await assertOneStudy(issuer, patientId, studyUid, [seriesUid], 20, records.reduce((s, r) => s + r.blob.size, 0));
    }
  });

  it('new series of one new study, and new studies of one new patient, at once', async () => {
    const issuer = token();
    const patientId = token('P');
    const studyUid = newUid();
    const seriesUids = Array.from({ length: 4 }, () => newUid());
    const records = Array.from({ length: 20 }, (_, k) => makeRecord({ issuer, patientId, studyUid, seriesUid: seriesUids[k % 4], size: 5 }));
    assert.ok((await commitAll(records)).every((r) => r.kind === 'stored'));
    await assertOneStudy(issuer, patientId, studyUid, seriesUids, 20, 100);

    const other = token('P');
    const studies = Array.from({ length: 10 }, () => newUid());
    const many = studies.map((s) => makeRecord({ issuer, patientId: other, studyUid: s, size: 1 }));
    assert.ok((await commitAll(many)).every((r) => r.kind === 'stored'));
    assert.equal(await count('SELECT count(*) AS n FROM patients WHERE patient_id = $1 AND issuer = $2', [other, issuer]), 1);
    assert.equal(await count('SELECT num_studies AS n FROM patients WHERE patient_id = $1 AND issuer = $2', [other, issuer]), 10);
  });

  it('the same instance sent through both processes at once is stored once; the other is a duplicate', async () => {
    const r = makeRecord({ issuer: token(), studyUid: newUid() });
    const results = await Promise.all([a.metadata.commitInstance(r, REPLACE), b.metadata.commitInstance(r, REPLACE)]);
    assert.deepEqual(results.map((x) => x.kind).sort(), ['duplicate', 'stored']);
    assert.equal(await count('SELECT count(*) AS n FROM instances WHERE sop_uid = $1', [r.sopUid]), 1);
    assert.equal(await count('SELECT num_instances AS n FROM studies WHERE study_uid = $1', [r.studyUid]), 1);
  });

  it('a study removed on one process while the other ingests into it leaves no orphan and exact counters', async () => {
    const issuer = token();
    const patientId = token('P');
    const studyUid = newUid();
    const seriesUid = newUid();
    await a.metadata.commitInstance(makeRecord({ issuer, patientId, studyUid, seriesUid }), REPLACE);
    const late = Array.from({ length: 10 }, () => makeRecord({ issuer, patientId, studyUid, seriesUid, size: 7 }));
    const [removed, ...stored] = await Promise.all([b.metadata.removeStudy(studyUid), ...late.map((r) => a.metadata.commitInstance(r, REPLACE))]);
    assert.ok(removed);
    assert.ok(stored.every((r) => r.kind === 'stored'));
    // Whatever committed after the removal forms a consistent study again.
    const left = await count('SELECT count(*) AS n FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = $1', [studyUid]);
    assert.equal(left + removed.instances, 11);
    if (left > 0) await assertOneStudy(issuer, patientId, studyUid, [seriesUid], left, left * 7, 11);
    else assert.equal(await count('SELECT count(*) AS n FROM studies WHERE study_uid = $1', [studyUid]), 0);
  });
});
