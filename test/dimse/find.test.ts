// The Q/R FIND SCP end to end with DCMTK's findscu (TCP_NODELAY=1): a generated corpus (six patients,
// names in five character sets) stored through the archive, then queries at every level of both
// information models. Each answer set must equal what archive.query (QIDO-RS) finds for the same
// keys, each response must hold only the requested keys, labelled ISO_IR 192, and C-CANCEL must end
// the stream with FE00.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Archive } from '../../src/archive/archive.js';
import { silentLogger } from '../../src/archive/context.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import type { QueryParams } from '../../src/archive/query/build-query.js';
import { readPart10HeaderFromBuffer } from '../../src/dicom/header-reader.js';
import { firstString } from '../../src/dicom/json.js';
import type { QueryLevel } from '../../src/dicom/query-model.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { PATIENT_ROOT_FIND, STUDY_ROOT_FIND } from '../../src/dimse/acse/sop-classes.js';
import { CommandField, NO_DATA_SET, type CommandSet } from '../../src/dimse/message/command.js';
import { INTERNAL_ERROR_COMMENT } from '../../src/dimse/message/status.js';
import { createFindHandler } from '../../src/dimse/scp/find.js';
import { EXPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { encodeDataset } from '../../src/dicom/writer.js';
import { generateCorpus, PATIENTS, type Corpus } from '../helpers/corpus.js';
import { AE, dcmtk, startDimse, type TestDimse } from './helpers.js';

const CTX = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };

/** The unique key of each level: what identifies a match. */
const UNIQUE: Record<QueryLevel, string> = { patient: '00100020', study: '0020000D', series: '0020000E', instance: '00080018' };
const LEVEL_NAME: Record<QueryLevel, string> = { patient: 'PATIENT', study: 'STUDY', series: 'SERIES', instance: 'IMAGE' };

interface FindResult {
  code: number;
  /** DIMSE statuses of every response, in order (pending ones, then the final one). */
  statuses: number[];
  /** The identifiers of the pending responses, as findscu extracted them. */
  answers: DicomJsonDataset[];
  log: string;
}

let scratch: string;
let runs = 0;
before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'pacsnode-find-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** findscu with debug output (statuses) and -X (each response identifier to a file). */
async function findscu(port: number, model: '-S' | '-P', keys: string[], extra: string[] = []): Promise<FindResult> {
  const dir = path.join(scratch, `run${++runs}`);
  await mkdir(dir);
  const args = ['-d', model, '-aet', 'FINDSCU', '-aec', AE, '-X', '-od', dir, ...extra, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(port)];
  const r = await dcmtk('findscu', args);
  const log = r.stdout + r.stderr;
  const statuses = [...log.matchAll(/DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})/g)].map((m) => parseInt(m[1] as string, 16));
  const files = (await readdir(dir)).filter((f) => f.endsWith('.dcm')).sort();
  const answers: DicomJsonDataset[] = [];
  for (const f of files) answers.push(readPart10HeaderFromBuffer(await readFile(path.join(dir, f)), { bulkdataThreshold: 1 << 20 }).dataset);
  return { code: r.code, statuses, answers, log };
}

/** What QIDO-RS (archive.query) finds for the same keys: the unique keys of every match, all pages. */
async function qido(archive: Archive, level: QueryLevel, params: QueryParams, scope: { studyUid?: string; seriesUid?: string } = {}): Promise<string[]> {
  const out: string[] = [];
  for (let offset = 0; ; ) {
    const page = await archive.query(CTX, { level, ...scope, params: [...params, ['includefield', UNIQUE[level]], ['limit', '1000'], ['offset', String(offset)]] });
    for (const ds of page.datasets) out.push(firstString(ds, UNIQUE[level]) ?? '');
    if (page.remaining === 0 || page.datasets.length === 0) return out.sort();
    offset += page.datasets.length;
  }
}

function uniqueKeys(r: FindResult, level: QueryLevel): string[] {
  return r.answers.map((a) => firstString(a, UNIQUE[level]) ?? '').sort();
}

function assertSuccess(r: FindResult): void {
  assert.equal(r.code, 0, r.log.slice(-2000));
  assert.equal(r.statuses.at(-1), 0x0000, `final status ${r.statuses.at(-1)?.toString(16)}`);
  assert.equal(r.statuses.length, r.answers.length + 1, 'one pending response per extracted answer');
  for (const s of r.statuses.slice(0, -1)) assert.ok(s === 0xff00 || s === 0xff01, `pending status ${s.toString(16)}`);
}

