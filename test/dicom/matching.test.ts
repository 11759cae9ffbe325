import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DicomQueryError } from '../../src/dicom/errors.js';
import { buildConstraint, escapeLike, matchesConstraint, wildcardToLike } from '../../src/dicom/matching.js';
import { lowerBoundShortForms, type Constraint } from '../../src/dicom/query-model.js';
import type { VR } from '../../src/dicom/types.js';

const PATIENT_NAME = '00100010';
const STUDY_DATE = '00080020';
const STUDY_TIME = '00080030';
const STUDY_UID = '0020000D';

describe('lowerBoundShortForms', () => {
  it('the shorter spellings of a bound: only zeros (and the point of a fraction of zeros) dropped', () => {
    assert.deepEqual(lowerBoundShortForms('093000'), ['0930']);
    assert.deepEqual(lowerBoundShortForms('090000.000'), ['090000.00', '090000.0', '090000', '0900', '09']);
    assert.deepEqual(lowerBoundShortForms('20210615140000'), ['202106151400', '2021061514']);
    assert.deepEqual(lowerBoundShortForms('20210110'), [], 'no odd-length spelling of a date');
    assert.deepEqual(lowerBoundShortForms('20240105'), []);
    assert.deepEqual(lowerBoundShortForms('120000+0100'), []);
  });
});

