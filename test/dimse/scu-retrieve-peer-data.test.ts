// What a C-MOVE peer reports is taken only as far as it is sound: its Failed SOP Instance UID List
// keeps UIDs (no padding, control characters or other junk that PostgreSQL or a client would
// choke on); and a REST move/get job holds only its latest progress report however many pending
// responses the peer sends (runRetrieve), not one promise each.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CommandField } from '../../src/dimse/message/command.js';
import { createScu } from '../../src/dimse/scu/index.js';
import { sendRetrieveFinal, startScriptedPeer, type ScriptedPeer } from './scripted-peer.js';

const run = promisify(execFile);

describe('C-MOVE SCU: the peer data taken', () => {
  const peers: ScriptedPeer[] = [];
  after(async () => {
    for (const p of peers) await p.close();
  });

  it('keeps only UIDs from the Failed SOP Instance UID List', async () => {
    const list = ['1.2\u00003', 'abc', '1.2.3', '1.2.4 ', '', '1..2', '1.2.840.5'];
    const p = await startScriptedPeer({
      onMessage(contextId, command, _data, c) {
        if (command.commandField !== CommandField.C_MOVE_RQ) return;
        sendRetrieveFinal(c, contextId, command, { status: 0xb000, completed: 1, failed: 6, failedUids: list });
      },
    });
    peers.push(p);
    const scu = createScu({ callingAe: 'PEERTEST', timeoutSecs: 5 });
    const r = await scu.move({ host: '127.0.0.1', port: p.port, calledAe: 'PEER' }, { level: 'STUDY', studyUid: '1.2.3.4' }, { destination: 'DEST' });
    assert.equal(r.status, 0xb000);
    // '1.2.4 ' is padding, trimmed as the value is read
    assert.deepEqual(r.failedUids, ['1.2.3', '1.2.4', '1.2.840.5']);
  });
});

describe('runRetrieve', () => {
  it('holds only the latest progress report, not one per pending response', async () => {
    const child = fileURLToPath(new URL('./run-retrieve-heap.child.ts', import.meta.url));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--expose-gc', child, '300000'], { timeout: 60_000 });
    const { growth } = JSON.parse(stdout) as { growth: number };
    assert.ok(growth < 4 * 1024 * 1024, `heap grew by ${(growth / 1048576).toFixed(1)} MiB over 300,000 reports`);
  });
});
