// The storage contexts our C-GET SCU proposes (src/dimse/scu/get.ts): the SCP accepts one transfer
// syntax per presentation context and a C-GET cannot renegotiate, so each compressed syntax needs a
// context of its own per SOP class — planned from what a C-FIND says will come
// (planGetStorageContexts, planGetFromPeer), else the default list — within 128 contexts, each
// storage SOP class with an SCP/SCU Role Selection item (SCP role).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFLATED_EXPLICIT_VR_LE,
  EXPLICIT_VR_BE,
  EXPLICIT_VR_LE,
  HTJ2K,
  HTJ2K_LOSSLESS,
  IMPLICIT_VR_LE,
  JPEG_2000,
  JPEG_2000_LOSSLESS,
  JPEG_BASELINE,
  JPEG_EXTENDED,
  JPEG_LOSSLESS,
  JPEG_LOSSLESS_SV1,
  JPEG_LS_LOSSLESS,
  JPEG_LS_NEAR_LOSSLESS,
  RLE_LOSSLESS,
} from '../../src/dicom/transfer-syntax.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { STUDY_ROOT_GET } from '../../src/dimse/acse/sop-classes.js';
import {
  COMMON_IMAGE_SOP_CLASSES,
  COMPRESSED_TRANSFER_SYNTAXES,
  DEFAULT_COMPRESSED_TRANSFER_SYNTAXES,
  DEFAULT_GET_STORAGE_CONTEXTS,
  getContexts,
  IMAGE_STORAGE_SOP_CLASSES,
  MAX_STORAGE_CONTEXTS,
  NATIVE_TRANSFER_SYNTAXES,
  NON_IMAGE_STORAGE_SOP_CLASSES,
  MAX_PLAN_MATCHES,
  planGetFromPeer,
  planGetStorageContexts,
  type GetPlanFind,
  type StorageContextSpec,
} from '../../src/dimse/scu/get.js';
import { ScuError } from '../../src/dimse/scu/errors.js';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const CR = '1.2.840.10008.5.1.4.1.1.1';
const SC = '1.2.840.10008.5.1.4.1.1.7';
const MF_WORD_SC = '1.2.840.10008.5.1.4.1.1.7.3';
const ENHANCED_MR = '1.2.840.10008.5.1.4.1.1.4.1';
const BASIC_TEXT_SR = '1.2.840.10008.5.1.4.1.1.88.11';
const TARGET = { host: '127.0.0.1', port: 104, calledAe: 'PEER' };

const isNativeContext = (c: StorageContextSpec): boolean => c.transferSyntaxes.length === 2 && c.transferSyntaxes[0] === EXPLICIT_VR_LE && c.transferSyntaxes[1] === IMPLICIT_VR_LE;
const ofClass = (list: readonly StorageContextSpec[], sop: string): StorageContextSpec[] => list.filter((c) => c.sopClassUid === sop);
const compressedOf = (list: readonly StorageContextSpec[], sop: string): string[] => ofClass(list, sop).filter((c) => !isNativeContext(c)).map((c) => c.transferSyntaxes[0] as string);

/** The association's contexts and roles, checked as every C-GET association must be. */
function checkAssociation(storage: readonly StorageContextSpec[]): void {
  const { contexts, roles } = getContexts(STUDY_ROOT_GET, storage);
  assert.ok(contexts.length <= 128, `${contexts.length} contexts`);
  assert.equal(contexts.length, storage.length + 1);
  assert.deepEqual(contexts[0], { id: 1, abstractSyntax: STUDY_ROOT_GET, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES });
  assert.deepEqual(contexts.map((c) => c.id), contexts.map((_, i) => 2 * i + 1), 'odd IDs 1..255 in order');
  assert.ok((contexts.at(-1)?.id ?? 0) <= 255);
  // One role item per storage SOP class, SCP role only; none for the Q/R GET class.
  const classes = new Set(storage.map((s) => s.sopClassUid));
  assert.equal(roles.length, classes.size);
  assert.deepEqual(new Set(roles.map((r) => r.sopClassUid)), classes);
  for (const r of roles) assert.deepEqual([r.scuRole, r.scpRole], [false, true]);
  // Each compressed context proposes exactly one syntax; no (class, syntax) pair twice.
  const pairs = new Set<string>();
  for (const s of storage) {
    if (!isNativeContext(s)) assert.equal(s.transferSyntaxes.length, 1, `${s.sopClassUid}: ${s.transferSyntaxes.join(',')}`);
    for (const ts of s.transferSyntaxes) {
      assert.ok(!pairs.has(`${s.sopClassUid}|${ts}`), `${s.sopClassUid} ${ts} twice`);
      pairs.add(`${s.sopClassUid}|${ts}`);
    }
  }
}

