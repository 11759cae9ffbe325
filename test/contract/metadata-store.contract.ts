import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Constraint, Query, QueryLevel } from '../../src/dicom/query-model.js';
import type {
  CommitOptions,
  InstanceRecord,
  MetadataStore,
  PatientRow,
  SeriesRow,
  StudyListOptions,
  StudyRow,
} from '../../src/storage/metadata.js';
import { makeRecord, newUid, token, type RecordSpec } from './records.js';

/**
 * The MetadataStore contract: every adapter (SQLite file, SQLite :memory:, PostgreSQL) passes
 * it unchanged. Tests never share data: each one makes fresh UIDs and scopes its queries with a
 * private IssuerOfPatientID, so the suite also runs against a database holding other data.
 * Tests of one suite run sequentially (statistics and changes are checked as deltas).
 */
export interface MetadataStoreFixture {
  store: MetadataStore;
  cleanup: () => Promise<void>;
}

const REPLACE: CommitOptions = { onDuplicate: 'replace', onPatientMismatch: 'accept' };
const REJECT_DUP: CommitOptions = { onDuplicate: 'reject', onPatientMismatch: 'accept' };
const REJECT_PAT: CommitOptions = { onDuplicate: 'replace', onPatientMismatch: 'reject' };

const ISSUER = '00100021';
const TAG = {
  PatientName: '00100010',
  PatientID: '00100020',
  PatientBirthDate: '00100030',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  SOPInstanceUID: '00080018',
  SOPClassUID: '00080016',
  StudyDate: '00080020',
  StudyTime: '00080030',
  ImagePositionPatient: '00200032',
  OperatorsName: '00081070',
  ImageType: '00080008',
  AcquisitionDateTime: '0008002A',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ModalitiesInStudy: '00080061',
  ReferringPhysicianName: '00080090',
  StudyDescription: '00081030',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  ManufacturerModelName: '00081090',
  PatientAge: '00101010',
  Manufacturer: '00080070',
  SliceThickness: '00180050',
  Rows: '00280010',
  PerformingPhysicianName: '00081050',
} as const;

function q(level: QueryLevel, constraints: Constraint[], extra: Partial<Query> = {}): Query {
  return { level, constraints, includeFields: [], fuzzy: false, limit: 1000, offset: 0, ...extra };
}
const single = (tag: string, value: string): Constraint => ({ kind: 'single', tag, value });

