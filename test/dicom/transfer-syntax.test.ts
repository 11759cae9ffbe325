import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE, isKnownTransferSyntax, TRANSFER_SYNTAXES, transferSyntax,
} from '../../src/dicom/transfer-syntax.js';

describe('transfer syntaxes', () => {
  it('describes the native syntaxes', () => {
    assert.deepEqual(
      [IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE, DEFLATED_EXPLICIT_VR_LE].map((u) => {
        const t = transferSyntax(u);
        return t && [t.explicitVr, t.littleEndian, t.encapsulated, t.deflated];
      }),
      [[false, true, false, false], [true, true, false, false], [true, false, false, false], [true, true, false, true]],
    );
  });
  it('knows the encapsulated syntaxes and their lossiness', () => {
    assert.equal(transferSyntax('1.2.840.10008.1.2.4.50')?.lossy, true);
    assert.equal(transferSyntax('1.2.840.10008.1.2.4.70')?.lossy, false);
    assert.equal(transferSyntax('1.2.840.10008.1.2.4.201')?.encapsulated, true);
    assert.equal(transferSyntax('1.2.840.10008.1.2.5')?.name, 'RLE Lossless');
    assert.equal(transferSyntax('1.2.840.10008.1.2.1.98')?.encapsulated, true);
    for (let i = 100; i <= 108; i++) assert.ok(isKnownTransferSyntax(`1.2.840.10008.1.2.4.${i}`), 'MPEG/HEVC syntax known');
  });
  it('tolerates padding and refuses unknown UIDs', () => {
    assert.equal(transferSyntax('1.2.840.10008.1.2.1\0')?.uid, EXPLICIT_VR_LE);
    assert.equal(isKnownTransferSyntax('1.2.3.4'), false);
  });
  it('has unique UIDs', () => {
    assert.equal(new Set(TRANSFER_SYNTAXES.map((t) => t.uid)).size, TRANSFER_SYNTAXES.length);
  });
});