describe('buildConstraint', () => {
  const cases: { name: string; tag: string; vr: VR; value: string; fuzzy?: boolean; expect: Constraint | null }[] = [
    { name: 'empty value is universal matching', tag: PATIENT_NAME, vr: 'PN', value: '', expect: null },
    { name: '`*` alone is universal matching', tag: PATIENT_NAME, vr: 'PN', value: '*', expect: null },
    { name: '`*` alone is universal for a date too', tag: STUDY_DATE, vr: 'DA', value: '*', expect: null },
    { name: 'padding only is universal', tag: '00100020', vr: 'LO', value: '   ', expect: null },
    { name: 'OHIF PatientName=*doe* is a wildcard', tag: PATIENT_NAME, vr: 'PN', value: '*doe*', expect: { kind: 'wildcard', tag: PATIENT_NAME, pattern: '*doe*' } },
    { name: 'wildcards win over fuzzy matching', tag: PATIENT_NAME, vr: 'PN', value: 'do?', fuzzy: true, expect: { kind: 'wildcard', tag: PATIENT_NAME, pattern: 'do?' } },
    { name: 'numeric tag key with wildcard (00100020=*123*)', tag: '00100020', vr: 'LO', value: '*123*', expect: { kind: 'wildcard', tag: '00100020', pattern: '*123*' } },
    { name: 'PN single value', tag: PATIENT_NAME, vr: 'PN', value: 'DOE^JOHN', expect: { kind: 'single', tag: PATIENT_NAME, value: 'DOE^JOHN' } },
    { name: 'PN with fuzzymatching is fuzzy', tag: PATIENT_NAME, vr: 'PN', value: 'doe jo', fuzzy: true, expect: { kind: 'fuzzy', tag: PATIENT_NAME, value: 'doe jo' } },
    { name: 'fuzzy does not apply to other VRs', tag: '00080050', vr: 'SH', value: 'A1', fuzzy: true, expect: { kind: 'single', tag: '00080050', value: 'A1' } },
    { name: 'CS single value, trailing padding removed', tag: '00080060', vr: 'CS', value: 'CT ', expect: { kind: 'single', tag: '00080060', value: 'CT' } },
    { name: 'IS at the ends of its range', tag: '00200013', vr: 'IS', value: '-2147483648', expect: { kind: 'single', tag: '00200013', value: '-2147483648' } },
    { name: 'UL up to 2^32-1', tag: '00280010', vr: 'UL', value: '4294967295', expect: { kind: 'single', tag: '00280010', value: '4294967295' } },
    { name: 'a UID padded with a trailing NUL', tag: STUDY_UID, vr: 'UI', value: '1.2.3\0', expect: { kind: 'single', tag: STUDY_UID, value: '1.2.3' } },
    { name: 'a time range within one hour written with its hour only at the end', tag: STUDY_TIME, vr: 'TM', value: '1230-12', expect: { kind: 'range', tag: STUDY_TIME, from: '1230', to: '125959.999999' } },
    { name: 'a one-day date range', tag: STUDY_DATE, vr: 'DA', value: '20200101-20200101', expect: { kind: 'range', tag: STUDY_DATE, from: '20200101', to: '20200101' } },
    { name: 'StudyDate=20200101-20201231 is a range', tag: STUDY_DATE, vr: 'DA', value: '20200101-20201231', expect: { kind: 'range', tag: STUDY_DATE, from: '20200101', to: '20201231' } },
    { name: 'open-ended date range a-', tag: STUDY_DATE, vr: 'DA', value: '20200101-', expect: { kind: 'range', tag: STUDY_DATE, from: '20200101' } },
    { name: 'open-started date range -b', tag: STUDY_DATE, vr: 'DA', value: '-20201231', expect: { kind: 'range', tag: STUDY_DATE, to: '20201231' } },
    { name: 'single date', tag: STUDY_DATE, vr: 'DA', value: '20200229', expect: { kind: 'single', tag: STUDY_DATE, value: '20200229' } },
    { name: 'time range with partial bounds; upper bound completed', tag: STUDY_TIME, vr: 'TM', value: '08-1230', expect: { kind: 'range', tag: STUDY_TIME, from: '08', to: '123059.999999' } },
    { name: 'time upper bound with fraction', tag: STUDY_TIME, vr: 'TM', value: '-120000.5', expect: { kind: 'range', tag: STUDY_TIME, to: '120000.599999' } },
    { name: 'single time', tag: STUDY_TIME, vr: 'TM', value: '101010.123', expect: { kind: 'single', tag: STUDY_TIME, value: '101010.123' } },
    { name: 'datetime range of years', tag: '0008002A', vr: 'DT', value: '2019-2020', expect: { kind: 'range', tag: '0008002A', from: '2019', to: '20201231235959.999999' } },
    { name: 'datetime with a negative UTC offset is single', tag: '0008002A', vr: 'DT', value: '20200101120000-0500', expect: { kind: 'single', tag: '0008002A', value: '20200101120000-0500' } },
    { name: 'datetime range with offsets', tag: '0008002A', vr: 'DT', value: '20200101-0500-20200102+0100', expect: { kind: 'range', tag: '0008002A', from: '20200101-0500', to: '20200102+0100' } },
    { name: 'one UID is single', tag: STUDY_UID, vr: 'UI', value: '1.2.3', expect: { kind: 'single', tag: STUDY_UID, value: '1.2.3' } },
    { name: 'UID list with backslash', tag: STUDY_UID, vr: 'UI', value: '1.2.3\\1.2.4', expect: { kind: 'list', tag: STUDY_UID, values: ['1.2.3', '1.2.4'] } },
    { name: 'UID list with comma', tag: STUDY_UID, vr: 'UI', value: '1.2.3,1.2.4,1.2.5', expect: { kind: 'list', tag: STUDY_UID, values: ['1.2.3', '1.2.4', '1.2.5'] } },
    { name: 'UID with trailing NUL padding', tag: STUDY_UID, vr: 'UI', value: '1.2.3\0', expect: { kind: 'single', tag: STUDY_UID, value: '1.2.3' } },
    { name: 'UID with a leading-zero component is accepted', tag: STUDY_UID, vr: 'UI', value: '1.02.3', expect: { kind: 'single', tag: STUDY_UID, value: '1.02.3' } },
    { name: 'CS with backslashes is multiple value matching', tag: '00080061', vr: 'CS', value: 'CT\\MR', expect: { kind: 'list', tag: '00080061', values: ['CT', 'MR'] } },
    { name: 'IS number', tag: '00200011', vr: 'IS', value: '-12', expect: { kind: 'single', tag: '00200011', value: '-12' } },
    { name: 'DS number with exponent', tag: '00180050', vr: 'DS', value: '1.5e-3', expect: { kind: 'single', tag: '00180050', value: '1.5e-3' } },
    { name: 'US number', tag: '00280010', vr: 'US', value: '512', expect: { kind: 'single', tag: '00280010', value: '512' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(buildConstraint(c.tag, c.vr, c.value, { fuzzy: c.fuzzy ?? false }), c.expect);
    });
  }

  const invalid: { name: string; tag: string; vr: VR; value: string }[] = [
    { name: '`-` alone', tag: STUDY_DATE, vr: 'DA', value: '-' },
    { name: 'a date not of 8 digits', tag: STUDY_DATE, vr: 'DA', value: '2020-01-01' },
    { name: 'a legacy dotted date', tag: STUDY_DATE, vr: 'DA', value: '2020.01.01' },
    { name: 'an impossible date', tag: STUDY_DATE, vr: 'DA', value: '20210229' },
    { name: 'a 31st of April', tag: STUDY_DATE, vr: 'DA', value: '20200431' },
    { name: 'a 29th of February 1900', tag: STUDY_DATE, vr: 'DA', value: '19000229' },
    { name: 'a month 13', tag: STUDY_DATE, vr: 'DA', value: '20201301-' },
    { name: 'a date wildcard', tag: STUDY_DATE, vr: 'DA', value: '2020*' },
    { name: 'a time with hour 24', tag: STUDY_TIME, vr: 'TM', value: '2400' },
    { name: 'a time with an odd digit count', tag: STUDY_TIME, vr: 'TM', value: '123' },
    { name: 'a time wildcard', tag: STUDY_TIME, vr: 'TM', value: '12?' },
    { name: 'a datetime shorter than a year', tag: '0008002A', vr: 'DT', value: '202-' },
    { name: 'a UID with letters', tag: STUDY_UID, vr: 'UI', value: '1.2.abc' },
    { name: 'a UID with an empty component', tag: STUDY_UID, vr: 'UI', value: '1..2' },
    { name: 'a UID longer than 64', tag: STUDY_UID, vr: 'UI', value: `1.${'2'.repeat(63)}` },
    { name: 'a UID list with an empty item', tag: STUDY_UID, vr: 'UI', value: '1.2,' },
    { name: 'a UID wildcard', tag: STUDY_UID, vr: 'UI', value: '1.2.*' },
    { name: 'a non-numeric IS', tag: '00200011', vr: 'IS', value: 'abc' },
    { name: 'a decimal IS', tag: '00200011', vr: 'IS', value: '1.5' },
    { name: 'a negative US', tag: '00280010', vr: 'US', value: '-1' },
    { name: 'a number wildcard', tag: '00200013', vr: 'IS', value: '1*' },
    { name: 'a sequence', tag: '00081115', vr: 'SQ', value: 'x' },
    { name: 'a date range whose start is after its end', tag: STUDY_DATE, vr: 'DA', value: '19011231-19001231' },
    { name: 'a time range whose start is after its end', tag: STUDY_TIME, vr: 'TM', value: '1200-1100' },
    { name: 'an IS beyond 32 bits (PostgreSQL failed on it: 500 / C001)', tag: '00200013', vr: 'IS', value: '99999999999999999999' },
    { name: 'an IS just past its range', tag: '00200013', vr: 'IS', value: '2147483648' },
    { name: 'a US past 65535', tag: '00280010', vr: 'US', value: '65536' },
    { name: 'an SS below its range', tag: '00189219', vr: 'SS', value: '-32769' },
    { name: 'a NUL inside a PN (PostgreSQL failed on it: 500 / C001)', tag: '00100010', vr: 'PN', value: 'DOE\0*' },
    { name: 'a NUL inside an LO', tag: '00100020', vr: 'LO', value: 'ID\u0000123' },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name} with INVALID_QUERY naming the key`, () => {
      assert.throws(
        () => buildConstraint(c.tag, c.vr, c.value, { fuzzy: false }),
        (e: unknown) => e instanceof DicomQueryError && e.message.includes(c.tag) && e.key === c.tag,
      );
    });
  }
});

describe('wildcardToLike / escapeLike', () => {
  const cases: [string, string][] = [
    ['*doe*', '%doe%'],
    ['do?', 'do_'],
    ['100%', '100\\%'],
    ['a_b*', 'a\\_b%'],
    ['back\\slash', 'back\\\\slash'],
    ['plain', 'plain'],
  ];
  for (const [pattern, like] of cases) {
    it(`converts ${JSON.stringify(pattern)} to ${JSON.stringify(like)}`, () => {
      assert.deepEqual(wildcardToLike(pattern), { like, escape: '\\' });
    });
  }
  it('escapes %, _ and \\ for LIKE', () => {
    assert.equal(escapeLike('a%b_c\\d*e?'), 'a\\%b\\_c\\\\d*e?');
  });
});

describe('matchesConstraint', () => {
  const pn = (pattern: string): Constraint => ({ kind: 'wildcard', tag: PATIENT_NAME, pattern });
  const cases: { name: string; value: string | undefined; c: Constraint; vr?: VR; expect: boolean }[] = [
    { name: 'OHIF *doe* matches DOE^JOHN case-insensitively', value: 'DOE^JOHN', c: pn('*doe*'), expect: true },
    { name: '*doe* does not match SMITH', value: 'SMITH^JANE', c: pn('*doe*'), expect: false },
    { name: 'PN single ignores case and trailing empty components', value: 'Doe^John^^^', c: { kind: 'single', tag: PATIENT_NAME, value: 'DOE^JOHN' }, expect: true },
    { name: 'PN is accent-sensitive', value: 'DOÉ^JOHN', c: { kind: 'single', tag: PATIENT_NAME, value: 'DOE^JOHN' }, expect: false },
    { name: 'PN accents compare after NFC', value: 'Do\u0065\u0301', c: { kind: 'single', tag: PATIENT_NAME, value: 'DO\u00c9' }, expect: true },
    { name: 'PN query without = matches a single component group', value: 'Yamada^Tarou=山田^太郎=やまだ^たろう', c: { kind: 'single', tag: PATIENT_NAME, value: '山田^太郎' }, expect: true },
    { name: 'PN query without = matches the whole value', value: 'Yamada^Tarou=山田^太郎', c: { kind: 'single', tag: PATIENT_NAME, value: 'yamada^tarou=山田^太郎' }, expect: true },
    { name: 'PN wildcard on an ideographic group', value: 'Yamada^Tarou=山田^太郎', c: pn('山田*'), expect: true },
    { name: 'PN query with = matches the whole value only', value: 'Yamada^Tarou=山田^太郎', c: { kind: 'single', tag: PATIENT_NAME, value: '=山田^太郎' }, expect: false },
    { name: 'wildcard ? is exactly one character', value: 'DOE', c: pn('do?'), expect: true },
    { name: 'wildcard ? is not zero characters', value: 'DO', c: pn('do?'), expect: false },
    { name: 'non-PN wildcard is case-sensitive', value: 'abc123', c: { kind: 'wildcard', tag: '00080050', pattern: '*ABC*' }, expect: false },
    { name: 'regex metacharacters in a wildcard are literal', value: 'a.b(c)', c: { kind: 'wildcard', tag: '00080050', pattern: 'a.b(*' }, expect: true },
    { name: 'regex metacharacters do not act as wildcards', value: 'axb(c)', c: { kind: 'wildcard', tag: '00080050', pattern: 'a.b(*' }, expect: false },
    { name: 'SQL metacharacters in a wildcard are literal', value: '100x', c: { kind: 'wildcard', tag: '00080050', pattern: '100%' }, expect: false },
    { name: 'PN VR can be given for a non-indexed tag', value: 'SMITH^ANN', c: { kind: 'single', tag: '00081050', value: 'smith^ann' }, vr: 'PN', expect: true },
    { name: 'non-PN single is exact', value: 'ct', c: { kind: 'single', tag: '00080060', value: 'CT' }, expect: false },
    { name: 'absent value matches no constraint', value: undefined, c: pn('*'), expect: false },
    { name: 'empty value matches no constraint', value: '', c: { kind: 'single', tag: '00080060', value: 'CT' }, expect: false },
    { name: 'UID list', value: '1.2.4', c: { kind: 'list', tag: STUDY_UID, values: ['1.2.3', '1.2.4'] }, expect: true },
    { name: 'UID not in list', value: '1.2.5', c: { kind: 'list', tag: STUDY_UID, values: ['1.2.3', '1.2.4'] }, expect: false },
    { name: 'date inside a range', value: '20200615', c: { kind: 'range', tag: STUDY_DATE, from: '20200101', to: '20201231' }, expect: true },
    { name: 'range bounds are inclusive', value: '20201231', c: { kind: 'range', tag: STUDY_DATE, from: '20200101', to: '20201231' }, expect: true },
    { name: 'date after a range', value: '20210101', c: { kind: 'range', tag: STUDY_DATE, from: '20200101', to: '20201231' }, expect: false },
    { name: 'open-ended range', value: '20990101', c: { kind: 'range', tag: STUDY_DATE, from: '20200101' }, expect: true },
    { name: 'time within a completed upper bound', value: '123045.5', c: { kind: 'range', tag: STUDY_TIME, to: '123059.999999' }, expect: true },
    { name: 'a time stored as HHMM is the instant the longer lower bound names', value: '0930', c: { kind: 'range', tag: STUDY_TIME, from: '093000', to: '094559.999999' }, expect: true },
    { name: 'a time stored as HH matches a lower bound with zeros after it (and a fraction of zeros)', value: '09', c: { kind: 'range', tag: STUDY_TIME, from: '090000.000' }, expect: true },
    { name: 'a shorter time before the lower bound does not match', value: '0929', c: { kind: 'range', tag: STUDY_TIME, from: '093000' }, expect: false },
    { name: 'a shorter time is not the instant of a bound with non-zero digits after it', value: '09', c: { kind: 'range', tag: STUDY_TIME, from: '090001' }, expect: false },
    { name: 'a wildcard with a hyphen and other regex syntax characters matches them literally', value: 'PID-1.2(3)', c: { kind: 'wildcard', tag: '00100020', pattern: 'PID-1.2(*' }, expect: true },
    { name: 'a hyphen is not a range inside a wildcard', value: 'PIDX1', c: { kind: 'wildcard', tag: '00100020', pattern: 'PID-*' }, expect: false },
    { name: 'fuzzy: every query word prefixes a name word', value: 'DOE^JOHNATHAN', c: { kind: 'fuzzy', tag: PATIENT_NAME, value: 'jo do' }, expect: true },
    { name: 'fuzzy: a word that prefixes nothing fails', value: 'DOE^JOHN', c: { kind: 'fuzzy', tag: PATIENT_NAME, value: 'doe ja' }, expect: false },
    { name: 'fuzzy: infix is not a prefix', value: 'DOE^JOHN', c: { kind: 'fuzzy', tag: PATIENT_NAME, value: 'oe' }, expect: false },
    { name: 'fuzzy: caret-separated query words', value: 'van der Berg^Anna', c: { kind: 'fuzzy', tag: PATIENT_NAME, value: 'ber^an' }, expect: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(matchesConstraint(c.value, c.c, c.vr), c.expect);
    });
  }

  it('agrees with buildConstraint on OHIF study filters', () => {
    const date = buildConstraint(STUDY_DATE, 'DA', '20200101-20201231', { fuzzy: false });
    assert.ok(date);
    assert.equal(matchesConstraint('20200704', date), true);
    assert.equal(matchesConstraint('20191231', date), false);
    const time = buildConstraint(STUDY_TIME, 'TM', '-12', { fuzzy: false });
    assert.ok(time);
    assert.equal(matchesConstraint('125959', time), true);
    assert.equal(matchesConstraint('130000', time), false);
  });
});