export function metadataStoreContract(name: string, factory: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let fx: MetadataStoreFixture;
    let store: MetadataStore;
    before(async () => {
      fx = await factory();
      store = fx.store;
      await store.migrate();
    });
    after(async () => {
      await fx.store.close();
      await fx.cleanup();
    });

    // ---- helpers bound to the store ------------------------------------------------------
    async function commit(r: InstanceRecord, options: CommitOptions = REPLACE) {
      return store.commitInstance(r, options);
    }
    async function studies(issuer: string, constraints: Constraint[] = [], extra: Partial<Query> = {}): Promise<StudyRow[]> {
      const res = await store.query(q('study', [single(ISSUER, issuer), ...constraints], extra));
      assert.equal(res.level, 'study');
      return res.level === 'study' ? res.rows : [];
    }
    async function seriesOf(issuer: string, constraints: Constraint[] = [], extra: Partial<Query> = {}): Promise<SeriesRow[]> {
      const res = await store.query(q('series', [single(ISSUER, issuer), ...constraints], extra));
      return res.level === 'series' ? res.rows : [];
    }
    async function instancesOf(issuer: string, constraints: Constraint[] = [], extra: Partial<Query> = {}) {
      const res = await store.query(q('instance', [single(ISSUER, issuer), ...constraints], extra));
      return res.level === 'instance' ? res.rows : [];
    }
    async function patients(issuer: string, constraints: Constraint[] = []): Promise<PatientRow[]> {
      const res = await store.query(q('patient', [single(ISSUER, issuer), ...constraints]));
      return res.level === 'patient' ? res.rows : [];
    }
    async function study(studyUid: string): Promise<StudyRow | undefined> {
      const res = await store.query(q('study', [], { studyUid }));
      return res.level === 'study' ? res.rows[0] : undefined;
    }
    async function series(seriesUid: string): Promise<SeriesRow | undefined> {
      const res = await store.query(q('series', [single(TAG.SeriesInstanceUID, seriesUid)]));
      return res.level === 'series' ? res.rows[0] : undefined;
    }
    async function patient(patientId: string, issuer: string): Promise<PatientRow | undefined> {
      return (await patients(issuer, [single(TAG.PatientID, patientId)]))[0];
    }
    async function lastSeq(): Promise<number> {
      let since = 0;
      for (;;) {
        const page = await store.changes({ since, limit: 1000 });
        const last = page[page.length - 1];
        if (last === undefined) return since;
        since = last.seq;
      }
    }
    async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
      const out: T[] = [];
      for await (const x of it) out.push(x);
      return out;
    }
    /** Studies matched by a study-level query, as sorted UIDs. */
    async function matchStudies(issuer: string, constraints: Constraint[]): Promise<string[]> {
      return (await studies(issuer, constraints)).map((s) => s.studyUid).sort();
    }

    // ---- commit ------------------------------------------------------------------------

    describe('commitInstance', () => {
      it('stores a new instance with its patient, study and series', async () => {
        const issuer = token();
        const r = makeRecord({ issuer, size: 1234, studyDescription: 'CHEST', modality: 'CT' });
        assert.deepEqual(await commit(r), { kind: 'stored', patientMismatch: false });
        const row = await store.getInstance(r.sopUid);
        assert.ok(row);
        assert.equal(row.studyUid, r.studyUid);
        assert.equal(row.seriesUid, r.seriesUid);
        assert.equal(row.sopUid, r.sopUid);
        assert.equal(row.sopClassUid, r.instance.sop_class_uid);
        assert.equal(row.instanceNumber, 1);
        assert.equal(row.transferSyntaxUid, r.transferSyntaxUid);
        assert.equal(row.blobKey, r.blob.key);
        assert.equal(row.size, 1234);
        assert.equal(row.sha256, r.blob.sha256);
        assert.equal(row.receivedAt.getTime(), r.receivedAt.getTime());
        assert.deepEqual(await store.getInstanceHeader(r.sopUid), r.header);
        const st = await study(r.studyUid);
        assert.ok(st);
        assert.equal(st.numSeries, 1);
        assert.equal(st.numInstances, 1);
        assert.equal(st.totalBytes, 1234);
        assert.deepEqual(st.modalities, ['CT']);
        assert.deepEqual(st.header, r.levelHeaders?.study);
        assert.ok(st.receivedAt instanceof Date && st.updatedAt instanceof Date);
        const se = await series(r.seriesUid);
        assert.ok(se);
        assert.equal(se.numInstances, 1);
        assert.equal(se.totalBytes, 1234);
        assert.deepEqual(se.studyHeader, r.levelHeaders?.study);
        assert.deepEqual(se.header, r.levelHeaders?.series);
        assert.equal((await patient(r.patient.patient_id, issuer))?.numStudies, 1);
      });

      it('getInstance honours its scope and returns undefined for unknown UIDs', async () => {
        const r = makeRecord({ issuer: token() });
        await commit(r);
        assert.ok(await store.getInstance(r.sopUid, { studyUid: r.studyUid, seriesUid: r.seriesUid }));
        assert.equal(await store.getInstance(r.sopUid, { studyUid: newUid() }), undefined);
        assert.equal(await store.getInstance(r.sopUid, { seriesUid: newUid() }), undefined);
        assert.equal(await store.getInstance(newUid()), undefined);
        assert.equal(await store.getInstanceHeader(newUid()), undefined);
      });

      it('reports a re-send with the same SHA-256 as duplicate and changes nothing', async () => {
        const issuer = token();
        const r = makeRecord({ issuer, size: 100 });
        await commit(r);
        const seq = await lastSeq();
        const again = { ...r, blob: { ...r.blob, key: `2026/11/${newUid()}.dcm` } };
        assert.deepEqual(await commit(again), { kind: 'duplicate' });
        assert.deepEqual(await commit(again, REJECT_DUP), { kind: 'duplicate' });
        assert.equal((await store.getInstance(r.sopUid))?.blobKey, r.blob.key);
        assert.equal((await study(r.studyUid))?.numInstances, 1);
        assert.equal((await study(r.studyUid))?.totalBytes, 100);
        assert.deepEqual(await store.changes({ since: seq }), []);
      });

      it('replaces an instance sent again with other bytes', async () => {
        const issuer = token();
        const r = makeRecord({ issuer, size: 100, studyDescription: 'OLD' });
        const other = makeRecord({ issuer, studyUid: r.studyUid, seriesUid: r.seriesUid, patientId: r.patient.patient_id, size: 50 });
        await commit(r);
        await commit(other);
        const r2 = makeRecord({
          issuer,
          studyUid: r.studyUid,
          seriesUid: r.seriesUid,
          sopUid: r.sopUid,
          patientId: r.patient.patient_id,
          size: 300,
          studyDescription: 'NEW',
        });
        const seq = await lastSeq();
        assert.deepEqual(await commit(r2), { kind: 'replaced', oldBlobKey: r.blob.key, patientMismatch: false });
        const row = await store.getInstance(r.sopUid);
        assert.equal(row?.blobKey, r2.blob.key);
        assert.equal(row?.sha256, r2.blob.sha256);
        assert.equal(row?.size, 300);
        assert.deepEqual(await store.getInstanceHeader(r.sopUid), r2.header);
        const st = await study(r.studyUid);
        assert.equal(st?.numInstances, 2);
        assert.equal(st?.numSeries, 1);
        assert.equal(st?.totalBytes, 350);
        assert.equal(st?.header['00081030']?.Value?.[0], 'NEW');
        assert.equal((await series(r.seriesUid))?.totalBytes, 350);
        const ch = await store.changes({ since: seq });
        assert.equal(ch.length, 1);
        assert.equal(ch[0]?.kind, 'replaced');
        assert.equal(ch[0]?.sopUid, r.sopUid);
        assert.deepEqual(await store.referencedBlobKeys([r.blob.key, r2.blob.key]), new Set([r2.blob.key]));
      });

      it('rejects a changed re-send when onDuplicate is reject, leaving the row as it was', async () => {
        const r = makeRecord({ issuer: token(), size: 10 });
        await commit(r);
        const seq = await lastSeq();
        const r2 = makeRecord({ ...specOf(r), size: 20 });
        assert.deepEqual(await commit(r2, REJECT_DUP), { kind: 'rejected-duplicate' });
        assert.equal((await store.getInstance(r.sopUid))?.blobKey, r.blob.key);
        assert.equal((await study(r.studyUid))?.totalBytes, 10);
        assert.deepEqual(await store.changes({ since: seq }), []);
      });

      it('a replace that moves an instance to another series and study removes emptied parents, counters exact', async () => {
        const issuer = token();
        const patientId = token('P');
        // Study A: series A1 {x, y}, series A2 {z}. Study B: series B1 {w}.
        const A = newUid();
        const A1 = newUid();
        const A2 = newUid();
        const B = newUid();
        const B1 = newUid();
        const x = makeRecord({ issuer, patientId, studyUid: A, seriesUid: A1, size: 10 });
        const y = makeRecord({ issuer, patientId, studyUid: A, seriesUid: A1, size: 20 });
        const z = makeRecord({ issuer, patientId, studyUid: A, seriesUid: A2, size: 40, modality: 'SR' });
        const w = makeRecord({ issuer, patientId, studyUid: B, seriesUid: B1, size: 80, modality: 'MR' });
        for (const r of [x, y, z, w]) assert.equal((await commit(r)).kind, 'stored');

        // x moves to B/B1 (A1 keeps y).
        const x2 = makeRecord({ issuer, patientId, studyUid: B, seriesUid: B1, sopUid: x.sopUid, size: 11, modality: 'MR' });
        assert.equal((await commit(x2)).kind, 'replaced');
        let a = await study(A);
        let b = await study(B);
        assert.deepEqual([a?.numSeries, a?.numInstances, a?.totalBytes], [2, 2, 60]);
        assert.deepEqual([b?.numSeries, b?.numInstances, b?.totalBytes], [1, 2, 91]);
        assert.deepEqual([(await series(A1))?.numInstances, (await series(A1))?.totalBytes], [1, 20]);
        assert.deepEqual([(await series(B1))?.numInstances, (await series(B1))?.totalBytes], [2, 91]);

        // y moves to a new series B2 in B: A1 is emptied and removed.
        const B2 = newUid();
        const y2 = makeRecord({ issuer, patientId, studyUid: B, seriesUid: B2, sopUid: y.sopUid, size: 21, seriesNumber: 2 });
        assert.equal((await commit(y2)).kind, 'replaced');
        assert.equal(await series(A1), undefined);
        a = await study(A);
        b = await study(B);
        assert.deepEqual([a?.numSeries, a?.numInstances, a?.totalBytes], [1, 1, 40]);
        assert.deepEqual([b?.numSeries, b?.numInstances, b?.totalBytes], [2, 3, 112]);
        assert.deepEqual(a?.modalities, ['SR']);

        // z moves to a new study C: A is emptied and removed; the patient keeps B and C.
        const C = newUid();
        const z2 = makeRecord({ issuer, patientId, studyUid: C, seriesUid: newUid(), sopUid: z.sopUid, size: 41 });
        assert.equal((await commit(z2)).kind, 'replaced');
        assert.equal(await study(A), undefined);
        assert.equal(await series(A2), undefined);
        const c = await study(C);
        assert.deepEqual([c?.numSeries, c?.numInstances, c?.totalBytes], [1, 1, 41]);
        assert.equal((await patient(patientId, issuer))?.numStudies, 2);
        assert.deepEqual((await matchStudies(issuer, [])).sort(), [B, C].sort());
      });

      it('a new instance naming an existing series under another study moves the whole series', async () => {
        const issuer = token();
        const patientId = token('P');
        const A = newUid();
        const S = newUid();
        const i1 = makeRecord({ issuer, patientId, studyUid: A, seriesUid: S, size: 5 });
        const i2 = makeRecord({ issuer, patientId, studyUid: A, seriesUid: S, size: 6 });
        await commit(i1);
        await commit(i2);
        const B = newUid();
        const i3 = makeRecord({ issuer, patientId, studyUid: B, seriesUid: S, size: 7 });
        assert.equal((await commit(i3)).kind, 'stored');
        assert.equal(await study(A), undefined);
        const b = await study(B);
        assert.deepEqual([b?.numSeries, b?.numInstances, b?.totalBytes], [1, 3, 18]);
        assert.equal((await store.getInstance(i1.sopUid))?.studyUid, B);
        assert.equal((await patient(patientId, issuer))?.numStudies, 1);
      });

      it('accepts a patient mismatch: the study moves to the new patient and the emptied old patient is removed', async () => {
        const issuer = token();
        const p1 = token('P');
        const p2 = token('P');
        const S = newUid();
        await commit(makeRecord({ issuer, patientId: p1, studyUid: S, size: 10 }));
        const moved = makeRecord({ issuer, patientId: p2, studyUid: S, size: 20, patientName: 'New^Name' });
        assert.deepEqual(await commit(moved), { kind: 'stored', patientMismatch: true });
        assert.equal(await patient(p1, issuer), undefined);
        assert.equal((await patient(p2, issuer))?.numStudies, 1);
        const st = await studies(issuer, [single(TAG.PatientID, p2)]);
        assert.deepEqual(st.map((s) => s.studyUid), [S]);
        assert.equal(st[0]?.numInstances, 2);
        assert.equal(st[0]?.totalBytes, 30);
      });

      it('accepts a patient mismatch and keeps the old patient while it has other studies', async () => {
        const issuer = token();
        const p1 = token('P');
        const p2 = token('P');
        const S = newUid();
        const T = newUid();
        await commit(makeRecord({ issuer, patientId: p1, studyUid: S }));
        await commit(makeRecord({ issuer, patientId: p1, studyUid: T }));
        assert.equal((await patient(p1, issuer))?.numStudies, 2);
        const r = await commit(makeRecord({ issuer, patientId: p2, studyUid: S }));
        assert.deepEqual(r, { kind: 'stored', patientMismatch: true });
        assert.equal((await patient(p1, issuer))?.numStudies, 1);
        assert.equal((await patient(p2, issuer))?.numStudies, 1);
      });

      it('treats another issuer as another patient', async () => {
        const issuer = token();
        const pid = token('P');
        const S = newUid();
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S }));
        const other = makeRecord({ issuer: `${issuer}X`, patientId: pid, studyUid: S });
        assert.deepEqual(await commit(other, REJECT_PAT), { kind: 'rejected-patient-mismatch' });
      });

      it('rejects a patient mismatch when asked to, changing nothing', async () => {
        const issuer = token();
        const p1 = token('P');
        const p2 = token('P');
        const S = newUid();
        const first = makeRecord({ issuer, patientId: p1, studyUid: S, size: 10, studyDescription: 'KEEP' });
        await commit(first);
        const seq = await lastSeq();
        const r = makeRecord({ issuer, patientId: p2, studyUid: S, size: 20, studyDescription: 'CHANGED' });
        assert.deepEqual(await commit(r, REJECT_PAT), { kind: 'rejected-patient-mismatch' });
        // A replace of an existing instance is refused the same way.
        const rep = makeRecord({ ...specOf(first), patientId: p2, size: 30 });
        assert.deepEqual(await commit(rep, REJECT_PAT), { kind: 'rejected-patient-mismatch' });
        assert.equal(await store.getInstance(r.sopUid), undefined);
        assert.equal(await patient(p2, issuer), undefined);
        const st = await study(S);
        assert.deepEqual([st?.numInstances, st?.totalBytes], [1, 10]);
        assert.equal(st?.header['00081030']?.Value?.[0], 'KEEP');
        assert.deepEqual(await store.changes({ since: seq }), []);
      });

      it('patient, study and series attributes follow the last stored instance', async () => {
        const issuer = token();
        const pid = token('P');
        const S = newUid();
        const SE = newUid();
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE, patientName: 'Old^Name', studyDescription: 'ONE', seriesDescription: 'A' }));
        const last = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE, patientName: 'New^Name', studyDescription: 'TWO', seriesDescription: 'B' });
        await commit(last);
        assert.deepEqual(await matchStudies(issuer, [single(TAG.StudyDescription, 'TWO')]), [S]);
        assert.deepEqual(await matchStudies(issuer, [single(TAG.StudyDescription, 'ONE')]), []);
        assert.equal((await patients(issuer, [single(TAG.PatientName, 'new^name')])).length, 1);
        assert.deepEqual((await patient(pid, issuer))?.header, last.levelHeaders?.patient);
        assert.deepEqual((await series(SE))?.header, last.levelHeaders?.series);
      });
    });

    // ---- changes -----------------------------------------------------------------------

    describe('changes', () => {
      it('appends stored, replaced and deleted rows with increasing seq, readable with since/limit', async () => {
        const issuer = token();
        const seq0 = await lastSeq();
        const before = new Date(Date.now() - 1000);
        const a = makeRecord({ issuer });
        const b = makeRecord({ issuer, studyUid: a.studyUid, seriesUid: a.seriesUid, patientId: a.patient.patient_id });
        await commit(a);
        await commit(b);
        await commit(makeRecord({ ...specOf(a), size: 77 }));
        await store.removeInstance(b.sopUid);
        await store.removeSeries(a.seriesUid);
        const rows = await store.changes({ since: seq0 });
        assert.deepEqual(
          rows.map((r) => [r.kind, r.level, r.sopUid]),
          [
            ['stored', 'instance', a.sopUid],
            ['stored', 'instance', b.sopUid],
            ['replaced', 'instance', a.sopUid],
            ['deleted', 'instance', b.sopUid],
            ['deleted', 'series', null],
          ],
        );
        for (const r of rows) {
          assert.equal(r.studyUid, a.studyUid);
          assert.ok(r.at instanceof Date && r.at.getTime() >= before.getTime());
        }
        assert.equal(rows[4]?.seriesUid, a.seriesUid);
        for (let k = 1; k < rows.length; k++) assert.ok((rows[k]?.seq ?? 0) > (rows[k - 1]?.seq ?? 0));
        const firstTwo = await store.changes({ since: seq0, limit: 2 });
        assert.deepEqual(firstTwo.map((r) => r.seq), rows.slice(0, 2).map((r) => r.seq));
        const rest = await store.changes({ since: firstTwo[1]?.seq ?? 0 });
        assert.deepEqual(rest.map((r) => r.seq), rows.slice(2).map((r) => r.seq));
        assert.equal(await store.countChangesSince(before, ['stored', 'replaced']) >= 3, true);
        assert.equal(await store.countChangesSince(new Date(Date.now() + 60_000), ['stored', 'replaced', 'deleted']), 0);
        assert.equal(await store.countChangesSince(before, []), 0);
        // lastChangeSeq is the seq of the last row (the count memo's invalidation key).
        const all = await store.changes({ since: seq0, limit: 100_000 });
        assert.equal(await store.lastChangeSeq(), all[all.length - 1]?.seq);
      });

      it('removing a study appends one study-level deleted row', async () => {
        const r = makeRecord({ issuer: token() });
        await commit(r);
        const seq = await lastSeq();
        await store.removeStudy(r.studyUid);
        const rows = await store.changes({ since: seq });
        assert.deepEqual(rows.map((x) => [x.kind, x.level, x.studyUid, x.seriesUid, x.sopUid]), [['deleted', 'study', r.studyUid, null, null]]);
      });
    });

    // ---- browsing (REST reads) ---------------------------------------------------------

    describe('browse', () => {
      const byIssuer = (issuer: string): Constraint => single(ISSUER, issuer);
      const listOpts = (constraints: Constraint[], extra: Partial<StudyListOptions> = {}): StudyListOptions => ({
        constraints,
        sort: { key: 'received_at', descending: true },
        limit: 100,
        offset: 0,
        ...extra,
      });
      async function uidsOf(issuer: string, constraints: Constraint[], extra: Partial<StudyListOptions> = {}): Promise<string[]> {
        const page = await store.listStudies(listOpts([byIssuer(issuer), ...constraints], extra));
        return page.items.map((s) => s.studyUid);
      }

      it('lists study summaries with patient columns, modalities of every series and exact counters', async () => {
        const issuer = token();
        const pid = token('P');
        const S = newUid();
        const at = new Date(Date.now() - 5000);
        const a = makeRecord({ issuer, patientId: pid, studyUid: S, patientName: 'Müller^Jürgen', birthDate: '19600412', sex: 'M', studyDate: '20240105', studyTime: '101500', studyDescription: 'CHEST', accessionNumber: 'ACC1', modality: 'CT', size: 100, receivedAt: at });
        const b = makeRecord({ issuer, patientId: pid, studyUid: S, modality: 'SR', seriesNumber: 2, size: 20, patientName: 'Müller^Jürgen', birthDate: '19600412', sex: 'M', studyDate: '20240105', studyTime: '101500', studyDescription: 'CHEST', accessionNumber: 'ACC1' });
        const c = makeRecord({ ...specOf(a), seriesUid: a.seriesUid, sopUid: newUid(), size: 3, patientName: 'Müller^Jürgen', birthDate: '19600412', sex: 'M', studyDate: '20240105', studyTime: '101500', studyDescription: 'CHEST', accessionNumber: 'ACC1', modality: 'CT' });
        for (const r of [a, b, c]) await commit(r);
        const page = await store.listStudies(listOpts([byIssuer(issuer)]));
        assert.equal(page.total, 1);
        const s = page.items[0];
        assert.ok(s);
        assert.deepEqual(
          { ...s, receivedAt: undefined, updatedAt: undefined },
          {
            studyUid: S,
            patientId: pid,
            patientName: 'Müller^Jürgen',
            patientBirthDate: '19600412',
            patientSex: 'M',
            studyDate: '20240105',
            studyTime: '101500',
            studyDescription: 'CHEST',
            accessionNumber: 'ACC1',
            modalities: ['CT', 'SR'],
            numSeries: 2,
            numInstances: 3,
            totalBytes: 123,
            receivedAt: undefined,
            updatedAt: undefined,
          },
        );
        assert.equal(s.receivedAt.toISOString(), at.toISOString());
        assert.ok(s.updatedAt instanceof Date);
        assert.deepEqual(await store.getStudy(S), s);
        assert.equal(await store.getStudy(newUid()), undefined);
      });

      it('filters like QIDO: PN wildcards case-insensitively, patient ID, date ranges, modality of any series, accession', async () => {
        const issuer = token();
        const s1 = makeRecord({ issuer, patientName: 'Doe^Jane', patientId: 'PA', studyDate: '20240101', accessionNumber: 'X1', modality: 'CT' });
        const s1b = makeRecord({ ...specOf(s1), seriesUid: newUid(), sopUid: newUid(), patientName: 'Doe^Jane', studyDate: '20240101', accessionNumber: 'X1', modality: 'MR', seriesNumber: 2 });
        const s2 = makeRecord({ issuer, patientName: 'Döe^Jane', patientId: 'PB', studyDate: '20240615', accessionNumber: 'X2', modality: 'US' });
        const s3 = makeRecord({ issuer, patientName: 'Smith^Al', patientId: 'PC', studyDate: null, accessionNumber: 'X3', modality: 'CT' });
        for (const r of [s1, s1b, s2, s3]) await commit(r);
        const sorted = async (cs: Constraint[]) => (await uidsOf(issuer, cs)).sort();
        assert.deepEqual(await sorted([{ kind: 'wildcard', tag: TAG.PatientName, pattern: 'DOE*' }]), [s1.studyUid]);
        assert.deepEqual(await sorted([{ kind: 'wildcard', tag: TAG.PatientName, pattern: 'd?e^*' }]), [s1.studyUid, s2.studyUid].sort());
        assert.deepEqual(await sorted([{ kind: 'wildcard', tag: TAG.PatientName, pattern: 'DÖE*' }]), [s2.studyUid]);
        assert.deepEqual(await sorted([single(TAG.PatientName, 'doe^jane')]), [s1.studyUid]);
        assert.deepEqual(await sorted([single(TAG.PatientID, 'PB')]), [s2.studyUid]);
        assert.deepEqual(await sorted([{ kind: 'range', tag: TAG.StudyDate, from: '20240101', to: '20240131' }]), [s1.studyUid]);
        assert.deepEqual(await sorted([{ kind: 'range', tag: TAG.StudyDate, from: '20240102' }]), [s2.studyUid]);
        assert.deepEqual(await sorted([single(TAG.ModalitiesInStudy, 'MR')]), [s1.studyUid]);
        assert.deepEqual(await sorted([single(TAG.ModalitiesInStudy, 'CT')]), [s1.studyUid, s3.studyUid].sort());
        assert.deepEqual(await sorted([single(TAG.AccessionNumber, 'X3')]), [s3.studyUid]);
        assert.deepEqual(await sorted([single(TAG.ModalitiesInStudy, 'CT'), single(TAG.AccessionNumber, 'X1')]), [s1.studyUid]);
        const none = await store.listStudies(listOpts([byIssuer(issuer), single(TAG.PatientID, 'NOPE')]));
        assert.deepEqual(none, { items: [], total: 0 });
      });

      it('sorts by study date (absent dates last either way) or arrival, ties by arrival, and pages with an exact total', async () => {
        const issuer = token();
        const t0 = Date.now() - 60_000;
        const dates = ['20240301', null, '20240101', '20240201', '20240101'];
        const records = dates.map((d, i) => makeRecord({ issuer, studyDate: d, receivedAt: new Date(t0 + i * 1000) }));
        for (const r of records) await commit(r);
        const u = records.map((r) => r.studyUid);
        const [r0, r1, r2, r3, r4] = u as [string, string, string, string, string];
        assert.deepEqual(await uidsOf(issuer, [], { sort: { key: 'received_at', descending: true } }), [...u].reverse());
        assert.deepEqual(await uidsOf(issuer, [], { sort: { key: 'received_at', descending: false } }), u);
        assert.deepEqual(await uidsOf(issuer, [], { sort: { key: 'study_date', descending: false } }), [r2, r4, r3, r0, r1]);
        assert.deepEqual(await uidsOf(issuer, [], { sort: { key: 'study_date', descending: true } }), [r0, r3, r4, r2, r1]);
        const pages: string[] = [];
        for (let offset = 0; offset < 6; offset += 2) {
          const page = await store.listStudies(listOpts([byIssuer(issuer)], { sort: { key: 'study_date', descending: true }, limit: 2, offset }));
          assert.equal(page.total, 5);
          pages.push(...page.items.map((s) => s.studyUid));
        }
        assert.deepEqual(pages, [r0, r3, r4, r2, r1]);
        const beyond = await store.listStudies(listOpts([byIssuer(issuer)], { limit: 2, offset: 10 }));
        assert.deepEqual(beyond, { items: [], total: 5 });
      });

      it('series of a study and instances of a series, in number order (absent last), paged, with counters', async () => {
        const issuer = token();
        const pid = token('P');
        const S = newUid();
        const [SE1, SE2, SE3] = [newUid(), newUid(), newUid()];
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE3, seriesNumber: null, modality: null, size: 1 }));
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE2, seriesNumber: 2, modality: 'MR', size: 2 }));
        const i3 = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE1, seriesNumber: 1, instanceNumber: null, size: 10, bodyPart: 'HEAD', seriesDescription: 'AX', seriesDate: '20240101' });
        const i1 = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE1, seriesNumber: 1, instanceNumber: 1, size: 20, bodyPart: 'HEAD', seriesDescription: 'AX', seriesDate: '20240101' });
        const i2 = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE1, seriesNumber: 1, instanceNumber: 2, size: 30, bodyPart: 'HEAD', seriesDescription: 'AX', seriesDate: '20240101' });
        for (const r of [i3, i1, i2]) await commit(r);

        const series = await store.listSeries(S, { limit: 10, offset: 0 });
        assert.ok(series);
        assert.equal(series.total, 3);
        assert.deepEqual(series.items.map((s) => s.seriesUid), [SE1, SE2, SE3]);
        const first = series.items[0];
        assert.deepEqual(
          { ...first, receivedAt: undefined, updatedAt: undefined },
          { studyUid: S, seriesUid: SE1, modality: 'CT', seriesNumber: 1, seriesDescription: 'AX', seriesDate: '20240101', bodyPart: 'HEAD', numInstances: 3, totalBytes: 60, receivedAt: undefined, updatedAt: undefined },
        );
        assert.deepEqual(await store.getSeries(SE1), first);
        assert.equal((await store.getSeries(SE3))?.modality, null);
        assert.deepEqual((await store.listSeries(S, { limit: 1, offset: 1 }))?.items.map((s) => s.seriesUid), [SE2]);

        const inst = await store.listSeriesInstances(SE1, { limit: 10, offset: 0 });
        assert.ok(inst);
        assert.equal(inst.total, 3);
        assert.deepEqual(inst.items.map((r) => r.sopUid), [i1.sopUid, i2.sopUid, i3.sopUid]);
        const row = inst.items[0];
        assert.deepEqual(
          { ...row, receivedAt: undefined },
          {
            studyUid: S, seriesUid: SE1, sopUid: i1.sopUid, sopClassUid: i1.instance.sop_class_uid, instanceNumber: 1,
            transferSyntaxUid: i1.transferSyntaxUid, blobKey: i1.blob.key, size: 20, sha256: i1.blob.sha256, receivedAt: undefined,
          },
        );
        const page2 = await store.listSeriesInstances(SE1, { limit: 2, offset: 2 });
        assert.deepEqual([page2?.total, page2?.items.map((r) => r.sopUid)], [3, [i3.sopUid]]);

        assert.equal(await store.listSeries(newUid(), { limit: 10, offset: 0 }), undefined);
        assert.equal(await store.getSeries(newUid()), undefined);
        assert.equal(await store.listSeriesInstances(newUid(), { limit: 10, offset: 0 }), undefined);
      });

      it('summaries follow removals exactly', async () => {
        const issuer = token();
        const pid = token('P');
        const S = newUid();
        const SE = newUid();
        const a = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE, size: 5 });
        const b = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE, size: 7, instanceNumber: 2 });
        const c = makeRecord({ issuer, patientId: pid, studyUid: S, modality: 'MR', seriesNumber: 2, size: 11 });
        for (const r of [a, b, c]) await commit(r);
        await store.removeInstance(a.sopUid);
        let st = await store.getStudy(S);
        assert.deepEqual([st?.numSeries, st?.numInstances, st?.totalBytes], [2, 2, 18]);
        assert.deepEqual([(await store.getSeries(SE))?.numInstances, (await store.getSeries(SE))?.totalBytes], [1, 7]);
        await store.removeSeries(c.seriesUid);
        st = await store.getStudy(S);
        assert.deepEqual([st?.numSeries, st?.numInstances, st?.totalBytes, st?.modalities], [1, 1, 7, ['CT']]);
        await store.removeInstance(b.sopUid);
        assert.equal(await store.getStudy(S), undefined);
        assert.equal(await store.getSeries(SE), undefined);
        assert.deepEqual(await store.listStudies(listOpts([byIssuer(issuer)])), { items: [], total: 0 });
      });
    });

    // ---- queries -----------------------------------------------------------------------

    describe('query', () => {
      it('matches PN case-insensitively on non-ASCII names, accent-sensitively', async () => {
        const issuer = token();
        const s1 = makeRecord({ issuer, patientName: 'MÜLLER^HANS' });
        const s2 = makeRecord({ issuer, patientName: 'Muller^Hans' });
        await commit(s1);
        await commit(s2);
        assert.deepEqual(await matchStudies(issuer, [single(TAG.PatientName, 'Müller^Hans')]), [s1.studyUid]);
        assert.deepEqual(await matchStudies(issuer, [single(TAG.PatientName, 'müller^hans^^')]), [s1.studyUid]);
        assert.deepEqual(await matchStudies(issuer, [{ kind: 'wildcard', tag: TAG.PatientName, pattern: 'mü*' }]), [s1.studyUid]);
        assert.deepEqual(await matchStudies(issuer, [{ kind: 'wildcard', tag: TAG.PatientName, pattern: 'M?LLER*' }]), [s1.studyUid, s2.studyUid].sort());
        assert.deepEqual(await matchStudies(issuer, [single(TAG.PatientName, 'Müller')]), []);
        const pats = await patients(issuer, [single(TAG.PatientName, 'MÜLLER^hans')]);
        assert.deepEqual(pats.map((p) => p.patientId), [s1.patient.patient_id]);
      });

      it('matches a PN value against any one component group (e.g. the ideographic name alone)', async () => {
        const issuer = token();
        const r = makeRecord({ issuer, patientName: 'Yamada^Tarou=山田^太郎=やまだ^たろう' });
        const other = makeRecord({ issuer, patientName: 'Yamada^Hanako=山田^花子=やまだ^はなこ' });
        await commit(r);
        await commit(other);
        const match = (v: string): Promise<string[]> => matchStudies(issuer, [single(TAG.PatientName, v)]);
        assert.deepEqual(await match('山田^太郎'), [r.studyUid]);
        assert.deepEqual(await match('YAMADA^TAROU'), [r.studyUid]);
        assert.deepEqual(await match('やまだ^たろう'), [r.studyUid]);
        assert.deepEqual(await match('Yamada^Tarou=山田^太郎=やまだ^たろう'), [r.studyUid]);
        assert.deepEqual(await match('山田'), []);
        assert.deepEqual(
          await matchStudies(issuer, [{ kind: 'wildcard', tag: TAG.PatientName, pattern: '山田^*' }]),
          [r.studyUid, other.studyUid].sort(),
        );
        assert.deepEqual(await matchStudies(issuer, [{ kind: 'wildcard', tag: TAG.PatientName, pattern: '山田^花*' }]), [other.studyUid]);
      });

      it('fuzzy PN: every word is a prefix of a word of the name', async () => {
        const issuer = token();
        const a = makeRecord({ issuer, patientName: 'Doe^John Paul' });
        const b = makeRecord({ issuer, patientName: 'Smith^Johanna' });
        const c = makeRecord({ issuer, patientName: 'Yamada^Tarou=山田^太郎' });
        for (const r of [a, b, c]) await commit(r);
        const fuzzy = (value: string): Promise<string[]> => matchStudies(issuer, [{ kind: 'fuzzy', tag: TAG.PatientName, value }]);
        assert.deepEqual(await fuzzy('joh'), [a.studyUid, b.studyUid].sort());
        assert.deepEqual(await fuzzy('pau'), [a.studyUid]);
        assert.deepEqual(await fuzzy('DOE^JO'), [a.studyUid]);
        assert.deepEqual(await fuzzy('jo sm'), [b.studyUid]);
        assert.deepEqual(await fuzzy('山田'), [c.studyUid]);
        assert.deepEqual(await fuzzy('oe'), []);
      });

      it('matches PN on the referring physician column too', async () => {
        const issuer = token();
        const r = makeRecord({ issuer, referringPhysician: 'Ångström^Anders' });
        await commit(r);
        await commit(makeRecord({ issuer, referringPhysician: 'Other^Doc' }));
        assert.deepEqual(await matchStudies(issuer, [single(TAG.ReferringPhysicianName, 'ÅNGSTRÖM^ANDERS')]), [r.studyUid]);
        assert.deepEqual(await matchStudies(issuer, [{ kind: 'fuzzy', tag: TAG.ReferringPhysicianName, value: 'ång' }]), [r.studyUid]);
      });

      it('single, list and case-sensitive wildcard matching with SQL metacharacters escaped', async () => {
        const issuer = token();
        const a = makeRecord({ issuer, studyDescription: 'CT 100% dose_a', accessionNumber: 'ACC1' });
        const b = makeRecord({ issuer, studyDescription: 'CT 100X doseXa', accessionNumber: 'ACC2' });
        const c = makeRecord({ issuer, studyDescription: 'back\\slash', accessionNumber: 'ACC3' });
        for (const r of [a, b, c]) await commit(r);
        const wild = (pattern: string): Promise<string[]> => matchStudies(issuer, [{ kind: 'wildcard', tag: TAG.StudyDescription, pattern }]);
        assert.deepEqual(await wild('CT 100% dose_*'), [a.studyUid]);
        assert.deepEqual(await wild('CT 100? dose?a'), [a.studyUid, b.studyUid].sort());
        assert.deepEqual(await wild('*%*'), [a.studyUid]);
        assert.deepEqual(await wild('*_*'), [a.studyUid]);
        assert.deepEqual(await wild('back\\*'), [c.studyUid]);
        assert.deepEqual(await wild('ct*'), []);
        assert.deepEqual(await wild('*'), [a.studyUid, b.studyUid, c.studyUid].sort());
        assert.deepEqual(await matchStudies(issuer, [single(TAG.StudyDescription, 'CT 100% dose_a')]), [a.studyUid]);
        assert.deepEqual(await matchStudies(issuer, [single(TAG.StudyDescription, 'ct 100% dose_a')]), []);
        assert.deepEqual(await matchStudies(issuer, [single(TAG.AccessionNumber, 'ACC2')]), [b.studyUid]);
        assert.deepEqual(
          await matchStudies(issuer, [{ kind: 'list', tag: TAG.StudyInstanceUID, values: [a.studyUid, c.studyUid, newUid()] }]),
          [a.studyUid, c.studyUid].sort(),
        );
      });

      it('date and time ranges, with open ends', async () => {
        const issuer = token();
        const d1 = makeRecord({ issuer, studyDate: '20240101', studyTime: '080000' });
        const d2 = makeRecord({ issuer, studyDate: '20240615', studyTime: '101530.123' });
        const d3 = makeRecord({ issuer, studyDate: '20241231', studyTime: '235959' });
        const none = makeRecord({ issuer, studyDate: null, studyTime: null });
        for (const r of [d1, d2, d3, none]) await commit(r);
        const range = (tag: string, from?: string, to?: string): Promise<string[]> => matchStudies(issuer, [{ kind: 'range', tag, from, to }]);
        assert.deepEqual(await range(TAG.StudyDate, '20240101', '20240615'), [d1.studyUid, d2.studyUid].sort());
        assert.deepEqual(await range(TAG.StudyDate, '20240616'), [d3.studyUid]);
        assert.deepEqual(await range(TAG.StudyDate, undefined, '20240101'), [d1.studyUid]);
        assert.deepEqual(await range(TAG.StudyTime, '1000', '1015'), [d2.studyUid]);
        assert.deepEqual(await range(TAG.StudyTime, undefined, '0800'), [d1.studyUid]);
        assert.deepEqual(await range(TAG.StudyTime, '2359'), [d3.studyUid]);
        assert.deepEqual(await matchStudies(issuer, [single(TAG.StudyDate, '20241231')]), [d3.studyUid]);
      });

      it('time and date-time ranges match values stored with fewer digits (HH, HHMM, YYYYMMDDHH) as the instants they name', async () => {
        const issuer = token();
        const hour = makeRecord({ issuer, studyTime: '09', extra: { [TAG.AcquisitionDateTime]: { vr: 'DT', Value: ['2021061514'] } } });
        const minute = makeRecord({ issuer, studyTime: '0930' });
        const late = makeRecord({ issuer, studyTime: '0929' });
        const full = makeRecord({ issuer, studyTime: '093000.5' });
        for (const r of [hour, minute, late, full]) await commit(r);
        const range = (from?: string, to?: string): Promise<string[]> => matchStudies(issuer, [{ kind: 'range', tag: TAG.StudyTime, from, to }]);
        assert.deepEqual(await range('0900', '1000'), [hour.studyUid, minute.studyUid, late.studyUid, full.studyUid].sort());
        assert.deepEqual(await range('093000', '094500'), [minute.studyUid, full.studyUid].sort());
        assert.deepEqual(await range('093000.000', '093000.999'), [minute.studyUid, full.studyUid].sort());
        assert.deepEqual(await range('090001'), [minute.studyUid, late.studyUid, full.studyUid].sort());
        assert.deepEqual(await range(undefined, '0929'), [hour.studyUid, late.studyUid].sort());
        // A header (non-indexed) date-time, at instance level.
        const dt = async (from: string, to: string): Promise<string[]> => (await instancesOf(issuer, [{ kind: 'range', tag: TAG.AcquisitionDateTime, from, to }])).map((r) => r.sopUid);
        assert.deepEqual(await dt('20210615140000', '20210615150000'), [hour.sopUid]);
        assert.deepEqual(await dt('20210615140001', '20210615150000'), []);
      });

      it('ModalitiesInStudy matches any series modality of the study, single or list', async () => {
        const issuer = token();
        const pid = token('P');
        const S1 = newUid();
        const S2 = newUid();
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S1, modality: 'CT' }));
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S1, modality: 'SR', seriesNumber: 2 }));
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S2, modality: 'MR' }));
        const mis = (c: Constraint): Promise<string[]> => matchStudies(issuer, [c]);
        assert.deepEqual(await mis(single(TAG.ModalitiesInStudy, 'SR')), [S1]);
        assert.deepEqual(await mis({ kind: 'list', tag: TAG.ModalitiesInStudy, values: ['MR', 'SR'] }), [S1, S2].sort());
        assert.deepEqual(await mis(single(TAG.ModalitiesInStudy, 'PT')), []);
        assert.deepEqual((await study(S1))?.modalities, ['CT', 'SR']);
        // At series level it selects every series of the matching studies.
        const se = await seriesOf(issuer, [single(TAG.ModalitiesInStudy, 'SR')]);
        assert.equal(se.length, 2);
        // A series attribute at study level selects studies having such a series.
        assert.deepEqual(await mis(single(TAG.Modality, 'MR')), [S2]);
      });

      it('non-indexed attributes are matched in the stored header', async () => {
        const issuer = token();
        const S = newUid();
        const a = makeRecord({
          issuer,
          studyUid: S,
          extra: {
            [TAG.ManufacturerModelName]: { vr: 'LO', Value: ['Scanner 100%'] },
            [TAG.Rows]: { vr: 'US', Value: [512] },
            [TAG.PerformingPhysicianName]: { vr: 'PN', Value: [{ Alphabetic: 'House^Gregory' }] },
          },
        });
        const b = makeRecord({ issuer, studyUid: S, seriesUid: a.seriesUid, extra: { [TAG.ManufacturerModelName]: { vr: 'LO', Value: ['Other'] }, [TAG.Rows]: { vr: 'US', Value: [256] } } });
        await commit(a);
        await commit(b);
        const sops = async (c: Constraint): Promise<string[]> => (await instancesOf(issuer, [c])).map((r) => r.sopUid);
        assert.deepEqual(await sops(single(TAG.ManufacturerModelName, 'Scanner 100%')), [a.sopUid]);
        assert.deepEqual(await sops({ kind: 'wildcard', tag: TAG.ManufacturerModelName, pattern: 'Sc*%' }), [a.sopUid]);
        assert.deepEqual(await sops(single(TAG.Rows, '512')), [a.sopUid]);
        assert.deepEqual(await sops({ kind: 'list', tag: TAG.Rows, values: ['256', '1024'] }), [b.sopUid]);
        assert.deepEqual(await sops(single(TAG.PerformingPhysicianName, 'House^Gregory')), [a.sopUid]);
        assert.deepEqual(await sops(single(TAG.ManufacturerModelName, 'Absent')), []);
      });

      it('a non-indexed attribute of several values matches when any value does (PS3.4 C.2.2.3)', async () => {
        const issuer = token();
        const a = makeRecord({
          issuer,
          extra: {
            [TAG.ImageType]: { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] },
            [TAG.OperatorsName]: { vr: 'PN', Value: [{ Alphabetic: 'Alpha^Op' }, { Alphabetic: 'Beta^Op' }] },
            [TAG.ImagePositionPatient]: { vr: 'DS', Value: [-125, 7.5, 40] },
          },
        });
        const b = makeRecord({ issuer, extra: { [TAG.ImageType]: { vr: 'CS', Value: ['DERIVED', 'SECONDARY', 'LOCALIZER'] } } });
        for (const r of [a, b]) await commit(r);
        const sops = async (c: Constraint): Promise<string[]> => (await instancesOf(issuer, [c])).map((r) => r.sopUid).sort();
        assert.deepEqual(await sops(single(TAG.ImageType, 'AXIAL')), [a.sopUid]);
        assert.deepEqual(await sops(single(TAG.ImageType, 'ORIGINAL')), [a.sopUid]);
        assert.deepEqual(await sops({ kind: 'wildcard', tag: TAG.ImageType, pattern: '*LOCAL*' }), [b.sopUid]);
        assert.deepEqual(await sops({ kind: 'list', tag: TAG.ImageType, values: ['AXIAL', 'LOCALIZER'] }), [a.sopUid, b.sopUid].sort());
        assert.deepEqual(await sops(single(TAG.ImageType, 'ORIGINAL\\PRIMARY')), []);
        assert.deepEqual(await sops(single(TAG.OperatorsName, 'Beta^Op')), [a.sopUid]);
        assert.deepEqual(await sops(single(TAG.ImagePositionPatient, '7.5')), [a.sopUid]);
        assert.deepEqual(await sops(single(TAG.ImagePositionPatient, '-125')), [a.sopUid]);
        // A study-level query reaches the instances' values too.
        assert.deepEqual((await studies(issuer, [single(TAG.ImageType, 'LOCALIZER')])).map((s) => s.studyUid), [b.studyUid]);
      });

      it('non-indexed attributes match on the record of their own level, and below a higher-level query', async () => {
        const issuer = token();
        const S1 = newUid();
        const S2 = newUid();
        const age = (v: string) => ({ [TAG.PatientAge]: { vr: 'AS' as const, Value: [v] } });
        const a = makeRecord({ issuer, studyUid: S1, extra: { ...age('042Y'), [TAG.Manufacturer]: { vr: 'LO', Value: ['ACME'] }, [TAG.SliceThickness]: { vr: 'DS', Value: [1.25] } } });
        const a2 = makeRecord({ issuer, studyUid: S1, extra: { ...age('042Y'), [TAG.Manufacturer]: { vr: 'LO', Value: ['OTHER'] }, [TAG.SliceThickness]: { vr: 'DS', Value: [5] } } });
        const b = makeRecord({ issuer, studyUid: S2, extra: { ...age('007Y'), [TAG.Manufacturer]: { vr: 'LO', Value: ['OTHER'] } } });
        for (const r of [a, a2, b]) await commit(r);
        const uids = async (c: Constraint): Promise<string[]> => (await studies(issuer, [c])).map((s) => s.studyUid).sort();
        // The study row keeps study attributes only; the series row series attributes only.
        const s1 = (await studies(issuer, [], { studyUid: S1 }))[0];
        assert.equal(s1?.header[TAG.PatientAge]?.Value?.[0], '042Y');
        assert.equal(s1?.header[TAG.Manufacturer], undefined);
        assert.equal(s1?.header[TAG.SliceThickness], undefined);
        assert.deepEqual(await uids(single(TAG.PatientAge, '007Y')), [S2]);
        // A series attribute at study level: any series of the study; an instance attribute: any instance.
        assert.deepEqual(await uids(single(TAG.Manufacturer, 'ACME')), [S1]);
        assert.deepEqual(await uids(single(TAG.Manufacturer, 'OTHER')), [S1, S2].sort());
        assert.deepEqual(await uids(single(TAG.SliceThickness, '1.25')), [S1]);
        assert.deepEqual(await uids(single(TAG.SliceThickness, '9')), []);
        // Series level: its own attribute on its own row; a study attribute on the study row.
        const series = async (c: Constraint): Promise<string[]> => (await seriesOf(issuer, [c])).map((s) => s.seriesUid).sort();
        assert.deepEqual(await series(single(TAG.Manufacturer, 'ACME')), [a.seriesUid]);
        assert.deepEqual(await series(single(TAG.PatientAge, '007Y')), [b.seriesUid]);
        // Instance level: the complete instance header.
        assert.deepEqual((await instancesOf(issuer, [single(TAG.PatientAge, '042Y')])).map((r) => r.sopUid).sort(), [a.sopUid, a2.sopUid].sort());
      });

      it('series and instance level constraints and URL scope', async () => {
        const issuer = token();
        const pid = token('P');
        const S = newUid();
        const SE1 = newUid();
        const SE2 = newUid();
        const other = makeRecord({ issuer, patientId: pid, modality: 'CT' });
        const i1 = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE1, modality: 'CT', seriesNumber: 3, instanceNumber: 1 });
        const i2 = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE1, modality: 'CT', seriesNumber: 3, instanceNumber: 2, sopClassUid: '1.2.3' });
        const i3 = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE2, modality: 'SR', seriesNumber: 7, instanceNumber: 1 });
        for (const r of [other, i1, i2, i3]) await commit(r);
        assert.deepEqual((await seriesOf(issuer, [single(TAG.Modality, 'CT')])).map((s) => s.seriesUid).sort(), [other.seriesUid, SE1].sort());
        assert.deepEqual((await seriesOf(issuer, [single(TAG.Modality, 'CT')], { studyUid: S })).map((s) => s.seriesUid), [SE1]);
        assert.deepEqual((await seriesOf(issuer, [single(TAG.SeriesNumber, '7')])).map((s) => s.seriesUid), [SE2]);
        assert.deepEqual((await seriesOf(issuer, [{ kind: 'range', tag: TAG.SeriesNumber, from: '2', to: '5' }])).map((s) => s.seriesUid), [SE1]);
        const inst = await instancesOf(issuer, [], { studyUid: S, seriesUid: SE1 });
        assert.deepEqual(inst.map((r) => r.sopUid), [i1.sopUid, i2.sopUid]);
        assert.deepEqual(inst[0]?.seriesHeader, i2.levelHeaders?.series);
        assert.deepEqual(inst[0]?.header, i1.header);
        assert.deepEqual((await instancesOf(issuer, [single(TAG.SOPClassUID, '1.2.3')])).map((r) => r.sopUid), [i2.sopUid]);
        assert.deepEqual((await instancesOf(issuer, [single(TAG.InstanceNumber, '1')], { studyUid: S })).map((r) => r.sopUid).sort(), [i1.sopUid, i3.sopUid].sort());
        assert.deepEqual((await instancesOf(issuer, [single(TAG.SOPInstanceUID, i3.sopUid)])).map((r) => r.seriesUid), [SE2]);
        assert.deepEqual((await instancesOf(issuer, [], { studyUid: newUid() })), []);
        // Patient level.
        const pats = await patients(issuer, [single(TAG.PatientID, pid)]);
        assert.equal(pats.length, 1);
        assert.equal(pats[0]?.numStudies, 2);
        assert.equal(pats[0]?.issuer, issuer);
        assert.equal(await store.count(q('patient', [single(ISSUER, issuer), single(TAG.PatientID, pid)])), 1);
      });

      it('pages with limit/offset in a stable order whose pages concatenate to the full result', async () => {
        const issuer = token();
        const pid = token('P');
        const made: InstanceRecord[] = [];
        for (let k = 0; k < 7; k++) {
          const r = makeRecord({ issuer, patientId: pid });
          made.push(r);
          await commit(r);
        }
        const full = (await studies(issuer)).map((s) => s.studyUid);
        // Newest first.
        assert.deepEqual(full, made.map((r) => r.studyUid).reverse());
        const paged: string[] = [];
        for (let offset = 0; offset < 10; offset += 3) {
          paged.push(...(await studies(issuer, [], { limit: 3, offset })).map((s) => s.studyUid));
        }
        assert.deepEqual(paged, full);
        assert.equal(new Set(paged).size, paged.length);
        assert.equal(await store.count(q('study', [single(ISSUER, issuer)], { limit: 2, offset: 1 })), 7);
        assert.equal(await store.count(q('study', [single(ISSUER, issuer), single(TAG.StudyInstanceUID, newUid())])), 0);
      });

      it('orders series by number (absent last) and instances by number (absent last), then arrival', async () => {
        const issuer = token();
        const pid = token('P');
        const S = newUid();
        const seNull = newUid();
        const se2 = newUid();
        const se1 = newUid();
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: seNull, seriesNumber: null }));
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: se2, seriesNumber: 2 }));
        await commit(makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: se1, seriesNumber: 1 }));
        assert.deepEqual((await seriesOf(issuer, [], { studyUid: S })).map((s) => s.seriesUid), [se1, se2, seNull]);
        const byNumber: [number | null, string][] = [];
        for (const n of [3, null, 1, 2, null, 1]) {
          const r = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: se1, seriesNumber: 1, instanceNumber: n });
          await commit(r);
          byNumber.push([n, r.sopUid]);
        }
        const first = await instancesOf(issuer, [], { studyUid: S, seriesUid: se1 });
        // The series' first instance (instance number 1) was stored before the loop.
        const expected = [first[0]?.sopUid, byNumber[2]?.[1], byNumber[5]?.[1], byNumber[3]?.[1], byNumber[0]?.[1], byNumber[1]?.[1], byNumber[4]?.[1]];
        assert.deepEqual(first.map((r) => r.sopUid), expected);
        const paged: string[] = [];
        for (let offset = 0; offset < 8; offset += 2) {
          paged.push(...(await instancesOf(issuer, [], { studyUid: S, seriesUid: se1, limit: 2, offset })).map((r) => r.sopUid));
        }
        assert.deepEqual(paged, first.map((r) => r.sopUid));
      });
    });

    // ---- listInstances -----------------------------------------------------------------

    describe('listInstances', () => {
      it('yields every instance in series then instance order across more than one page', async () => {
        const issuer = token();
        const pid = token('P');
        const S = newUid();
        const seA = newUid(); // series number 2
        const seB = newUid(); // series number 1
        const expectedB: { n: number | null; sop: string }[] = [];
        // 520 instances in series B: more than one 500-row page, with ties and absent numbers.
        for (let k = 0; k < 520; k++) {
          const n = k % 10 === 0 ? null : 520 - (k % 260);
          const r = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: seB, seriesNumber: 1, instanceNumber: n, size: 1 });
          await commit(r);
          expectedB.push({ n, sop: r.sopUid });
        }
        const expectedA: string[] = [];
        for (let k = 0; k < 3; k++) {
          const r = makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: seA, seriesNumber: 2, instanceNumber: k + 1, size: 1 });
          await commit(r);
          expectedA.push(r.sopUid);
        }
        // Stable sort keeps arrival order among equal numbers; absent numbers last.
        const sortedB = expectedB
          .map((e, idx) => ({ ...e, idx }))
          .sort((x, y) => {
            if (x.n === null && y.n === null) return x.idx - y.idx;
            if (x.n === null) return 1;
            if (y.n === null) return -1;
            return x.n - y.n || x.idx - y.idx;
          })
          .map((e) => e.sop);
        const all = await collect(store.listInstances({ studyUid: S }));
        assert.equal(all.length, 523);
        assert.deepEqual(all.map((r) => r.sopUid), [...sortedB, ...expectedA]);
        assert.equal(all[0]?.header, undefined);
        const onlyA = await collect(store.listInstances({ studyUid: S, seriesUid: seA }, { withHeader: true }));
        assert.deepEqual(onlyA.map((r) => r.sopUid), expectedA);
        assert.equal(onlyA[0]?.header?.['00080018']?.Value?.[0], expectedA[0]);
        const one = await collect(store.listInstances({ studyUid: S, seriesUid: seA, sopUid: expectedA[1] }));
        assert.deepEqual(one.map((r) => r.sopUid), [expectedA[1]]);
        assert.deepEqual(await collect(store.listInstances({ studyUid: newUid() })), []);
        assert.deepEqual(await collect(store.listInstances({ studyUid: S, seriesUid: newUid() })), []);
        assert.equal((await study(S))?.numInstances, 523);
      });
    });

    // ---- removal -----------------------------------------------------------------------

    describe('remove', () => {
      async function fixture() {
        const issuer = token();
        const patientId = token('P');
        const S = newUid();
        const SE1 = newUid();
        const SE2 = newUid();
        const a = makeRecord({ issuer, patientId, studyUid: S, seriesUid: SE1, size: 1 });
        const b = makeRecord({ issuer, patientId, studyUid: S, seriesUid: SE1, size: 2 });
        const c = makeRecord({ issuer, patientId, studyUid: S, seriesUid: SE2, size: 4, modality: 'SR' });
        for (const r of [a, b, c]) await commit(r);
        return { issuer, patientId, S, SE1, SE2, a, b, c };
      }

      it('removeInstance updates counters and removes emptied series, study and patient', async () => {
        const { issuer, patientId, S, SE1, SE2, a, b, c } = await fixture();
        assert.equal(await store.removeInstance(a.sopUid, { studyUid: newUid() }), undefined);
        assert.equal(await store.removeInstance(a.sopUid, { seriesUid: SE2 }), undefined);
        assert.equal(await store.removeInstance(newUid()), undefined);
        assert.deepEqual(await store.removeInstance(a.sopUid, { studyUid: S, seriesUid: SE1 }), { blobKeys: [a.blob.key], studies: 0, series: 0, instances: 1 });
        let st = await study(S);
        assert.deepEqual([st?.numSeries, st?.numInstances, st?.totalBytes], [2, 2, 6]);
        assert.deepEqual([(await series(SE1))?.numInstances, (await series(SE1))?.totalBytes], [1, 2]);
        assert.deepEqual(await store.removeInstance(b.sopUid), { blobKeys: [b.blob.key], studies: 0, series: 1, instances: 1 });
        assert.equal(await series(SE1), undefined);
        st = await study(S);
        assert.deepEqual([st?.numSeries, st?.numInstances, st?.totalBytes], [1, 1, 4]);
        assert.deepEqual(st?.modalities, ['SR']);
        assert.deepEqual(await store.removeInstance(c.sopUid), { blobKeys: [c.blob.key], studies: 1, series: 1, instances: 1 });
        assert.equal(await study(S), undefined);
        assert.equal(await patient(patientId, issuer), undefined);
        assert.equal(await store.getInstance(c.sopUid), undefined);
      });

      it('removeSeries cascades and fixes the study counters', async () => {
        const { S, SE1, SE2, a, b, c } = await fixture();
        assert.equal(await store.removeSeries(SE1, newUid()), undefined);
        assert.equal(await store.removeSeries(newUid()), undefined);
        const res = await store.removeSeries(SE1, S);
        assert.ok(res);
        assert.deepEqual(res.blobKeys.sort(), [a.blob.key, b.blob.key].sort());
        assert.deepEqual([res.studies, res.series, res.instances], [0, 1, 2]);
        assert.equal(await store.getInstance(a.sopUid), undefined);
        const st = await study(S);
        assert.deepEqual([st?.numSeries, st?.numInstances, st?.totalBytes], [1, 1, 4]);
        const last = await store.removeSeries(SE2);
        assert.deepEqual(last, { blobKeys: [c.blob.key], studies: 1, series: 1, instances: 1 });
        assert.equal(await study(S), undefined);
      });

      it('removeStudy cascades to series and instances and returns every blob key', async () => {
        const { issuer, patientId, S, a, b, c } = await fixture();
        const keep = makeRecord({ issuer, patientId });
        await commit(keep);
        assert.equal(await store.removeStudy(newUid()), undefined);
        const res = await store.removeStudy(S);
        assert.ok(res);
        assert.deepEqual(res.blobKeys.sort(), [a.blob.key, b.blob.key, c.blob.key].sort());
        assert.deepEqual([res.studies, res.series, res.instances], [1, 2, 3]);
        assert.equal(await study(S), undefined);
        assert.deepEqual(await collect(store.listInstances({ studyUid: S })), []);
        assert.equal((await patient(patientId, issuer))?.numStudies, 1);
        assert.deepEqual(await store.referencedBlobKeys([a.blob.key, keep.blob.key]), new Set([keep.blob.key]));
        assert.equal(await store.removeStudy(S), undefined);
      });
    });

    // ---- misc --------------------------------------------------------------------------

    it('referencedBlobKeys returns the referenced subset, also for long lists', async () => {
      const issuer = token();
      const r1 = makeRecord({ issuer });
      const r2 = makeRecord({ issuer });
      await commit(r1);
      await commit(r2);
      const unknown = Array.from({ length: 1200 }, (_, k) => `2026/11/none-${k}-${newUid()}.dcm`);
      const got = await store.referencedBlobKeys([...unknown.slice(0, 700), r1.blob.key, ...unknown.slice(700), r2.blob.key]);
      assert.deepEqual(got, new Set([r1.blob.key, r2.blob.key]));
      assert.deepEqual(await store.referencedBlobKeys([]), new Set());
    });

    it('statistics count patients, studies, series, instances, bytes and instances per modality', async () => {
      const s0 = await store.statistics();
      const issuer = token();
      const pid = token('P');
      const S = newUid();
      await commit(makeRecord({ issuer, patientId: pid, studyUid: S, modality: 'CT', size: 100 }));
      const se = newUid();
      await commit(makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: se, modality: 'MR', size: 10 }));
      await commit(makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: se, modality: 'MR', size: 1 }));
      await commit(makeRecord({ issuer, modality: 'MR', size: 1000 }));
      const s1 = await store.statistics();
      assert.equal(s1.patients - s0.patients, 2);
      assert.equal(s1.studies - s0.studies, 2);
      assert.equal(s1.series - s0.series, 3);
      assert.equal(s1.instances - s0.instances, 4);
      assert.equal(s1.bytes - s0.bytes, 1111);
      assert.equal((s1.byModality.CT ?? 0) - (s0.byModality.CT ?? 0), 1);
      assert.equal((s1.byModality.MR ?? 0) - (s0.byModality.MR ?? 0), 3);
    });

    it('migrate() again is a no-op that keeps the data', async () => {
      const r = makeRecord({ issuer: token() });
      await commit(r);
      await store.migrate();
      await store.migrate();
      assert.ok(await store.getInstance(r.sopUid));
      await store.ping();
    });

    it('serialises concurrent commits to one study without losing counts', async () => {
      const issuer = token();
      const pid = token('P');
      const S = newUid();
      const SE = newUid();
      const records = Array.from({ length: 20 }, () => makeRecord({ issuer, patientId: pid, studyUid: S, seriesUid: SE, size: 3 }));
      const results = await Promise.all(records.map((r) => commit(r)));
      assert.ok(results.every((x) => x.kind === 'stored'));
      const st = await study(S);
      assert.deepEqual([st?.numSeries, st?.numInstances, st?.totalBytes], [1, 20, 60]);
      assert.equal((await patient(pid, issuer))?.numStudies, 1);
    });
  });
}

/** The spec that re-creates a record with the same UIDs and patient (for re-sends). */
function specOf(r: InstanceRecord): RecordSpec {
  return {
    studyUid: r.studyUid,
    seriesUid: r.seriesUid,
    sopUid: r.sopUid,
    patientId: r.patient.patient_id,
    issuer: r.patient.issuer,
  };
}
