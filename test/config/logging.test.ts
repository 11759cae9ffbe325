import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { parseLogLevel } from '../../src/config/schema.js';
import { componentLevel, componentLogger, createLogger } from '../../src/logging.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const text = () => chunks.join('');
  const lines = () =>
    text()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { stream, lines, text };
}

describe('parseLogLevel', () => {
  it('reads a default level and per-component overrides', () => {
    assert.deepEqual(parseLogLevel('info'), { level: 'info', components: {} });
    assert.deepEqual(parseLogLevel('warn, dimse=debug,http=ERROR'), { level: 'warn', components: { dimse: 'debug', http: 'error' } });
    assert.deepEqual(parseLogLevel('dimse=trace'), { level: 'info', components: { dimse: 'trace' } });
  });

  it('rejects unknown levels, empty entries and two defaults', () => {
    assert.throws(() => parseLogLevel('loud'), /unknown level/);
    assert.throws(() => parseLogLevel('info,,dimse=debug'), /empty entry/);
    assert.throws(() => parseLogLevel('info,debug'), /more than one default level/);
    assert.throws(() => parseLogLevel('info,=debug'), /invalid component name/);
  });
});

describe('createLogger', () => {
  it('never writes a second `level` key: a logged `level` field is renamed, the severity stays', () => {
    const out = capture();
    const root = createLogger({ level: 'info', format: 'json' }, { destination: out.stream });
    root.info({ level: 'study', studyUid: '1.2.3' }, 'removed');
    componentLogger(root, 'dimse').warn({ level: 'series' }, 'C-MOVE');
    const text = out.text().trim().split('\n');
    for (const line of text) assert.equal(line.match(/"level":/g)?.length, 1, line);
    assert.deepEqual(
      out.lines().map((l) => [l['level'], l['fieldLevel'], l['msg']]),
      [
        [30, 'study', 'removed'],
        [40, 'series', 'C-MOVE'],
      ],
    );
  });

  it('writes JSON at the default level and gives components their override', () => {
    const out = capture();
    const root = createLogger({ level: 'info,dimse=debug,http=error', format: 'json' }, { destination: out.stream });
    root.debug('hidden');
    root.info('shown');
    const dimse = componentLogger(root, 'dimse');
    dimse.debug('dimse debug');
    dimse.child({ association: 7 }).debug('nested dimse debug');
    root.child({ component: 'http' }).warn('hidden http warn');
    root.child({ component: 'archive' }).debug('hidden archive debug');
    assert.deepEqual(
      out.lines().map((l) => l.msg),
      ['shown', 'dimse debug', 'nested dimse debug'],
    );
    assert.equal(out.lines()[1]?.component, 'dimse');
    assert.equal(componentLevel(root, 'dimse'), 'debug');
    assert.equal(componentLevel(root, 'storage'), 'info');
  });

  it('redacts authorization headers, passwords and secret keys', () => {
    const out = capture();
    const root = createLogger({ level: 'info', format: 'json' }, { destination: out.stream });
    root.info({ req: { headers: { authorization: 'Bearer abc.def' } }, user: { password: 'pw1' }, storage: { secret_key: 'sk1' } }, 'x');
    assert.doesNotMatch(out.text(), /abc\.def|pw1|sk1/);
    assert.match(out.text(), /\[Redacted\]/);
  });

  it('writes human-readable lines with format = "pretty" when pino-pretty is installed', () => {
    const out = capture();
    const root = createLogger({ level: 'info', format: 'pretty' }, { destination: out.stream });
    root.info('pretty line');
    assert.match(out.text(), /INFO.*pretty line/);
    assert.throws(() => JSON.parse(out.text()));
  });
});
