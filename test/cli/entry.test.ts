// The `pacsnode` executable (bin/pacsnode.js) runs through its own shebang with the Node flags of
// `npm start` (ADR 0018), and those flags reach the V8 heap it runs on.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { encodeDataset } from '../../src/dicom/writer.js';
import { CommandField } from '../../src/dimse/message/command.js';
import { startScriptedPeer } from '../dimse/scripted-peer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'pacsnode.js');
const run = promisify(execFile);

function startFlags(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const words = (pkg.scripts['start'] ?? '').trim().split(/\s+/);
  const entry = words.findIndex((w) => w.endsWith('bin/pacsnode.js'));
  assert.equal(words[0], 'node');
  assert.ok(entry >= 1, 'npm start runs bin/pacsnode.js');
  return words.slice(1, entry);
}

describe('bin/pacsnode.js', () => {
  it('its shebang passes exactly the Node flags of npm start', () => {
    const shebang = readFileSync(BIN, 'utf8').split('\n')[0] ?? '';
    const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(shebang);
    assert.ok(m, `shebang: ${shebang}`);
    assert.deepEqual((m[1] ?? '').trim().split(/\s+/).filter(Boolean), startFlags());
  });

  it('runs as an executable through the shebang', async () => {
    const { stdout } = await run(BIN, ['--help'], { timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '' } });
    assert.match(stdout, /NOT FOR CLINICAL USE/);
    assert.match(stdout, /serve/);
  });

  it('the flags take effect: the young generation is smaller than Node\'s default', async () => {
    const probe = "const v8=require('v8');let k=[];for(let i=0;i<2e6;i++){k.push({i});if(k.length>1e5)k=[]}process.stdout.write(String(v8.getHeapSpaceStatistics().find(s=>s.space_name==='new_space').space_size))";
    const env = { ...process.env, NODE_OPTIONS: '' };
    const withFlags = Number((await run(process.execPath, [...startFlags(), '-e', probe], { timeout: 30_000, env })).stdout);
    const without = Number((await run(process.execPath, ['-e', probe], { timeout: 30_000, env })).stdout);
    assert.ok(withFlags > 0 && withFlags < without, `new space ${withFlags} with the flags, ${without} without`);
  });

  it('find | head: a reader that closes the pipe ends the command quietly (no EPIPE stack trace), the C-FIND cancelled', async () => {
    const commands: number[] = [];
    const peer = await startScriptedPeer({
      onMessage(contextId, command, _data, c) {
        commands.push(command.commandField);
        if (command.commandField !== CommandField.C_FIND_RQ) return;
        // Matches keep coming (a big query) until the C-CANCEL.
        let i = 0;
        const timer = setInterval(() => {
          if (commands.includes(CommandField.C_CANCEL_RQ) || c.socket.destroyed || i > 2000) {
            clearInterval(timer);
            c.sendMessage(contextId, { commandField: CommandField.C_FIND_RSP, commandDataSetType: 0x0101, messageIdBeingRespondedTo: command.messageId as number, affectedSopClassUid: command.affectedSopClassUid as string, status: 0xfe00 });
            return;
          }
          const identifier = encodeDataset([{ tag: '00080052', vr: 'CS', value: 'STUDY' }, { tag: '0020000D', vr: 'UI', value: `1.2.3.${++i}` }], { explicitVr: true, littleEndian: true });
          c.sendMessage(contextId, { commandField: CommandField.C_FIND_RSP, commandDataSetType: 0x0000, messageIdBeingRespondedTo: command.messageId as number, affectedSopClassUid: command.affectedSopClassUid as string, status: 0xff00 }, identifier);
        }, 2);
      },
    });
    try {
      const child = spawn(process.execPath, [BIN, 'find', '--host', '127.0.0.1', '--port', String(peer.port), '--aec', 'MANY', '-k', 'StudyInstanceUID='], {
        env: { ...process.env, NODE_OPTIONS: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
      // Like `head -c 1`: the first bytes, then the pipe closed.
      child.stdout.once('data', () => child.stdout.destroy());
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
      assert.ok(commands.includes(CommandField.C_CANCEL_RQ), 'C-CANCEL sent');
    } finally {
      await peer.close();
    }
  });
});
