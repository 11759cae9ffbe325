import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptFromQuery, negotiate, parseAccept, parseMediaType, type Offer } from '../../src/dicom/media-types.js';

describe('parseAccept', () => {
  it('returns no ranges for an absent or empty header', () => {
    assert.deepEqual(parseAccept(undefined), []);
    assert.deepEqual(parseAccept(''), []);
    assert.deepEqual(parseAccept(' , '), []);
  });

  it('reads OHIF frames Accept with unquoted parameters', () => {
    assert.deepEqual(parseAccept('multipart/related; type=application/octet-stream; transfer-syntax=*'), [
      { type: 'multipart', subtype: 'related', params: { type: 'application/octet-stream', 'transfer-syntax': '*' }, q: 1 },
    ]);
  });

  it('reads quoted parameters and lowercases names and types, not values', () => {
    assert.deepEqual(parseAccept('Multipart/Related; TYPE="application/dicom"; Transfer-Syntax="1.2.840.10008.1.2.4.50"'), [
      { type: 'multipart', subtype: 'related', params: { type: 'application/dicom', 'transfer-syntax': '1.2.840.10008.1.2.4.50' }, q: 1 },
    ]);
  });

  it('keeps commas and semicolons inside quoted values', () => {
    assert.deepEqual(parseAccept('text/plain; x="a,b;c", */*;q=0.1'), [
      { type: 'text', subtype: 'plain', params: { x: 'a,b;c' }, q: 1 },
      { type: '*', subtype: '*', params: {}, q: 0.1 },
    ]);
  });

  it('sorts by q descending, keeping header order among equals', () => {
    const r = parseAccept('image/png;q=0.5, application/dicom+json, image/jpeg;q=0.5 , application/json;q=0.9');
    assert.deepEqual(
      r.map((x) => `${x.type}/${x.subtype}:${x.q}`),
      ['application/dicom+json:1', 'application/json:0.9', 'image/png:0.5', 'image/jpeg:0.5'],
    );
  });

  const dropped: [string, string][] = [
    ['a non-numeric q', 'image/png;q=high'],
    ['a q above 1', 'image/png;q=1.5'],
    ['a negative q', 'image/png;q=-0.1'],
    ['a range without subtype', 'image'],
    ['a range */subtype', '*/png'],
    ['a parameter without value', 'image/png;foo'],
    // An unterminated quote swallows the rest of the header, so it goes last.
    ['an unterminated quote', 'image/png;a="b'],
  ];
  for (const [name, bad] of dropped) {
    it(`ignores ${name} and keeps the other ranges`, () => {
      assert.deepEqual(parseAccept(`application/json, ${bad}`), [{ type: 'application', subtype: 'json', params: {}, q: 1 }]);
    });
  }

  it('tolerates whitespace everywhere', () => {
    assert.deepEqual(parseAccept('  application/dicom ;  transfer-syntax = 1.2.840.10008.1.2.1 ; q = 0.7 '), [
      { type: 'application', subtype: 'dicom', params: { 'transfer-syntax': '1.2.840.10008.1.2.1' }, q: 0.7 },
    ]);
  });

  it('unescapes quoted-pairs', () => {
    assert.deepEqual(parseMediaType('a/b; x="q\\"uo\\\\te"')?.params, { x: 'q"uo\\te' });
  });
});

