// `pacsnode echo|store|find` run in-process (runCli with captured output) against DCMTK storescp,
// dcmqrscp and our own DIMSE server; a node name is looked up in the configured SQLite database.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { expandPaths } from '../../src/cli/dimse.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { createSqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { generateCorpus, PATIENTS, type Corpus } from '../helpers/corpus.js';
import { AE, smallInstance, startDimse, type TestDimse } from '../dimse/helpers.js';
import { freePort, startQrscp, startStorescp, type RunningPeer } from '../dimse/scu-peers.js';
import { startScriptedPeer, type ScriptedPeer } from '../dimse/scripted-peer.js';
import { CommandField, type CommandSet } from '../../src/dimse/message/command.js';
import { encodeDataset } from '../../src/dicom/writer.js';

let base: string;
let dbPath: string;
let corpus: Corpus;

function run(argv: string[], extra: Partial<CliIo> = {}): Promise<{ code: number | void; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Partial<CliIo> = {
    stdout: (t) => void (out += t),
    stderr: (t) => void (err += t),
    env: {
      PACS_DATABASE__URL: `sqlite://${dbPath}`,
      PACS_FILESYSTEM_STORAGE__ROOT: path.join(base, 'blobs'),
      PACS_SERVER__AE_TITLE: 'CLITEST',
      PACS_SERVER__DIMSE_TIMEOUT_SECS: '5',
    },
    cwd: base,
    packageRoot: path.join(base, 'pkg'),
    ...extra,
  };
  return runCli(argv, io).then((code) => ({ code, out, err }));
}

before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'pacsnode-cli-dimse-'));
  dbPath = path.join(base, 'pacs.db');
  corpus = await generateCorpus();
});
after(async () => {
  await corpus.cleanup();
  await rm(base, { recursive: true, force: true });
});

