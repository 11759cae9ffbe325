// POST /api/nodes/{ae}/find holds every match until it answers, so `limit` (a count) is not
// enough: a node answering with identifiers of a megabyte each would fill the heap long before
// 1,000 matches. Past FIND_RESPONSE_MAX_BYTES of DICOM JSON the route answers 502
// DIMSE_FIND_FAILED / RESPONSE_TOO_LARGE and the C-FIND is cancelled. A client that goes away
// before the answer ends the C-FIND too.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { createJobService, type JobService } from '../../src/archive/jobs.js';
import { createNodeService } from '../../src/archive/nodes.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { IMPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { encodeDataset } from '../../src/dicom/writer.js';
import { CommandField } from '../../src/dimse/message/command.js';
import { createScu } from '../../src/dimse/scu/index.js';
import { FIND_RESPONSE_MAX_BYTES, registerNodeRoutes } from '../../src/http/api/nodes.js';
import { errorHandler, notFoundHandler } from '../../src/http/errors.js';
import { createSqliteStores, type SqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { startDimse, type TestDimse } from './helpers.js';
import { acceptAll, startScriptedPeer, type ScriptedPeer } from './scripted-peer.js';

const CTX = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };
const MATCH_TEXT_BYTES = 1024 * 1024;

describe("POST /api/nodes/{ae}/find: a byte budget, and the client's disconnect", () => {
  let peer: ScriptedPeer;
  let trickle: ScriptedPeer;
  let sent = 0;
  let cancelled = false;
  let source: TestDimse;
  let stores: SqliteStores;
  let jobs: JobService;
  let app: FastifyInstance;

  before(async () => {
    // Answers a C-FIND with pending matches of ~1 MiB each (a 1 MiB StudyDescription), 100 of them,
    // unless cancelled first.
    const match = encodeDataset(
      [
        { tag: '00080052', vr: 'CS', value: 'STUDY' },
        { tag: '00081030', vr: 'LO', value: 'x'.repeat(MATCH_TEXT_BYTES) },
        { tag: '0020000D', vr: 'UI', value: '1.2.3' },
      ],
      { explicitVr: false, littleEndian: true },
    );
    peer = await startScriptedPeer({
      onMessage(contextId, command, _data, c) {
        if (command.commandField === CommandField.C_CANCEL_RQ) {
          cancelled = true;
          return;
        }
        if (command.commandField !== CommandField.C_FIND_RQ) return;
        const respond = (status: number, dataSet?: Buffer): void =>
          c.sendMessage(contextId, { commandField: CommandField.C_FIND_RSP, commandDataSetType: dataSet ? 0x0000 : 0x0101, messageIdBeingRespondedTo: command.messageId as number, affectedSopClassUid: command.affectedSopClassUid as string, status }, dataSet);
        const next = (): void => {
          if (cancelled || c.socket.destroyed) return respond(0xfe00);
          if (sent === 100) return respond(0x0000);
          sent++;
          respond(0xff00, match);
          setImmediate(next);
        };
        next();
      },
      // Implicit VR LE on the Q/R context: a 1 MiB LO needs the 4-byte length of Implicit VR
      onRequest(rq) {
        const ac = acceptAll(rq);
        return { ...ac, presentationContexts: ac.presentationContexts.map((pc) => ({ ...pc, transferSyntax: IMPLICIT_VR_LE })) };
      },
    });
    source = await startDimse();
    stores = createSqliteStores({ path: ':memory:' });
    await stores.migrate();
    const nodes = createNodeService({ store: stores.nodes });
    jobs = createJobService({ store: stores.jobs, progressIntervalMs: 0 });
    await nodes.upsert(CTX, { aeTitle: 'BIGFIND', host: '127.0.0.1', port: peer.port });
    // One small match every 100 ms, never a final response: only the client can end it.
    trickle = await startScriptedPeer({
      onMessage(contextId, command, _data, c) {
        if (command.commandField !== CommandField.C_FIND_RQ) return;
        const small = encodeDataset([{ tag: '0020000D', vr: 'UI', value: '1.2.3' }], { explicitVr: true, littleEndian: true });
        const timer = setInterval(() => {
          if (c.socket.destroyed) return clearInterval(timer);
          c.sendMessage(contextId, { commandField: CommandField.C_FIND_RSP, commandDataSetType: 0x0000, messageIdBeingRespondedTo: command.messageId as number, affectedSopClassUid: command.affectedSopClassUid as string, status: 0xff00 }, small);
        }, 100);
        c.socket.once('close', () => clearInterval(timer));
      },
    });
    await nodes.upsert(CTX, { aeTitle: 'TRICKLE', host: '127.0.0.1', port: trickle.port });
    app = Fastify();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    app.setErrorHandler(errorHandler);
    app.setNotFoundHandler(notFoundHandler);
    app.decorateRequest('principal', null);
    registerNodeRoutes(app, { nodes, jobs, scu: createScu({ callingAe: 'PACSNODE', timeoutSecs: 5 }), archive: source.archive });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await jobs?.close();
    await stores?.close();
    await source?.close();
    await peer?.close();
    await trickle?.close();
  });

  it('answers 502 RESPONSE_TOO_LARGE past the budget and cancels the C-FIND', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/nodes/BIGFIND/find', payload: { level: 'STUDY', keys: {}, includefield: ['StudyDescription'] } });
    assert.equal(res.statusCode, 502, res.body.slice(0, 300));
    const body = res.json() as { error: { code: string; details: Record<string, unknown> } };
    assert.equal(body.error.code, 'DIMSE_FIND_FAILED');
    assert.equal(body.error.details['reason'], 'RESPONSE_TOO_LARGE');
    const budgetMatches = Math.floor(FIND_RESPONSE_MAX_BYTES / MATCH_TEXT_BYTES);
    assert.ok(typeof body.error.details['matches'] === 'number' && body.error.details['matches'] <= budgetMatches, JSON.stringify(body.error.details));
    for (let i = 0; i < 100 && !cancelled; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(cancelled, 'C-CANCEL sent');
    assert.ok(sent < 100, `the node sent ${sent} matches`);
  });

  it('a client that disconnects ends the C-FIND', async () => {
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const req = request(`${address}/api/nodes/TRICKLE/find`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ level: 'STUDY', keys: {} }));
    for (let i = 0; i < 100 && trickle.connections.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    const conn = trickle.connections[0];
    assert.ok(conn, 'the C-FIND association was opened');
    assert.ok(!conn.socket.destroyed);
    req.destroy();
    for (let i = 0; i < 100 && !conn.socket.destroyed; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(conn.socket.destroyed, 'the association ended when the client went away');
  });
});
