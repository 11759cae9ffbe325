// The HTTP error handler: a client that went away mid-body is not a server error, but a server-side
// error that happens to carry ECONNRESET (a database connection reset) while the client waits is.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { errorHandler } from '../../src/http/errors.js';

describe('errorHandler', () => {
  it('answers 500 INTERNAL to an ECONNRESET from our own side (e.g. a database reset) while the client is connected', async () => {
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    app.get('/boom', async () => {
      throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
    });
    const res = await app.inject({ method: 'GET', url: '/boom' });
    assert.equal(res.statusCode, 500);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'INTERNAL');
    await app.close();
  });
});