/** Exactly the requested keys, plus Query/Retrieve Level and Specific Character Set ISO_IR 192. */
function assertOnlyKeys(r: FindResult, level: QueryLevel, requested: string[]): void {
  const expected = [...new Set([...requested, '00080005', '00080052'])].sort();
  for (const a of r.answers) {
    assert.deepEqual(Object.keys(a).sort(), expected);
    assert.equal(firstString(a, '00080005'), 'ISO_IR 192');
    assert.equal(firstString(a, '00080052'), LEVEL_NAME[level]);
  }
}

describe('C-FIND SCP with DCMTK findscu', () => {
  let d: TestDimse;
  let corpus: Corpus;
  before(async () => {
    // A small page size: every query with more than 3 matches is answered across several archive.query pages.
    d = await startDimse({ find: (archive) => createFindHandler({ archive, aeTitle: AE, pageSize: 3 }) });
    corpus = await generateCorpus();
    for (const f of corpus.files) {
      const outcome = await d.archive.ingest(CTX, {
        body: (async function* () {
          yield f.bytes;
        })(),
      });
      assert.ok(outcome.ok, `${f.label}: ${outcome.message ?? ''}`);
    }
  });
  after(async () => {
    await d?.close();
    await corpus?.cleanup();
  });

  it('PATIENT level (Patient Root, -P): wildcard on PatientID, patient keys only', async () => {
    const r = await findscu(d.port, '-P', ['QueryRetrieveLevel=PATIENT', 'PatientID=CN*', 'PatientName', 'PatientBirthDate', 'NumberOfPatientRelatedStudies']);
    assertSuccess(r);
    const expected = await qido(d.archive, 'patient', [['PatientID', 'CN*']]);
    assert.deepEqual(expected, [PATIENTS.wangGb.patientId, PATIENTS.wangUtf8.patientId].sort());
    assert.deepEqual(uniqueKeys(r, 'patient'), expected);
    assertOnlyKeys(r, 'patient', ['00100020', '00100010', '00100030', '00201200']);
    const gb = r.answers.find((a) => firstString(a, '00100020') === PATIENTS.wangGb.patientId);
    assert.equal(firstString(gb, '00100010'), PATIENTS.wangGb.name.replace(/=$/, ''));
    assert.equal(firstString(gb, '00100030'), PATIENTS.wangGb.birthDate);
    assert.equal(firstString(gb, '00201200'), String(corpus.studies.filter((s) => s.patient.key === 'wangGb').length));
  });

  it('STUDY level (Patient Root): the patient as scope, exact PatientID', async () => {
    const r = await findscu(d.port, '-P', ['QueryRetrieveLevel=STUDY', `PatientID=${PATIENTS.doe.patientId}`, 'StudyInstanceUID', 'StudyDate']);
    assertSuccess(r);
    const expected = await qido(d.archive, 'study', [['PatientID', PATIENTS.doe.patientId]]);
    assert.deepEqual(expected, corpus.studies.filter((s) => s.patient.key === 'doe').map((s) => s.studyUid).sort());
    assert.deepEqual(uniqueKeys(r, 'study'), expected);
    assertOnlyKeys(r, 'study', ['00100020', '0020000D', '00080020']);
  });

  it('STUDY level (Study Root, -S): date range, only the requested keys, empty where absent', async () => {
    const keys = ['QueryRetrieveLevel=STUDY', 'StudyDate=20200101-20201231', 'StudyInstanceUID', 'AccessionNumber', 'NumberOfStudyRelatedInstances', 'ModalitiesInStudy', 'PatientComments'];
    const r = await findscu(d.port, '-S', keys);
    assertSuccess(r);
    const expected = await qido(d.archive, 'study', [['StudyDate', '20200101-20201231']]);
    assert.deepEqual(expected, corpus.studies.filter((s) => s.studyDate.startsWith('2020')).map((s) => s.studyUid).sort());
    assert.deepEqual(uniqueKeys(r, 'study'), expected);
    assertOnlyKeys(r, 'study', ['00080020', '0020000D', '00080050', '00201208', '00080061', '00104000']);
    for (const a of r.answers) {
      const study = corpus.studies.find((s) => s.studyUid === firstString(a, '0020000D'));
      assert.ok(study);
      assert.equal(firstString(a, '00080050'), study.accessionNumber);
      assert.equal(firstString(a, '00201208'), String(corpus.files.filter((f) => f.studyUid === study.studyUid).length));
      assert.equal(a['00104000']?.Value, undefined, 'absent attribute returned empty');
    }
  });

  it('STUDY level: PN wildcard is case-insensitive, as in QIDO-RS', async () => {
    const r = await findscu(d.port, '-S', ['QueryRetrieveLevel=STUDY', 'PatientName=wang*', 'StudyInstanceUID']);
    assertSuccess(r);
    const expected = await qido(d.archive, 'study', [['PatientName', 'wang*']]);
    assert.equal(expected.length, corpus.studies.filter((s) => s.patient.key.startsWith('wang')).length);
    assert.deepEqual(uniqueKeys(r, 'study'), expected);
  });

  it('non-ASCII keys (ISO_IR 192): matched, answered in UTF-8 and labelled ISO_IR 192', async () => {
    const r = await findscu(d.port, '-S', ['0008,0005=ISO_IR 192', 'QueryRetrieveLevel=STUDY', 'PatientName=Müller*', 'StudyInstanceUID', 'StudyDescription']);
    assertSuccess(r);
    const expected = await qido(d.archive, 'study', [['PatientName', 'Müller*']]);
    assert.deepEqual(expected, corpus.studies.filter((s) => s.patient.key === 'mueller').map((s) => s.studyUid).sort());
    assert.deepEqual(uniqueKeys(r, 'study'), expected);
    assertOnlyKeys(r, 'study', ['00100010', '0020000D', '00081030']);
    for (const a of r.answers) assert.equal(firstString(a, '00100010'), PATIENTS.mueller.name);

    // An ideographic group, stored in UTF-8 and in GB18030: both match, both answered in UTF-8.
    const han = await findscu(d.port, '-S', ['0008,0005=ISO_IR 192', 'QueryRetrieveLevel=STUDY', 'PatientName=*王*', 'PatientID']);
    assertSuccess(han);
    const hanExpected = await qido(d.archive, 'study', [['PatientName', '*王*']]);
    assert.equal(hanExpected.length, 2);
    assert.deepEqual(
      han.answers.map((a) => firstString(a, '00100020')).sort(),
      [PATIENTS.wangGb.patientId, PATIENTS.wangUtf8.patientId].sort(),
    );
    const names = han.answers.map((a) => firstString(a, '00100010')).sort();
    assert.deepEqual(names, [PATIENTS.wangGb.name.replace(/=$/, ''), PATIENTS.wangUtf8.name.replace(/=$/, '')].sort());
  });

  it('a name stored in ISO 2022 IR 87 is answered in UTF-8 to an ASCII query', async () => {
    const r = await findscu(d.port, '-S', ['QueryRetrieveLevel=STUDY', `PatientID=${PATIENTS.yamada.patientId}`, 'PatientName']);
    assertSuccess(r);
    assert.ok(r.answers.length > 0);
    for (const a of r.answers) {
      assert.equal(firstString(a, '00080005'), 'ISO_IR 192');
      assert.equal(firstString(a, '00100010'), PATIENTS.yamada.name);
    }
  });

  it('SERIES level: a list of study UIDs, wildcard on Modality', async () => {
    const studies = corpus.studies.slice(0, 3).map((s) => s.studyUid);
    const r = await findscu(d.port, '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${studies.join('\\')}`, 'SeriesInstanceUID', 'Modality', 'NumberOfSeriesRelatedInstances']);
    assertSuccess(r);
    const expected = await qido(d.archive, 'series', [['StudyInstanceUID', studies.join('\\')]]);
    assert.deepEqual(expected, [...new Set(corpus.files.filter((f) => studies.includes(f.studyUid)).map((f) => f.seriesUid))].sort());
    assert.deepEqual(uniqueKeys(r, 'series'), expected);
    assertOnlyKeys(r, 'series', ['0020000D', '0020000E', '00080060', '00201209']);

    const ct = await findscu(d.port, '-S', ['QueryRetrieveLevel=SERIES', 'Modality=C?', 'SeriesInstanceUID']);
    assertSuccess(ct);
    const ctExpected = await qido(d.archive, 'series', [['Modality', 'C?']]);
    assert.ok(ctExpected.length > 0);
    assert.deepEqual(uniqueKeys(ct, 'series'), ctExpected);
  });

  it('SERIES level scoped by one study UID equals QIDO /studies/{s}/series', async () => {
    const study = corpus.studies[0];
    assert.ok(study);
    const r = await findscu(d.port, '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${study.studyUid}`, 'SeriesInstanceUID', 'SeriesNumber']);
    assertSuccess(r);
    assert.deepEqual(uniqueKeys(r, 'series'), await qido(d.archive, 'series', [], { studyUid: study.studyUid }));
  });

  it('IMAGE level: study and series as scope, a UID list, all instances across pages', async () => {
    const f = corpus.files[0];
    assert.ok(f);
    const scoped = await findscu(d.port, '-S', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${f.studyUid}`, `SeriesInstanceUID=${f.seriesUid}`, 'SOPInstanceUID', 'SOPClassUID', 'InstanceNumber', 'Rows']);
    assertSuccess(scoped);
    assert.deepEqual(uniqueKeys(scoped, 'instance'), await qido(d.archive, 'instance', [], { studyUid: f.studyUid, seriesUid: f.seriesUid }));
    assertOnlyKeys(scoped, 'instance', ['0020000D', '0020000E', '00080018', '00080016', '00200013', '00280010']);
    for (const a of scoped.answers) assert.equal(firstString(a, '00080016'), corpus.files.find((x) => x.sopUid === firstString(a, '00080018'))?.sopClassUid);

    const picked = corpus.files.slice(2, 6).map((x) => x.sopUid);
    const list = await findscu(d.port, '-S', ['QueryRetrieveLevel=IMAGE', `SOPInstanceUID=${picked.join('\\')}`]);
    assertSuccess(list);
    assert.deepEqual(uniqueKeys(list, 'instance'), [...picked].sort());

    const all = await findscu(d.port, '-S', ['QueryRetrieveLevel=IMAGE', 'SOPInstanceUID']);
    assertSuccess(all);
    assert.equal(all.answers.length, corpus.files.length);
    assert.deepEqual(uniqueKeys(all, 'instance'), corpus.files.map((x) => x.sopUid).sort());
  });

  it('`*` as the study or series UID of a level above is universal matching, as an empty value (PS3.4 C.2.2.2.4); a value that is no UID is refused naming the key', async () => {
    const star = await findscu(d.port, '-S', ['QueryRetrieveLevel=SERIES', 'StudyInstanceUID=*', 'SeriesInstanceUID']);
    assertSuccess(star);
    const empty = await findscu(d.port, '-S', ['QueryRetrieveLevel=SERIES', 'StudyInstanceUID', 'SeriesInstanceUID']);
    assertSuccess(empty);
    assert.equal(star.answers.length, new Set(corpus.files.map((f) => f.seriesUid)).size);
    assert.deepEqual(uniqueKeys(star, 'series'), uniqueKeys(empty, 'series'));

    const f = corpus.files[0];
    assert.ok(f);
    const images = await findscu(d.port, '-S', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${f.studyUid}`, 'SeriesInstanceUID=*', 'SOPInstanceUID']);
    assertSuccess(images);
    assert.deepEqual(uniqueKeys(images, 'instance'), await qido(d.archive, 'instance', [], { studyUid: f.studyUid }));

    const bad = await findscu(d.port, '-S', ['QueryRetrieveLevel=SERIES', 'StudyInstanceUID=1.2.x', 'SeriesInstanceUID']);
    assert.deepEqual(bad.statuses, [0xa900]);
    assert.match(bad.log, /\(0020,000d\)/i);
    assert.doesNotMatch(bad.log, /path/);
  });

  it('answers in Implicit VR Little Endian when that is the context', async () => {
    const r = await findscu(d.port, '-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=-20191231', 'StudyInstanceUID', 'PatientName'], ['-xi']);
    assertSuccess(r);
    const expected = await qido(d.archive, 'study', [['StudyDate', '-20191231']]);
    assert.deepEqual(expected, corpus.studies.filter((s) => s.studyDate < '20200101').map((s) => s.studyUid).sort());
    assert.deepEqual(uniqueKeys(r, 'study'), expected);
    assert.match(r.log, /Implicit/);
  });

  it('a value on a key that is not matched gives pending FF01 (the key is still returned)', async () => {
    const r = await findscu(d.port, '-S', ['QueryRetrieveLevel=STUDY', 'NumberOfStudyRelatedInstances=999', 'StudyInstanceUID']);
    assertSuccess(r);
    assert.equal(r.answers.length, corpus.studies.length);
    assert.ok(r.statuses.slice(0, -1).every((s) => s === 0xff01));
  });

  it('refuses a level outside the model, a missing level and an invalid key value with A900', async () => {
    const patientInStudyRoot = await findscu(d.port, '-S', ['QueryRetrieveLevel=PATIENT', 'PatientID']);
    assert.deepEqual(patientInStudyRoot.statuses, [0xa900]);
    assert.match(patientInStudyRoot.log, /OffendingElement[\s\S]*\(0008,0052\)|\(0008,0052\)[\s\S]*OffendingElement/);
    const noLevel = await findscu(d.port, '-S', ['PatientID=123456']);
    assert.deepEqual(noLevel.statuses, [0xa900]);
    const badDate = await findscu(d.port, '-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=2020']);
    assert.deepEqual(badDate.statuses, [0xa900]);
    assert.equal(badDate.answers.length, 0);
  });
});

