// The node service never sends the database what cannot be valid: a lookup (get, find, remove) of
// an AE title that no node can have is NOT_FOUND / undefined without asking the store, and a
// description with control characters or an unpaired surrogate is INVALID_PARAMETER (field
// description) before any write. PostgreSQL refuses U+0000 in text (a 500 before this).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isArchiveError } from '../../src/archive/errors.js';
import { checkText, createNodeService, textProblem } from '../../src/archive/nodes.js';
import { SYSTEM } from '../../src/archive/origin.js';
import type { NodeRecord, NodeStore } from '../../src/storage/nodes.js';

const ctx = { principal: SYSTEM, origin: { protocol: 'rest' as const } };

const IMPOSSIBLE = ['', '   ', '\u0000', 'A\u0000B', 'A\u0000', 'A\u001bB', 'A\tB', 'A\u007f', 'A\u0085', 'É', 'A\\B', 'ABCDEFGHIJKLMNOPQ', 'A\ud800'];

/** A store that records the AE titles it is asked for and knows one node, "KNOWN". */
function spyStore(): { store: NodeStore; asked: string[] } {
  const asked: string[] = [];
  const known: NodeRecord = {
    aeTitle: 'KNOWN', host: 'h', port: 104, description: null, allowStore: true, allowFind: true, allowRetrieve: true, moveDestination: true,
    createdAt: new Date(0), updatedAt: new Date(0),
  };
  const store: NodeStore = {
    upsert: (node) => {
      asked.push(`upsert ${node.aeTitle}`);
      return Promise.resolve({ node: { ...known, ...node }, created: true });
    },
    get: (ae) => {
      asked.push(`get ${ae}`);
      return Promise.resolve(ae === 'KNOWN' ? known : undefined);
    },
    delete: (ae) => {
      asked.push(`delete ${ae}`);
      return Promise.resolve(ae === 'KNOWN');
    },
    list: () => Promise.resolve({ items: [known], total: 1 }),
    listMoveDestinations: () => Promise.resolve([known]),
  };
  return { store, asked };
}

const notFound = (e: unknown): boolean => isArchiveError(e) && e.code === 'NOT_FOUND';

describe('node service input', () => {
  it('get, find and remove of an AE title no node can have do not reach the store', async () => {
    const { store, asked } = spyStore();
    const nodes = createNodeService({ store });
    for (const ae of IMPOSSIBLE) {
      await assert.rejects(nodes.get(ctx, ae), (e: unknown) => notFound(e) && (e as { details?: Record<string, unknown> }).details?.['ae_title'] === ae, JSON.stringify(ae));
      assert.equal(await nodes.find(ctx, ae), undefined);
      await assert.rejects(nodes.remove(ctx, ae), notFound, JSON.stringify(ae));
    }
    assert.deepEqual(asked, []);
  });

  it('valid AE titles are looked up trimmed of spaces, as before', async () => {
    const { store, asked } = spyStore();
    const nodes = createNodeService({ store });
    assert.equal((await nodes.get(ctx, ' KNOWN  ')).aeTitle, 'KNOWN');
    assert.equal((await nodes.find(ctx, 'KNOWN           '))?.aeTitle, 'KNOWN');
    await nodes.remove(ctx, 'KNOWN ');
    await assert.rejects(nodes.get(ctx, 'OTHER'), notFound);
    assert.deepEqual(asked, ['get KNOWN', 'get KNOWN', 'delete KNOWN', 'get OTHER']);
  });

  it('a description with control characters or an unpaired surrogate is refused before the store', async () => {
    const { store, asked } = spyStore();
    const nodes = createNodeService({ store });
    for (const description of ['a\u0000b', 'a\tb', 'line\nline', 'a\rb', 'a\u001bb', 'a\u007fb', 'a\u009fb', 'a\ud800b', 'a\udfffb']) {
      await assert.rejects(
        nodes.upsert(ctx, { aeTitle: 'NODE', host: 'h', port: 104, description }),
        (e: unknown) => isArchiveError(e) && e.code === 'INVALID_PARAMETER' && e.details?.['field'] === 'description',
        JSON.stringify(description),
      );
    }
    assert.deepEqual(asked, []);
    const { node } = await nodes.upsert(ctx, { aeTitle: 'NODE', host: 'h', port: 104, description: '  Röntgen 😀 – ok  ' });
    assert.equal(node.description, 'Röntgen 😀 – ok');
  });

  it('textProblem and checkText', () => {
    assert.equal(textProblem('plain ÄÖÜ 東京 😀'), undefined);
    assert.match(textProblem('\u0000') ?? '', /control/);
    assert.match(textProblem('\u00a0\ud83d') ?? '', /surrogate/);
    assert.equal(checkText('x', 'f'), 'x');
    assert.throws(() => checkText('x\u0000', 'patient_id'), (e: unknown) => isArchiveError(e) && e.code === 'INVALID_PARAMETER' && e.details?.['field'] === 'patient_id');
  });
});