describe('negotiate', () => {
  const multipartDicom: Offer = { mediaType: 'multipart/related', type: 'application/dicom' };
  const multipartOctet: Offer = { mediaType: 'multipart/related', type: 'application/octet-stream' };
  const dicom: Offer = { mediaType: 'application/dicom' };
  const dicomJson: Offer = { mediaType: 'application/dicom+json' };
  const json: Offer = { mediaType: 'application/json' };
  const zip: Offer = { mediaType: 'application/zip' };
  const jpeg: Offer = { mediaType: 'image/jpeg' };
  const png: Offer = { mediaType: 'image/png' };
  const instance = [multipartDicom, dicom];
  const study = [multipartDicom, zip];
  const frames = [multipartOctet];
  const qido = [dicomJson, json];

  const cases: { name: string; accept: string | undefined; offers: Offer[]; expect: Offer | undefined; ts?: string }[] = [
    { name: 'absent Accept gives the first offer', accept: undefined, offers: instance, expect: multipartDicom },
    { name: '*/* gives the first offer', accept: '*/*', offers: instance, expect: multipartDicom },
    { name: 'multipart/related without type means the default type', accept: 'multipart/related', offers: instance, expect: multipartDicom },
    { name: 'multipart/related without type does not reach a non-default multipart offer', accept: 'multipart/related', offers: [multipartDicom, multipartOctet].reverse(), expect: multipartOctet },
    { name: 'quoted type parameter selects the multipart offer', accept: 'multipart/related; type="application/dicom"', offers: instance, expect: multipartDicom },
    { name: 'a multipart type the resource cannot produce is not acceptable', accept: 'multipart/related; type="image/jpeg"', offers: instance, expect: undefined },
    { name: 'OHIF frames with unquoted type and transfer-syntax=*', accept: 'multipart/related; type=application/octet-stream; transfer-syntax=*', offers: frames, expect: multipartOctet, ts: '*' },
    { name: 'single-part application/dicom', accept: 'application/dicom', offers: instance, expect: dicom },
    { name: 'transfer syntax of a single-part request', accept: 'application/dicom; transfer-syntax=1.2.840.10008.1.2.1', offers: instance, expect: dicom, ts: '1.2.840.10008.1.2.1' },
    { name: 'application/json is served as the JSON offer', accept: 'application/json', offers: qido, expect: json },
    { name: 'application/* matches the first application offer', accept: 'application/*', offers: qido, expect: dicomJson },
    { name: 'application/* does not match a multipart offer', accept: 'application/*', offers: instance, expect: dicom },
    { name: 'image/* picks the first image offer', accept: 'image/*', offers: [jpeg, png], expect: jpeg },
    { name: 'higher q wins over header order', accept: 'image/jpeg;q=0.4, image/png', offers: [jpeg, png], expect: png },
    { name: 'equal q: the range listed first wins', accept: 'image/png, image/jpeg', offers: [jpeg, png], expect: png },
    { name: 'q=0 excludes even when */* would match', accept: 'multipart/related; type="application/dicom"; q=0, */*', offers: instance, expect: dicom },
    { name: 'q=0 on everything is not acceptable', accept: '*/*;q=0', offers: instance, expect: undefined },
    { name: 'an unmatched type is not acceptable', accept: 'text/html', offers: qido, expect: undefined },
    { name: 'zip on a study', accept: 'application/zip', offers: study, expect: zip },
    { name: 'specific range beats */* at lower q', accept: '*/*;q=0.8, application/zip', offers: study, expect: zip },
    { name: 'multipart/* reaches the multipart offer', accept: 'multipart/*', offers: instance, expect: multipartDicom },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = negotiate(parseAccept(c.accept), c.offers);
      assert.equal(r?.offer, c.expect);
      assert.equal(r?.transferSyntax, c.ts);
    });
  }

  it('returns the matched range', () => {
    const r = negotiate(parseAccept('application/dicom;q=0.5;transfer-syntax=*'), instance);
    assert.deepEqual(r?.range, { type: 'application', subtype: 'dicom', params: { 'transfer-syntax': '*' }, q: 0.5 });
  });

  it('has nothing to offer without offers', () => {
    assert.equal(negotiate([], []), undefined);
  });
});

describe('acceptFromQuery', () => {
  it('lets ?accept= override the header (OHIF thumbnails with Accept: */*)', () => {
    const r = acceptFromQuery('image/jpeg', '*/*');
    assert.deepEqual(r, [{ type: 'image', subtype: 'jpeg', params: {}, q: 1 }]);
  });
  it('decodes a value left percent-encoded', () => {
    assert.deepEqual(acceptFromQuery('image%2Fjpeg', undefined), [{ type: 'image', subtype: 'jpeg', params: {}, q: 1 }]);
  });
  it('keeps + in media types', () => {
    assert.deepEqual(acceptFromQuery('application/dicom+json', undefined)[0]?.subtype, 'dicom+json');
  });
  it('reads comma-separated and repeated values', () => {
    const r = acceptFromQuery(['image/png,image/jpeg;q=0.5', 'application/zip'], undefined);
    assert.deepEqual(r.map((x) => x.subtype), ['png', 'zip', 'jpeg']);
  });
  it('falls back to the header when the parameter is absent or empty', () => {
    assert.deepEqual(acceptFromQuery(undefined, 'image/png')[0]?.subtype, 'png');
    assert.deepEqual(acceptFromQuery('', 'image/png')[0]?.subtype, 'png');
  });
  it('keeps a value with a malformed percent sequence as is', () => {
    // Not decodable (truncated UTF-8), so it stays encoded and is not a media type.
    assert.deepEqual(acceptFromQuery('image%2Fjpeg%E0%A4%A', undefined), []);
  });
});
