// GET /api/statistics and the REST lists under concurrent writes (SPEC §5, §6): every answer is
// one snapshot. The figures come from several statements (patients, study totals, instances per
// modality, changes in the last 24 h; a list's page and its total); on PostgreSQL each pool
// statement used to see a different commit, so e.g. instances=7 came with by_modality
// {CT:2,MR:2,US:2}. Writers store and delete instances of three modalities for a few seconds while
// a reader checks that each answer agrees with itself.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setImmediate } from 'node:timers/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CommitOptions, MetadataStore } from '../../src/storage/metadata.js';
import { createPostgresStores, type PostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { makeRecord, newUid, token } from '../contract/records.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const REPLACE: CommitOptions = { onDuplicate: 'replace', onPatientMismatch: 'accept' };
const WRITE_MS = 3000;
const SIZE = 1000;
const MODALITIES = ['CT', 'MR', 'US'];

interface Outcome {
  polls: number;
  writes: number;
  bad: string[];
}

/**
 * Three writers (one per modality) each store a study of one series with two instances (one new
 * patient per study), then delete the second instance or the whole study; meanwhile one reader
 * polls statistics() and the lists. Every study has its own patient and one series, so in any
 * snapshot patients == studies == series and sum(byModality) == instances == bytes / SIZE.
 */
async function race(store: MetadataStore): Promise<Outcome> {
  const since = new Date(Date.now() - 60_000);
  const live: { studyUid: string; seriesUid: string }[] = [];
  const bad: string[] = [];
  let polls = 0;
  let writes = 0;
  let stop = false;
  const deadline = Date.now() + WRITE_MS;

  const writers = MODALITIES.map(async (modality) => {
    for (let i = 0; Date.now() < deadline; i++) {
      const patientId = token('PAT');
      const studyUid = newUid();
      const seriesUid = newUid();
      const spec = { patientId, studyUid, seriesUid, modality, size: SIZE };
      await store.commitInstance(makeRecord({ ...spec, instanceNumber: 1 }), REPLACE);
      const second = makeRecord({ ...spec, instanceNumber: 2 });
      await store.commitInstance(second, REPLACE);
      live.push({ studyUid, seriesUid });
      if (live.length > 30) live.shift();
      writes += 2;
      if (i % 2 === 0) await store.removeInstance(second.sopUid);
      else await store.removeStudy(studyUid);
    }
  });

  const reader = (async () => {
    while (!stop) {
      const s = await store.statistics({ changesSince: { since, kinds: ['stored', 'replaced'] } });
      polls++;
      const sum = Object.values(s.byModality).reduce((a, b) => a + b, 0);
      const figures = `patients=${s.patients} studies=${s.studies} series=${s.series} instances=${s.instances} bytes=${s.bytes} byModality=${JSON.stringify(s.byModality)} changesSince=${s.changesSince}`;
      if (sum !== s.instances) bad.push(`statistics: sum(byModality)=${sum} ≠ instances: ${figures}`);
      else if (s.patients !== s.studies) bad.push(`statistics: patients ≠ studies: ${figures}`);
      else if (s.series !== s.studies || s.bytes !== s.instances * SIZE) bad.push(`statistics: totals disagree: ${figures}`);
      else if (s.changesSince !== undefined && s.changesSince < s.instances) bad.push(`statistics: fewer stored changes than instances: ${figures}`);

      // A series' page and its total (its instance counter) from one snapshot.
      const pick = live[live.length - 1 - (polls % Math.max(1, live.length))];
      if (pick) {
        const page = await store.listSeriesInstances(pick.seriesUid, { limit: 100, offset: 0 });
        if (page && page.items.length !== page.total) bad.push(`listSeriesInstances: ${page.items.length} items, total ${page.total}`);
        const series = await store.listSeries(pick.studyUid, { limit: 100, offset: 0 });
        if (series && series.items.length !== series.total) bad.push(`listSeries: ${series.items.length} items, total ${series.total}`);
      }
      // A full page of studies: its total cannot be smaller than the page.
      const studies = await store.listStudies({ limit: 2, offset: 0, constraints: [], sort: { key: 'received_at', descending: true } });
      if (studies.total < studies.items.length) bad.push(`listStudies: ${studies.items.length} items, total ${studies.total}`);
      // SQLite answers within the microtask queue: let the group-commit writer (setImmediate) run.
      await setImmediate();
    }
  })();

  try {
    await Promise.all(writers);
  } finally {
    stop = true;
    await reader;
  }
  // Quiescent: the last answer must also be exact.
  const s = await store.statistics();
  assert.equal(
    Object.values(s.byModality).reduce((a, b) => a + b, 0),
    s.instances,
  );
  return { polls, writes, bad };
}

function check(label: string, o: Outcome): void {
  console.log(`${label}: ${o.polls} polls, ${o.writes} instances written, ${o.bad.length} inconsistent`);
  assert.ok(o.polls >= 20, `only ${o.polls} polls`);
  assert.ok(o.writes >= 20, `only ${o.writes} writes`);
  assert.deepEqual(o.bad.slice(0, 5), [], `${o.bad.length} of ${o.polls} polls were not one snapshot`);
}

describe('statistics and lists are one snapshot under concurrent writes', () => {
  describe('PostgreSQL', () => {
    let database: TestDatabase;
    let stores: PostgresStores;
    before(async () => {
      database = await createTestDatabase();
      stores = createPostgresStores({ url: database.url, maxConnections: 10 });
      await stores.migrate();
    });
    after(async () => {
      await stores?.close();
      await database?.drop();
    });

    it('every statistics() answer and every list page agrees with itself while three writers store and delete', async () => {
      check('postgres', await race(stores.metadata));
    });
  });

  describe('SQLite', () => {
    let dir: string;
    let store: MetadataStore;
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-stats-snapshot-'));
      store = createSqliteMetadataStore({ path: path.join(dir, 'pacs.db') });
      await store.migrate();
    });
    after(async () => {
      await store?.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('every statistics() answer and every list page agrees with itself while three writers store and delete', async () => {
      check('sqlite', await race(store));
    });
  });
});