describe('C-FIND SCP: C-CANCEL', () => {
  it('findscu --cancel 2: final status FE00 after fewer responses than matches', async () => {
    // Pages of 2, each taking 100 ms: the C-CANCEL sent after the second response arrives while the
    // next page is being fetched.
    const slow = (a: Archive): Archive => ({
      ...a,
      query: async (ctx, input) => {
        await new Promise((r) => setTimeout(r, 100));
        return a.query(ctx, input);
      },
    });
    const d = await startDimse({ find: (archive) => createFindHandler({ archive: slow(archive), pageSize: 2 }) });
    const corpus = await generateCorpus();
    try {
      for (const f of corpus.files) {
        const outcome = await d.archive.ingest(CTX, {
          body: (async function* () {
            yield f.bytes;
          })(),
        });
        assert.ok(outcome.ok);
      }
      const r = await findscu(d.port, '-S', ['QueryRetrieveLevel=IMAGE', 'SOPInstanceUID'], ['--cancel', '2']);
      assert.equal(r.code, 0, r.log.slice(-2000));
      assert.equal(r.statuses.at(-1), 0xfe00, r.log.slice(-2000));
      assert.ok(r.answers.length >= 2 && r.answers.length < corpus.files.length, `${r.answers.length} responses`);
      // The SCP is unaffected: the next query completes.
      const again = await findscu(d.port, '-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID']);
      assertSuccess(again);
      assert.equal(again.answers.length, corpus.studies.length);
    } finally {
      await d.close();
      await corpus.cleanup();
    }
  });
});

