// SPEC §8: patient names, IDs and birth dates never reach the logs — requests log paths (UIDs), not queries.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';

describe('logs carry no PHI', () => {
  let server: RunningServer;
  let dir: string;
  let logged = '';
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-phi-'));
    const config = loadConfig({
      env: { PACS_SERVER__HTTP_PORT: '0', PACS_SERVER__HTTP_HOST: '127.0.0.1', PACS_STORAGE__GC_INTERVAL_SECS: '0', PACS_LOGGING__LEVEL: 'debug' },
      cwd: dir,
      packageRoot: dir,
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logged += chunk.toString('utf8');
        cb();
      },
    });
    server = await startServer(config, { logger: pino({ level: 'debug' }, sink) });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('logs neither the stored patient data nor the query values', async () => {
    const sop = generateUid();
    const study = generateUid();
    const file = writePart10({
      dataset: [
        { tag: '00080016', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
        { tag: '00080018', vr: 'UI', value: sop },
        { tag: '00100010', vr: 'PN', value: 'Secretname^Zelda' },
        { tag: '00100020', vr: 'LO', value: 'PIDSECRET77' },
        { tag: '00100030', vr: 'DA', value: '19310205' },
        { tag: '0020000D', vr: 'UI', value: study },
        { tag: '0020000E', vr: 'UI', value: generateUid() },
      ],
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
      sopInstanceUid: sop,
    });
    const stored = await fetch(`${server.httpUrl}/wado/studies`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: file });
    assert.equal(stored.status, 200);
    const found = await fetch(`${server.httpUrl}/wado/studies?PatientName=Secretname*&PatientID=PIDSECRET77`);
    assert.equal(found.status, 200);
    assert.equal(((await found.json()) as unknown[]).length, 1);
    const bad = await fetch(`${server.httpUrl}/wado/studies?PatientBirthDate=1931020X`);
    assert.equal(bad.status, 400);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(logged.includes(study) || logged.includes('/wado/studies'), 'requests are logged');
    for (const phi of ['Secretname', 'Zelda', 'PIDSECRET77', '19310205', '1931020X']) {
      assert.ok(!logged.includes(phi), `the log contains ${phi}`);
    }
  });
  it('logs a path with a value where a UID belongs (or matching no route) without that value; UIDs still logged', async () => {
    const study = generateUid();
    const before = logged.length;
    for (const url of [
      '/wado/studies/PIDSECRET88',
      '/wado/studies/19310205/series',
      '/wado/studies/Secretname%5EZelda/metadata',
      `/wado/studies/${study}/series/PIDSECRET88/metadata`,
      '/api/patients/PIDSECRET88',
      '/wado/studies%3FPatientName=Secretname',
      '/PIDSECRET88',
    ]) {
      const res = await fetch(`${server.httpUrl}${url}`);
      // Digits alone are a valid one-component UID: that search is answered (empty), and not logged.
      assert.ok(res.status >= 400 || url.includes('19310205'), `${url}: ${res.status}`);
    }
    await new Promise((r) => setTimeout(r, 50));
    const lines = logged.slice(before);
    for (const phi of ['PIDSECRET88', 'Secretname', 'Zelda', '19310205']) assert.ok(!lines.includes(phi), `the log contains ${phi}:\n${lines}`);
    assert.ok(lines.includes(`"/wado/studies/${study}/series/:series/metadata"`), 'the UID of the path is logged, the bad parameter is not');
    assert.ok(lines.includes('"/api/…"') && lines.includes('"/…"'), 'a path matching no route: its first segment at most');
  });

  it('logs a client-written X-Forwarded-For (trust_proxy) only when it is an IP address', async () => {
    const { loggableIp } = await import('../../src/http/request-log.js');
    assert.equal(loggableIp('10.1.2.3'), '10.1.2.3');
    assert.equal(loggableIp('::1'), '::1');
    assert.equal(loggableIp('Secretname^Zelda 19310205'), 'invalid');
  });
  it('a client abandoning a STOW-RS upload is logged as such (info), not as an unhandled server error', async () => {
    const before = logged.length;
    const { connect } = await import('node:net');
    const url = new URL(server.httpUrl);
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(
          'POST /wado/studies HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/related; type="application/dicom"; boundary=XYZ\r\nContent-Length: 100000\r\n\r\n--XYZ\r\nContent-Type: application/dicom\r\n\r\n' + 'x'.repeat(500),
        );
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 200);
      });
      socket.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 300));
    const lines = logged.slice(before);
    assert.doesNotMatch(lines, /unhandled error/);
    assert.match(lines, /client closed the connection/);
  });
});