describe('pacsnode echo|store|find', () => {
  let storescp: RunningPeer;
  let ours: TestDimse;
  before(async () => {
    storescp = await startStorescp({ acceptAll: true });
    ours = await startDimse();
  });
  after(async () => {
    await storescp.stop();
    await ours.close();
  });

  it('echo with --host/--port/--aec prints success', async () => {
    const r = await run(['echo', '--host', '127.0.0.1', '--port', String(storescp.port), '--aec', storescp.aeTitle]);
    assert.equal(r.code, undefined, r.err);
    assert.match(r.out, /^C-ECHO STORESCP at 127\.0\.0\.1:\d+: success \([\d.]+ ms\)\n$/);
  });

  it('echo by node name looks the node up in the configured database', async () => {
    const stores = createSqliteStores({ path: dbPath });
    await stores.migrate();
    await stores.nodes.upsert({ aeTitle: 'OURS', host: '127.0.0.1', port: ours.port, description: null, allowStore: true, allowFind: true, allowRetrieve: true, moveDestination: true }, { at: new Date() });
    await stores.close();
    // The node's called AE (OURS) is not our server's: rejected 1/1/7; --aec overrides the node's.
    const refused = await run(['echo', 'OURS']);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /rejected the association \(result 1, source 1, reason 7\)/);
    const r = await run(['echo', '--node', 'OURS', '--aec', AE]);
    assert.equal(r.code, undefined, r.err);
    assert.match(r.out, /success/);
    const unknown = await run(['echo', 'NOSUCHNODE']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /no registered node "NOSUCHNODE"/);
  });

  it('echo by node name neither creates nor migrates the database: an absent or empty one is reported', async () => {
    const fresh = path.join(base, 'fresh', 'never.db');
    const env = (url: string): Partial<CliIo> => ({ env: { PACS_DATABASE__URL: url, PACS_FILESYSTEM_STORAGE__ROOT: path.join(base, 'blobs2'), PACS_SERVER__AE_TITLE: 'CLITEST' } });
    const absent = await run(['echo', 'OURS'], env(`sqlite://${fresh}`));
    assert.equal(absent.code, 1);
    assert.match(absent.err, /no registered node "OURS": the configured database is not initialised/);
    assert.equal(existsSync(fresh), false);
    assert.equal(existsSync(path.join(base, 'blobs2')), false);
    // An existing database without the schema: still not migrated by the lookup.
    const empty = path.join(base, 'empty.db');
    await createSqliteStores({ path: empty }).close();
    const unmigrated = await run(['echo', 'OURS'], env(`sqlite://${empty}`));
    assert.equal(unmigrated.code, 1);
    assert.match(unmigrated.err, /not initialised/);
    const check = new Database(empty, { readonly: true });
    try {
      assert.deepEqual(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all(), []);
    } finally {
      check.close();
    }
  });

  it('echo to a closed port fails with exit code 1 and the reason', async () => {
    const r = await run(['echo', '--host', '127.0.0.1', '--port', String(await freePort()), '--aec', 'NOBODY']);
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot connect to 127\.0\.0\.1:\d+: ECONNREFUSED/);
  });

  it('asks for a peer when none is given', async () => {
    const r = await run(['echo']);
    assert.equal(r.code, 1);
    assert.match(r.err, /give a node \(--node NAME\) or --host, --port and --aec/);
  });

  it('store walks directories recursively and prints a summary', async () => {
    const r = await run(['store', '--host', '127.0.0.1', '--port', String(ours.port), '--aec', AE, corpus.dir]);
    assert.equal(r.code, undefined, r.err);
    const n = corpus.files.length;
    assert.match(r.out, new RegExp(`^Sent ${n} of ${n} to ${AE} at 127\\.0\\.0\\.1:\\d+: ${n} ok, 0 warnings, 0 failed; [\\d.]+ MB in [\\d.]+ s \\([\\d.]+ MB/s\\)\\n$`));
    for (const f of corpus.files) assert.ok(await ours.metadata.getInstance(f.sopUid), `${f.label} not stored`);
    assert.equal(r.err, '', 'no progress bar without a terminal');
  });

  it('store draws a progress bar on a terminal, full at the end, lists failures and exits 1 when any failed', async () => {
    const dir = path.join(base, 'mixed');
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    await writeFile(path.join(dir, 'sub', 'notdicom.txt'), 'hello');
    const file = corpus.files[0];
    assert.ok(file);
    await writeFile(path.join(dir, 'a.dcm'), file.bytes);
    const r = await run(['store', '--host', '127.0.0.1', '--port', String(storescp.port), '--aec', storescp.aeTitle, dir], { stderrIsTTY: true });
    assert.equal(r.code, 1);
    assert.match(r.err, /\r\[#+\.*\] 2\/2 /);
    // the last frame is full, the failed file (which sent nothing) included
    const frames = r.err.split('\r').filter((f) => f.startsWith('['));
    assert.match(frames.at(-1) ?? '', /^\[#{30}\] 2\/2 /, frames.join(' | '));
    assert.match(r.err, /failed: .*notdicom\.txt: not sent/);
    assert.match(r.out, /Sent 1 of 2 .*1 ok, 0 warnings, 1 failed/);
    assert.ok((await storescp.files()).some((f) => f.endsWith(file.sopUid)));
  });

  it('store fills the bar at the end when a large file the peer cannot take sent nothing', async () => {
    const dir = path.join(base, 'bar');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'a.dcm'), corpus.file('ct512').bytes);
    // 2 MB of a SOP class storescp does not know: refused at negotiation, nothing of it sent
    const refused = smallInstance({ sopClassUid: '1.2.826.0.1.3680043.9.7433.99.1', pixelBytes: 2 * 1024 * 1024 });
    await writeFile(path.join(dir, 'b.dcm'), refused.bytes);
    const plain = await startStorescp({ aeTitle: 'PLAINSCP' });
    try {
      const r = await run(['store', '--host', '127.0.0.1', '--port', String(plain.port), '--aec', 'PLAINSCP', dir], { stderrIsTTY: true });
      assert.equal(r.code, 1);
      assert.match(r.err, /b\.dcm: SOP class .* not accepted/);
      const frames = r.err.split('\r').filter((f) => f.startsWith('['));
      assert.match(frames.at(-1) ?? '', /^\[#{30}\] 2\/2 /, frames.join(' | '));
    } finally {
      await plain.stop();
    }
  });

  it('expands paths in a stable order, skipping hidden entries', async () => {
    const dir = path.join(base, 'order');
    await mkdir(path.join(dir, 'b'), { recursive: true });
    await writeFile(path.join(dir, 'b', '2'), '');
    await writeFile(path.join(dir, 'a'), '');
    await writeFile(path.join(dir, '.hidden'), '');
    assert.deepEqual(await expandPaths(base, ['order']), [path.join(dir, 'a'), path.join(dir, 'b', '2')]);
  });

  it('does not follow links to directories, and lists a dangling link instead of stopping (it fails alone)', async () => {
    const dir = path.join(base, 'links');
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    await writeFile(path.join(dir, 'a'), '');
    await writeFile(path.join(dir, 'sub', 'c'), '');
    await symlink('.', path.join(dir, 'loop'));
    await symlink('sub', path.join(dir, 'twice'));
    await symlink('/nonexistent-pacsnode-target', path.join(dir, 'dangling'));
    assert.deepEqual(await expandPaths(base, ['links']), [path.join(dir, 'a'), path.join(dir, 'dangling'), path.join(dir, 'sub', 'c')]);
    await assert.rejects(expandPaths(base, ['links/none']), /no such file or directory/);
  });

  describe('find', () => {
    let qr: RunningPeer;
    before(async () => {
      qr = await startQrscp(corpus.files.filter((f) => f.transferSyntax.startsWith('1.2.840.10008.1.2') && !f.transferSyntax.startsWith('1.2.840.10008.1.2.4') && f.transferSyntax !== '1.2.840.10008.1.2.5').map((f) => f.path));
    });
    after(async () => qr.stop());

    it('prints the matches as a DICOM JSON array, each as it arrives (never all of them held)', async () => {
      const writes: string[] = [];
      const r = await run(['find', '--host', '127.0.0.1', '--port', String(qr.port), '--aec', qr.aeTitle, '--level', 'STUDY', '-k', 'PatientName=DOE*', '-r', 'StudyDescription'], {
        stdout: (t) => void writes.push(t),
      });
      assert.equal(r.code, undefined, r.err);
      const out = writes.join('');
      const results = JSON.parse(out) as DicomJsonDataset[];
      assert.ok(results.length >= 1);
      assert.equal(writes.length, results.length + 1, 'one write per match, then the end of the array');
      assert.equal(out, `${JSON.stringify(results, null, 2)}\n`, 'the same text as one JSON.stringify of the array');
      const expected = new Set(corpus.files.filter((f) => f.patient.key === PATIENTS.doe.key && !/\.4\.|\.1\.2\.5$/.test(f.transferSyntax)).map((f) => f.studyUid));
      assert.deepEqual(new Set(results.map((x) => x['0020000D']?.Value?.[0])), expected);
      for (const x of results) assert.ok(x['00081030'], 'StudyDescription returned');
    });

    it('stops at --limit', async () => {
      const r = await run(['find', '--host', '127.0.0.1', '--port', String(qr.port), '--aec', qr.aeTitle, '--level', 'IMAGE', '--model', 'patient', '-k', 'PatientID=', '-k', 'StudyInstanceUID=', '-k', 'SeriesInstanceUID=', '--limit', '1']);
      assert.equal(r.code, undefined, r.err);
      assert.equal((JSON.parse(r.out) as unknown[]).length, 1);
    });

    /** A C-FIND peer: `count` matches (Explicit VR LE identifiers), then `end`. */
    async function findPeer(count: number, end: 'success' | 'abort', commands: number[] = []): Promise<ScriptedPeer> {
      const p = await startScriptedPeer({
        onMessage(contextId, command, _data, c) {
          commands.push(command.commandField);
          if (command.commandField !== CommandField.C_FIND_RQ) return;
          const rsp = (status: number, withData: boolean): CommandSet => ({
            commandField: CommandField.C_FIND_RSP,
            commandDataSetType: withData ? 0x0000 : 0x0101,
            messageIdBeingRespondedTo: command.messageId as number,
            affectedSopClassUid: command.affectedSopClassUid as string,
            status,
          });
          for (let i = 0; i < count; i++) {
            const identifier = encodeDataset([{ tag: '00080052', vr: 'CS', value: 'STUDY' }, { tag: '0020000D', vr: 'UI', value: `1.2.3.${i + 1}` }], { explicitVr: true, littleEndian: true });
            c.sendMessage(contextId, rsp(0xff00, true), identifier);
          }
          if (end === 'success') c.sendMessage(contextId, rsp(0x0000, false));
          else c.send({ type: 'A-ABORT', source: 2, reason: 0 });
        },
      });
      peers.push(p);
      return p;
    }
    const peers: ScriptedPeer[] = [];
    after(async () => {
      for (const p of peers) await p.close();
    });

    it('a C-FIND failing after some matches leaves stdout one well-formed array of them, exit code 1', async () => {
      const p = await findPeer(3, 'abort');
      const r = await run(['find', '--host', '127.0.0.1', '--port', String(p.port), '--aec', 'ABORTS', '-k', 'StudyInstanceUID=']);
      assert.equal(r.code, 1);
      assert.match(r.err, /abort/i);
      assert.deepEqual((JSON.parse(r.out) as DicomJsonDataset[]).map((x) => x['0020000D']?.Value?.[0]), ['1.2.3.1', '1.2.3.2', '1.2.3.3']);
    });

    it('stops when stdout has been closed (| head): the C-FIND is cancelled, exit code 0', async () => {
      const commands: number[] = [];
      const p = await findPeer(200, 'success', commands);
      let writes = 0;
      const r = await run(['find', '--host', '127.0.0.1', '--port', String(p.port), '--aec', 'MANY', '-k', 'StudyInstanceUID='], {
        stdout: () => void writes++,
        stdoutClosed: () => writes > 0,
      });
      assert.equal(r.code, undefined, r.err);
      assert.equal(writes, 2, 'the first match, then the end of the array');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(commands.includes(CommandField.C_CANCEL_RQ), `commands: ${commands.map((c) => c.toString(16)).join(', ')}`);
    });

    it('refuses a malformed key', async () => {
      const r = await run(['find', '--host', '127.0.0.1', '--port', String(qr.port), '--aec', qr.aeTitle, '-k', 'PatientName']);
      assert.equal(r.code, 1);
      assert.match(r.err, /expected KEY=VALUE/);
    });
  });
});
