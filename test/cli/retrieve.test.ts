// `pacsnode move` and `pacsnode get` run in-process (runCli with captured output) against DCMTK
// dcmqrscp (files indexed with dcmqridx; HostTable naming a storescp) — with --host/--port/--aec
// and with a node name looked up in the configured SQLite database.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { directorySink } from '../../src/cli/dimse.js';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { generateUid } from '../../src/dicom/uids.js';
import { createSqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { generateCorpus, simpleInstance, type Corpus, type CorpusFile } from '../helpers/corpus.js';
import { datasetOf } from '../dimse/helpers.js';
import { startRetrieveScp, type RetrieveScp } from '../dimse/retrieve-peers.js';
import { fileDataset, startStorescp, type RunningPeer } from '../dimse/scu-peers.js';
import { sendRetrieveFinal, startScriptedPeer } from '../dimse/scripted-peer.js';
import { CommandField } from '../../src/dimse/message/command.js';

const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2']);
/** DCMTK sends sequences of explicit length with undefined length: that file is not sent unchanged. */
const REENCODED_BY_DCMTK = new Set(['seqPrivate']);

let base: string;
let dbPath: string;
let corpus: Corpus;

function run(argv: string[]): Promise<{ code: number | void; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Partial<CliIo> = {
    stdout: (t) => void (out += t),
    stderr: (t) => void (err += t),
    env: {
      PACS_DATABASE__URL: `sqlite://${dbPath}`,
      PACS_FILESYSTEM_STORAGE__ROOT: path.join(base, 'blobs'),
      PACS_SERVER__AE_TITLE: 'CLITEST',
      PACS_SERVER__DIMSE_TIMEOUT_SECS: '10',
    },
    cwd: base,
    packageRoot: path.join(base, 'pkg'),
  };
  return runCli(argv, io).then((code) => ({ code, out, err }));
}

describe('pacsnode move|get', () => {
  let dest: RunningPeer;
  let qr: RetrieveScp;
  let held: CorpusFile[];
  let series: { studyUid: string; seriesUid: string; sopUids: string[] };
  const peer = (): string[] => ['--host', '127.0.0.1', '--port', String(qr.port), '--aec', qr.aeTitle];

  before(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'pacsnode-cli-retrieve-'));
    dbPath = path.join(base, 'pacs.db');
    corpus = await generateCorpus();
    held = corpus.files.filter((f) => NATIVE.has(f.transferSyntax));
    const studyUid = generateUid();
    const seriesUid = generateUid();
    const extra: { path: string; sopUid: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const x = simpleInstance({ studyUid, seriesUid, fill: i });
      const file = path.join(base, `s-${i}.dcm`);
      await writeFile(file, x.bytes);
      extra.push({ path: file, sopUid: x.sopUid });
    }
    series = { studyUid, seriesUid, sopUids: extra.map((e) => e.sopUid) };
    dest = await startStorescp({ aeTitle: 'MOVEDEST' });
    qr = await startRetrieveScp({
      files: [...held, ...extra],
      // CLITEST (our AE title, the default destination) is received by the same storescp.
      destinations: [
        { aeTitle: dest.aeTitle, port: dest.port },
        { aeTitle: 'CLITEST', port: dest.port },
      ],
    });
    const stores = createSqliteStores({ path: dbPath });
    await stores.migrate();
    await stores.nodes.upsert({ aeTitle: qr.aeTitle, host: '127.0.0.1', port: qr.port, description: null, allowStore: true, allowFind: true, allowRetrieve: true, moveDestination: true }, { at: new Date() });
    await stores.close();
  });
  after(async () => {
    await qr?.stop();
    await dest?.stop();
    await corpus?.cleanup();
    await rm(base, { recursive: true, force: true });
  });

  it('move --dest moves a study and prints a summary', async () => {
    const study = corpus.study('mueller').studyUid;
    const files = held.filter((f) => f.studyUid === study);
    const r = await run(['move', ...peer(), '--dest', dest.aeTitle, '--level', 'STUDY', '--study', study]);
    assert.equal(r.code, undefined, r.err);
    const n = files.length;
    assert.match(r.out, new RegExp(`^Moved ${n} of ${n} from QRSCP at 127\\.0\\.0\\.1:\\d+ to MOVEDEST: ${n} completed, 0 warnings, 0 failed \\(status 0x0000\\) in [\\d.]+ s\\n$`));
    assert.equal(r.err, '', 'no progress bar without a terminal');
    const written = await dest.files();
    for (const f of files) assert.ok(written.some((w) => w.endsWith(f.sopUid)), `${f.label} not received`);
  });

  it('move by node name, to our own AE title by default, at IMAGE level', async () => {
    const r = await run(['move', qr.aeTitle, '--level', 'IMAGE', '--study', series.studyUid, '--series', series.seriesUid, '--sop', ...series.sopUids.slice(0, 2)]);
    assert.equal(r.code, undefined, r.err);
    assert.match(r.out, /^Moved 2 of 2 from QRSCP at .* to CLITEST: 2 completed/);
    const written = await dest.files();
    for (const u of series.sopUids.slice(0, 2)) assert.ok(written.some((w) => w.endsWith(u)));
  });

  it('move to an unknown destination exits 1 with the status', async () => {
    const r = await run(['move', ...peer(), '--dest', 'NOWHERE', '--level', 'SERIES', '--study', series.studyUid, '--series', series.seriesUid]);
    assert.equal(r.code, 1);
    assert.match(r.err, /answered C-MOVE with status 0xa801 \(move destination unknown\)/);
  });

  it('a failure status still prints its counts and failed UIDs (A702: none could be sent), exit 1', async () => {
    const failed = ['1.2.826.0.1.3680043.9.7777.4.1.1.1', '1.2.826.0.1.3680043.9.7777.4.1.1.2'];
    const p = await startScriptedPeer({
      onMessage(contextId, command, _data, c) {
        if (command.commandField === CommandField.C_FIND_RQ) {
          // The C-GET's plan finds nothing: the default storage contexts are proposed.
          c.sendMessage(contextId, { commandField: CommandField.C_FIND_RSP, commandDataSetType: 0x0101, messageIdBeingRespondedTo: command.messageId as number, affectedSopClassUid: command.affectedSopClassUid as string, status: 0 });
          return;
        }
        if (command.commandField !== CommandField.C_MOVE_RQ && command.commandField !== CommandField.C_GET_RQ) return;
        sendRetrieveFinal(c, contextId, command, { status: 0xa702, completed: 0, failed: 2, failedUids: failed });
      },
    });
    try {
      const target = ['--host', '127.0.0.1', '--port', String(p.port), '--aec', 'FAILS'];
      const moved = await run(['move', ...target, '--dest', 'ELSEWHERE', '--study', '1.2.826.0.1.3680043.9.7777.4.1']);
      assert.equal(moved.code, 1);
      assert.match(moved.out, /^Moved 0 of 2 from FAILS at .* to ELSEWHERE: 0 completed, 0 warnings, 2 failed \(status 0xa702\)/);
      assert.match(moved.err, /failed: 1\.2\.826\.0\.1\.3680043\.9\.7777\.4\.1\.1\.1\nfailed: 1\.2\.826\.0\.1\.3680043\.9\.7777\.4\.1\.1\.2\n/);
      assert.match(moved.err, /answered C-MOVE with status 0xa702/);
      const got = await run(['get', ...target, '--study', '1.2.826.0.1.3680043.9.7777.4.1', '-o', 'failing-get']);
      assert.equal(got.code, 1);
      assert.match(got.out, /^Retrieved 0 of 2 from FAILS at .*: 0 completed, 0 warnings, 2 failed \(status 0xa702\)/);
      assert.match(got.err, /failed: 1\.2\.826\.0\.1\.3680043\.9\.7777\.4\.1\.1\.2\n/);
    } finally {
      await p.close();
    }
  });

  it('get --output writes Part-10 files whose data sets are those dcmqrscp holds', async () => {
    const study = corpus.study('mueller').studyUid;
    const files = held.filter((f) => f.studyUid === study);
    const out = path.join(base, 'out');
    const r = await run(['get', ...peer(), '--level', 'STUDY', '--study', study, '--output', 'out']);
    assert.equal(r.code, undefined, r.err);
    assert.match(r.out, new RegExp(`^Retrieved ${files.length} of ${files.length} from QRSCP at .* into ${out.replaceAll('/', '\\/')}: ${files.length} completed, 0 warnings, 0 failed \\(status 0x0000\\); [\\d.]+ MB in [\\d.]+ s\\n$`));
    assert.deepEqual((await readdir(out)).sort(), files.map((f) => `${f.sopUid}.dcm`).sort(), 'one file per instance, no leftovers');
    for (const f of files) {
      const bytes = await readFile(path.join(out, `${f.sopUid}.dcm`));
      assert.equal(bytes.toString('latin1', 128, 132), 'DICM');
      if (!REENCODED_BY_DCMTK.has(f.label)) assert.ok(datasetOf(bytes).equals(datasetOf(await readFile(qr.fileOf(f.sopUid)))), `${f.label}: data set differs`);
      else assert.ok((await fileDataset(path.join(out, `${f.sopUid}.dcm`))).length > 0);
    }
  });

  it('get by node name writes into ./pacsnode-get by default; a series at a time', async () => {
    const r = await run(['get', '--node', qr.aeTitle, '--level', 'SERIES', '--study', series.studyUid, '--series', series.seriesUid]);
    assert.equal(r.code, undefined, r.err);
    const files = (await readdir(path.join(base, 'pacsnode-get'))).sort();
    assert.deepEqual(files, series.sopUids.map((u) => `${u}.dcm`).sort());
  });

  it('refuses a request missing a key of its level before connecting', async () => {
    const noSeries = await run(['move', ...peer(), '--level', 'SERIES', '--study', series.studyUid]);
    assert.equal(noSeries.code, 1);
    assert.match(noSeries.err, /--series is required at level SERIES/);
    const noSop = await run(['get', ...peer(), '--level', 'IMAGE', '--study', series.studyUid, '--series', series.seriesUid]);
    assert.equal(noSop.code, 1);
    assert.match(noSop.err, /--sop is required at level IMAGE/);
    const badUid = await run(['get', ...peer(), '--study', '1..2']);
    assert.equal(badUid.code, 1);
    assert.match(badUid.err, /--study 1\.\.2: not a valid UID/);
    const noPatient = await run(['move', ...peer(), '--level', 'PATIENT']);
    assert.equal(noPatient.code, 1);
    assert.match(noPatient.err, /--patient-id is required at level PATIENT/);
  });

  it('the directory sink never writes outside its directory', async () => {
    const dir = await mkdtemp(path.join(base, 'sink-'));
    const sink = directorySink(dir);
    const r = await sink({ sopClassUid: '1.2', sopInstanceUid: '../../evil', transferSyntaxUid: '1.2.840.10008.1.2.1', sourceAe: 'X', part10: (async function* () {
      yield Buffer.from('x');
    })() });
    assert.deepEqual(r, { status: 0xc000, errorComment: 'invalid Affected SOP Instance UID' });
    assert.deepEqual(await readdir(dir), []);
  });
});