describe('C-FIND SCP handler, in process', () => {
  it('answers C000 to an identifier that cannot be decoded and 0122 to a SOP class other than the context', async () => {
    const d = await startDimse();
    try {
      const find = createFindHandler({ archive: d.archive });
      const ctx = {
        call: CTX,
        callingAe: 'RAW',
        presentation: { id: 1, abstractSyntax: STUDY_ROOT_FIND, transferSyntax: EXPLICIT_VR_LE, kind: 'find' as const },
        signal: new AbortController().signal,
        logger: silentLogger,
      };
      const run = async (req: CommandSet, identifier: Buffer, handler = find): Promise<CommandSet[]> => {
        const out: CommandSet[] = [];
        for await (const r of handler(ctx, req, identifier)) out.push(r.command);
        return out;
      };
      const req: CommandSet = { commandField: CommandField.C_FIND_RQ, commandDataSetType: 0, messageId: 5, affectedSopClassUid: STUDY_ROOT_FIND, priority: 0 };
      // (0008,0052) CS announcing 200 bytes where 4 follow
      const truncated = Buffer.from([0x08, 0x00, 0x52, 0x00, 0x43, 0x53, 0xc8, 0x00, 0x53, 0x54, 0x55, 0x44]);
      const [bad] = await run(req, truncated);
      assert.equal(bad?.status, 0xc000);
      assert.equal(bad?.messageIdBeingRespondedTo, 5);
      assert.equal(bad?.commandDataSetType, NO_DATA_SET);
      const [wrongClass] = await run({ ...req, affectedSopClassUid: PATIENT_ROOT_FIND }, Buffer.alloc(0));
      assert.equal(wrongClass?.status, 0x0122);
      const [empty] = await run(req, Buffer.alloc(0));
      assert.equal(empty?.status, 0xa900);
      assert.deepEqual(empty?.offendingElement, ['00080052']);
      // A query failing unexpectedly (a driver's message): C001 with a fixed Error Comment, the
      // driver's text for the log only.
      const failing: Archive = { ...d.archive, query: () => Promise.reject(new Error('SQLITE_ERROR: too many SQL variables near "IN"')) };
      const studyLevel = encodeDataset([{ tag: '00080052', vr: 'CS', value: 'STUDY' }, { tag: '0020000D', vr: 'UI', value: '' }], { explicitVr: true });
      const [internal] = await run(req, studyLevel, createFindHandler({ archive: failing }));
      assert.equal(internal?.status, 0xc001);
      assert.equal(internal?.errorComment, INTERNAL_ERROR_COMMENT);
    } finally {
      await d.close();
    }
  });
});
