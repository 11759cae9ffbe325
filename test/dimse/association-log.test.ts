// What the DIMSE SCP logs: the line logged when an association ends counts its C-STOREs by outcome
// (a store answered with a warning, here B007 for an indexed value that is not valid, is a warning,
// not a failure); an unexpected query error is logged without what its message quotes (a database
// message can quote the key's value: patient data).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createFindHandler } from '../../src/dimse/scp/find.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import { datasetElements, PATIENTS, SOP_CLASS } from '../helpers/corpus.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { AE, dcmtk, startDimse, type TestDimse } from './helpers.js';

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';

function file(studyDate: string): { bytes: Buffer; sopUid: string } {
  const sopUid = generateUid();
  const dataset = datasetElements({
    patient: PATIENTS.doe,
    studyUid: generateUid(),
    seriesUid: generateUid(),
    sopUid,
    sopClassUid: SOP_CLASS.SC,
    modality: 'OT',
    studyDate,
    accessionNumber: 'LOGTEST',
    studyDescription: 'log',
    seriesNumber: 1,
    instanceNumber: 1,
  });
  return { bytes: writePart10({ dataset, transferSyntaxUid: EXPLICIT_VR_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid }), sopUid };
}

describe('DIMSE association log line', () => {
  const rec = recordingLogger();
  let d: TestDimse;
  let dir: string;
  before(async () => {
    d = await startDimse({ logger: rec.logger });
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-assoc-log-'));
  });
  after(async () => {
    await d.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts a C-STORE answered with a warning as storeWarning, not storeFailed', async () => {
    const good = path.join(dir, 'good.dcm');
    const warned = path.join(dir, 'warned.dcm');
    await writeFile(good, file('20240101').bytes);
    await writeFile(warned, file('2024').bytes);
    const r = await dcmtk('storescu', ['-d', '-aet', 'LOGTEST', '-aec', AE, '127.0.0.1', String(d.port), good, warned]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /0xb007/i);
    let ended: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && ended === undefined; i++) {
      ended = rec.lines.find(([, , msg]) => msg === 'DIMSE association ended')?.[1] as Record<string, unknown> | undefined;
      if (ended === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(ended, 'the association was logged');
    assert.deepEqual(ended['operations'], { echo: 0, store: 2, storeWarning: 1, storeFailed: 0, find: 0, move: 0, get: 0, cancel: 0 });
  });
});

describe('DIMSE: an unexpected query error in the log', () => {
  it('C-FIND answers C001 and logs the error without the value its message quotes', async () => {
    const rec = recordingLogger();
    const d = await startDimse({
      logger: rec.logger,
      find: (archive) =>
        createFindHandler({
          archive: {
            settings: archive.settings,
            query: async () => {
              throw new Error('invalid input syntax for type integer: "ZZPHINAME^GIVEN"');
            },
          },
        }),
    });
    try {
      const r = await dcmtk('findscu', ['-d', '-S', '-aet', 'LOGTEST', '-aec', AE, '-k', 'QueryRetrieveLevel=STUDY', '-k', 'PatientName=ZZPHINAME^GIVEN', '127.0.0.1', String(d.port)]);
      assert.match(r.stdout + r.stderr, /0xc001/i);
      const text = JSON.stringify(rec.lines);
      assert.match(text, /C-FIND query failed/);
      assert.doesNotMatch(text, /ZZPHI/);
    } finally {
      await d.close();
    }
  });
});