describe('C-GET storage contexts', () => {
  it('the compressed syntaxes: every common one we know, each once, never a native one', () => {
    for (const ts of [JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS_SV1, JPEG_LOSSLESS, JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS, JPEG_2000_LOSSLESS, JPEG_2000, RLE_LOSSLESS, DEFLATED_EXPLICIT_VR_LE, HTJ2K_LOSSLESS, HTJ2K]) {
      assert.ok(COMPRESSED_TRANSFER_SYNTAXES.includes(ts), ts);
    }
    assert.equal(new Set(COMPRESSED_TRANSFER_SYNTAXES).size, COMPRESSED_TRANSFER_SYNTAXES.length);
    for (const ts of [EXPLICIT_VR_LE, IMPLICIT_VR_LE, EXPLICIT_VR_BE]) assert.ok(!COMPRESSED_TRANSFER_SYNTAXES.includes(ts));
    assert.deepEqual(DEFAULT_COMPRESSED_TRANSFER_SYNTAXES, [JPEG_BASELINE, JPEG_LOSSLESS_SV1, RLE_LOSSLESS, JPEG_2000_LOSSLESS]);
  });

  describe('the default list (nothing known about what will come)', () => {
    it('fits 128 with the Q/R GET context: native for every class, then one context per common compressed syntax', () => {
      assert.equal(DEFAULT_GET_STORAGE_CONTEXTS.length, MAX_STORAGE_CONTEXTS);
      checkAssociation(DEFAULT_GET_STORAGE_CONTEXTS);
      const all = [...IMAGE_STORAGE_SOP_CLASSES, ...NON_IMAGE_STORAGE_SOP_CLASSES];
      // The native contexts first, one per class, in the list's order.
      assert.deepEqual(DEFAULT_GET_STORAGE_CONTEXTS.slice(0, all.length).map((c) => [c.sopClassUid, isNativeContext(c)]), all.map((s) => [s, true]));
      assert.ok(DEFAULT_GET_STORAGE_CONTEXTS.slice(all.length).every((c) => !isNativeContext(c)));
      // CT, MR, CR, DX, MG, US, US multi-frame, SC, XA, NM, PT, RF: JPEG baseline, JPEG lossless SV1, RLE, JPEG 2000 lossless each.
      assert.equal(COMMON_IMAGE_SOP_CLASSES.length, 12);
      for (const sop of COMMON_IMAGE_SOP_CLASSES) {
        assert.ok(IMAGE_STORAGE_SOP_CLASSES.includes(sop), sop);
        assert.deepEqual(compressedOf(DEFAULT_GET_STORAGE_CONTEXTS, sop), [JPEG_BASELINE, JPEG_LOSSLESS_SV1, RLE_LOSSLESS, JPEG_2000_LOSSLESS], sop);
      }
      for (const sop of NON_IMAGE_STORAGE_SOP_CLASSES) assert.deepEqual(compressedOf(DEFAULT_GET_STORAGE_CONTEXTS, sop), [], sop);
      // Photographic classes: JPEG baseline with the room left.
      assert.deepEqual(compressedOf(DEFAULT_GET_STORAGE_CONTEXTS, '1.2.840.10008.5.1.4.1.1.77.1.4'), [JPEG_BASELINE]);
    });

    it('refuses more than 127 storage contexts and a context without a syntax', () => {
      assert.throws(() => getContexts(STUDY_ROOT_GET, Array.from({ length: 128 }, () => ({ sopClassUid: CT, transferSyntaxes: [EXPLICIT_VR_LE] }))), (e: unknown) => e instanceof ScuError && e.code === 'INVALID_REQUEST' && /at most 127/.test(e.message));
      assert.throws(() => getContexts(STUDY_ROOT_GET, [{ sopClassUid: CT, transferSyntaxes: [] }]), /no transfer syntax/);
    });
  });

  describe('planGetStorageContexts (classes × syntaxes → contexts)', () => {
    it('syntaxes not known: per class native, then a context per compressed syntax (non-image classes: deflated only)', () => {
      const plan = planGetStorageContexts([
        { sopClassUid: MR, instances: 3 },
        { sopClassUid: CT, instances: 120 },
        { sopClassUid: BASIC_TEXT_SR, instances: 1 },
      ]);
      checkAssociation(plan);
      assert.equal(plan.length, 3 + 2 * COMPRESSED_TRANSFER_SYNTAXES.length + 1);
      // Natives first, most instances first; then CT's compressed, MR's, the SR's.
      assert.deepEqual(plan.slice(0, 3).map((c) => [c.sopClassUid, isNativeContext(c)]), [[CT, true], [MR, true], [BASIC_TEXT_SR, true]]);
      assert.deepEqual(compressedOf(plan, CT), COMPRESSED_TRANSFER_SYNTAXES);
      assert.deepEqual(compressedOf(plan, MR), COMPRESSED_TRANSFER_SYNTAXES);
      assert.deepEqual(compressedOf(plan, BASIC_TEXT_SR), [DEFLATED_EXPLICIT_VR_LE]);
      assert.deepEqual(plan.slice(3, 3 + COMPRESSED_TRANSFER_SYNTAXES.length).map((c) => c.sopClassUid), COMPRESSED_TRANSFER_SYNTAXES.map(() => CT));
    });

    it('syntaxes known: exactly those; a class coming compressed only leads with its contexts', () => {
      const plan = planGetStorageContexts([
        { sopClassUid: CT, instances: 10, transferSyntaxes: [EXPLICIT_VR_LE, RLE_LOSSLESS, JPEG_2000_LOSSLESS] },
        { sopClassUid: SC, instances: 2, transferSyntaxes: [JPEG_BASELINE] },
        { sopClassUid: MR, instances: 5, transferSyntaxes: [IMPLICIT_VR_LE, EXPLICIT_VR_BE] },
        // A UID we do not know gets no context (the SCP may still decompress it to native).
        { sopClassUid: CR, instances: 1, transferSyntaxes: ['1.2.3.4.5', JPEG_LS_LOSSLESS] },
      ]);
      checkAssociation(plan);
      assert.deepEqual(plan, [
        { sopClassUid: SC, transferSyntaxes: [JPEG_BASELINE] },
        { sopClassUid: CR, transferSyntaxes: [JPEG_LS_LOSSLESS] },
        { sopClassUid: CT, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES },
        { sopClassUid: MR, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES },
        { sopClassUid: SC, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES },
        { sopClassUid: CR, transferSyntaxes: NATIVE_TRANSFER_SYNTAXES },
        { sopClassUid: CT, transferSyntaxes: [RLE_LOSSLESS] },
        { sopClassUid: CT, transferSyntaxes: [JPEG_2000_LOSSLESS] },
      ]);
    });

    it('the same class twice is merged (counts added, syntaxes joined)', () => {
      const plan = planGetStorageContexts([
        { sopClassUid: CT, instances: 1, transferSyntaxes: [JPEG_BASELINE] },
        { sopClassUid: MR, instances: 2 },
        { sopClassUid: CT, instances: 2, transferSyntaxes: [RLE_LOSSLESS] },
      ]);
      checkAssociation(plan);
      assert.deepEqual(plan.filter((c) => isNativeContext(c)).map((c) => c.sopClassUid), [CT, MR]);
      assert.deepEqual(compressedOf(plan, CT), [JPEG_BASELINE, RLE_LOSSLESS]);
    });

    it('more than fits: native for every class first, then compressed class by class, most instances first, up to 127', () => {
      const classes = IMAGE_STORAGE_SOP_CLASSES.slice(0, 20).map((sopClassUid, i) => ({ sopClassUid, instances: 100 - i }));
      const plan = planGetStorageContexts(classes);
      assert.equal(plan.length, MAX_STORAGE_CONTEXTS);
      checkAssociation(plan);
      const n = COMPRESSED_TRANSFER_SYNTAXES.length;
      assert.deepEqual(plan.slice(0, 20).map((c) => [c.sopClassUid, isNativeContext(c)]), classes.map((c) => [c.sopClassUid, true]));
      // 127 - 20 natives = 107 = 8 classes in full + 3 syntaxes of the 9th, in the order of preference.
      const full = Math.floor((MAX_STORAGE_CONTEXTS - 20) / n);
      const rest = MAX_STORAGE_CONTEXTS - 20 - full * n;
      classes.forEach((c, i) => {
        const expected = i < full ? COMPRESSED_TRANSFER_SYNTAXES : i === full ? COMPRESSED_TRANSFER_SYNTAXES.slice(0, rest) : [];
        assert.deepEqual(compressedOf(plan, c.sopClassUid), expected, `class ${i}`);
      });
      assert.deepEqual(COMPRESSED_TRANSFER_SYNTAXES.slice(0, 3), [JPEG_BASELINE, JPEG_LOSSLESS_SV1, RLE_LOSSLESS]);
    });

    it('more classes than contexts: the 127 with the most instances, native only', () => {
      const classes = Array.from({ length: 130 }, (_, i) => ({ sopClassUid: `1.2.3.${i + 1}`, instances: i + 1 }));
      const plan = planGetStorageContexts(classes);
      assert.equal(plan.length, MAX_STORAGE_CONTEXTS);
      checkAssociation(plan);
      assert.ok(plan.every(isNativeContext));
      assert.deepEqual(new Set(plan.map((c) => c.sopClassUid)), new Set(classes.slice(3).map((c) => c.sopClassUid)));
    });

    it('a smaller limit is kept too', () => {
      assert.equal(planGetStorageContexts([{ sopClassUid: CT, instances: 1 }], 5).length, 5);
      assert.deepEqual(planGetStorageContexts([]), []);
    });
  });

  describe('planGetFromPeer (the C-FIND before the C-GET)', () => {
    type Call = Parameters<GetPlanFind>[1];
    const match = (sopClassUid: string, ts?: string, tag = '00083002'): DicomJsonDataset => ({
      '00080016': { vr: 'UI', Value: [sopClassUid] },
      ...(ts !== undefined ? { [tag]: { vr: 'UI', Value: [ts] } } : { '00083002': { vr: 'UI' } }),
    });
    /** A C-FIND answering `answer(call)` (a throw fails that C-FIND), recording the calls. */
    function fakeFind(answer: (call: Call) => DicomJsonDataset[]): { find: GetPlanFind; calls: Call[] } {
      const calls: Call[] = [];
      return {
        calls,
        find: (_target, call) => {
          calls.push(call);
          return (async function* () {
            yield* answer(call);
          })();
        },
      };
    }

    it('asks at IMAGE level for the request\'s keys, SOP Class UID and Available Transfer Syntax UID; plans from the classes found', async () => {
      const { find, calls } = fakeFind(() => [match(CT), match(CT), match(MF_WORD_SC, JPEG_2000_LOSSLESS), match(ENHANCED_MR, JPEG_LS_LOSSLESS, '00020010')]);
      const plan = await planGetFromPeer(find, TARGET, { level: 'IMAGE', studyUid: '1.2.3', seriesUid: '1.2.3.4', sopUids: ['1.5', '1.6'] });
      assert.equal(calls.length, 1);
      assert.deepEqual(calls[0], { level: 'IMAGE', model: 'study', keys: { StudyInstanceUID: '1.2.3', SeriesInstanceUID: '1.2.3.4', SOPInstanceUID: '1.5\\1.6' }, returnKeys: ['SOPClassUID', 'AvailableTransferSyntaxUID'] });
      assert.equal(plan.fallback, undefined);
      assert.deepEqual(plan.classes, [
        { sopClassUid: CT, instances: 2 },
        { sopClassUid: MF_WORD_SC, instances: 1, transferSyntaxes: [JPEG_2000_LOSSLESS] },
        { sopClassUid: ENHANCED_MR, instances: 1, transferSyntaxes: [JPEG_LS_LOSSLESS] },
      ]);
      const storage = plan.storageContexts ?? [];
      checkAssociation(storage);
      assert.deepEqual(compressedOf(storage, CT), COMPRESSED_TRANSFER_SYNTAXES);
      assert.deepEqual(compressedOf(storage, MF_WORD_SC), [JPEG_2000_LOSSLESS]);
      assert.deepEqual(compressedOf(storage, ENHANCED_MR), [JPEG_LS_LOSSLESS]);
    });

    it('a class with one match that names no syntax gets every compressed syntax', async () => {
      const { find } = fakeFind(() => [match(CT, JPEG_BASELINE), match(CT)]);
      const plan = await planGetFromPeer(find, TARGET, { level: 'SERIES', studyUid: '1.2', seriesUid: '1.3' });
      assert.deepEqual(compressedOf(plan.storageContexts ?? [], CT), COMPRESSED_TRANSFER_SYNTAXES);
    });

    it('stops at its bounds (matches, distinct classes) and falls back to the default list, the C-FIND cancelled', async () => {
      /** A C-FIND that never ends on its own; `returned` says whether the plan stopped reading it (C-CANCEL). */
      const endless = (next: (i: number) => DicomJsonDataset): { find: GetPlanFind; read: () => number; returned: () => boolean } => {
        let read = 0;
        let returned = false;
        return {
          read: () => read,
          returned: () => returned,
          find: () =>
            (async function* () {
              try {
                for (;;) yield next(read++);
              } finally {
                returned = true;
              }
            })(),
        };
      };
      const sameClass = endless(() => match(CT));
      const a = await planGetFromPeer(sameClass.find, TARGET, { level: 'STUDY', studyUid: '1.2' });
      assert.match(a.fallback ?? '', /more than 200000 matches/);
      assert.equal(a.storageContexts, undefined);
      assert.ok(sameClass.returned());
      assert.ok(sameClass.read() <= MAX_PLAN_MATCHES + 1);
      const newClasses = endless((i) => match(`1.2.826.0.1.3680043.9.7433.${i}`));
      const b = await planGetFromPeer(newClasses.find, TARGET, { level: 'STUDY', studyUid: '1.2' });
      assert.match(b.fallback ?? '', /more than 1000 SOP classes/);
      assert.ok(newClasses.returned());
      assert.ok(newClasses.read() <= 1001);
    });

    it('bounds the hierarchical walk over all studies: at most 10,000 series (an IMAGE C-FIND each)', async () => {
      const { find, calls } = fakeFind((call) => {
        if (call.level === 'IMAGE' && call.keys?.['SeriesInstanceUID'] === undefined) throw new Error('relational query refused');
        if (call.level === 'STUDY') return Array.from({ length: 200 }, (_, i) => ({ '0020000D': { vr: 'UI', Value: [`1.2.${i}`] } }));
        if (call.level === 'SERIES') return Array.from({ length: 60 }, (_, i) => ({ '0020000E': { vr: 'UI', Value: [`${call.keys?.['StudyInstanceUID'] ?? ''}.${i}`] } }));
        return [];
      });
      const plan = await planGetFromPeer(find, TARGET, { level: 'PATIENT', model: 'patient', patientId: 'PID' });
      assert.match(plan.fallback ?? '', /more than 10000 series to walk/);
      const images = calls.filter((c) => c.level === 'IMAGE').length;
      assert.ok(images <= 10_001, `${images} IMAGE C-FINDs`);
    });

    it('Patient Root keeps the Patient ID', async () => {
      const { find, calls } = fakeFind(() => [match(CR)]);
      await planGetFromPeer(find, TARGET, { level: 'STUDY', model: 'patient', patientId: 'PID', studyUid: '1.2' });
      assert.deepEqual(calls[0], { level: 'IMAGE', model: 'patient', keys: { PatientID: 'PID', StudyInstanceUID: '1.2' }, returnKeys: ['SOPClassUID', 'AvailableTransferSyntaxUID'] });
    });

    it('a strictly hierarchical SCP refusing the relational query: walks down its series, one IMAGE query each', async () => {
      const { find, calls } = fakeFind((call) => {
        if (call.level === 'IMAGE' && call.keys['SeriesInstanceUID'] === undefined) throw new ScuError('DIMSE_FAILURE', 'status 0xc000');
        if (call.level === 'SERIES') return [{ '0020000E': { vr: 'UI', Value: ['1.2.1'] } }, { '0020000E': { vr: 'UI', Value: ['1.2.2'] } }];
        return call.keys['SeriesInstanceUID'] === '1.2.1' ? [match(CT), match(CT)] : [match(SC, JPEG_BASELINE)];
      });
      const plan = await planGetFromPeer(find, TARGET, { level: 'STUDY', studyUid: '1.2' });
      assert.deepEqual(calls.map((c) => [c.level, c.keys['SeriesInstanceUID'] ?? null]), [['IMAGE', null], ['SERIES', null], ['IMAGE', '1.2.1'], ['IMAGE', '1.2.2']]);
      assert.deepEqual(calls[1]?.keys, { StudyInstanceUID: '1.2' });
      assert.deepEqual(plan.classes, [{ sopClassUid: CT, instances: 2 }, { sopClassUid: SC, instances: 1, transferSyntaxes: [JPEG_BASELINE] }]);
    });

    it('at PATIENT level the walk starts with the studies', async () => {
      const { find, calls } = fakeFind((call) => {
        if (call.level === 'IMAGE' && call.keys['SeriesInstanceUID'] === undefined) throw new ScuError('DIMSE_FAILURE', 'no');
        if (call.level === 'STUDY') return [{ '0020000D': { vr: 'UI', Value: ['1.7'] } }];
        if (call.level === 'SERIES') return [{ '0020000E': { vr: 'UI', Value: ['1.7.1'] } }];
        return [match(MR)];
      });
      const plan = await planGetFromPeer(find, TARGET, { level: 'PATIENT', patientId: 'P1' });
      assert.deepEqual(calls.map((c) => [c.level, c.model, c.keys]), [
        ['IMAGE', 'patient', { PatientID: 'P1' }],
        ['STUDY', 'patient', { PatientID: 'P1' }],
        ['SERIES', 'patient', { PatientID: 'P1', StudyInstanceUID: '1.7' }],
        ['IMAGE', 'patient', { PatientID: 'P1', StudyInstanceUID: '1.7', SeriesInstanceUID: '1.7.1' }],
      ]);
      assert.deepEqual(plan.classes, [{ sopClassUid: MR, instances: 1 }]);
    });

    it('falls back to the default list (no storageContexts) when the C-FIND fails, or finds nothing with a SOP Class UID', async () => {
      const failing = fakeFind(() => {
        throw new ScuError('NO_PRESENTATION_CONTEXT', 'no Q/R FIND');
      });
      const failed = await planGetFromPeer(failing.find, TARGET, { level: 'SERIES', studyUid: '1.2', seriesUid: '1.3' });
      assert.equal(failed.storageContexts, undefined);
      assert.match(failed.fallback ?? '', /C-FIND failed: no Q\/R FIND/);
      assert.equal(failing.calls.length, 1, 'a SERIES-level request has nothing to walk');

      const partial = await planGetFromPeer(
        (_t, call) =>
          (async function* () {
            yield match(CT);
            if (call.level === 'IMAGE') throw new ScuError('TIMEOUT', 'gone');
          })(),
        TARGET,
        { level: 'STUDY', studyUid: '1.2' },
      );
      assert.equal(partial.storageContexts, undefined, 'a C-FIND failing halfway is not trusted');

      for (const answer of [[], [{ '00080018': { vr: 'UI', Value: ['1.9'] } } as DicomJsonDataset]]) {
        const plan = await planGetFromPeer(fakeFind(() => answer).find, TARGET, { level: 'STUDY', studyUid: '1.2' });
        assert.equal(plan.storageContexts, undefined);
        assert.match(plan.fallback ?? '', /no instance with a SOP Class UID/);
      }
    });
  });
});
