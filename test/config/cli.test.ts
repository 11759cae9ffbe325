import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildProgram, EXIT_CONFIG, PACKAGE_ROOT, runCli, type CliIo } from '../../src/cli/index.js';
import { generateConfig } from '../../src/config/generate.js';

let base: string;
before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'pacsnode-cli-'));
});
after(async () => {
  await rm(base, { recursive: true, force: true });
});

function io(env: Record<string, string> = {}): { io: Partial<CliIo>; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { stdout: (t) => void (out += t), stderr: (t) => void (err += t), env, cwd: base, packageRoot: path.join(base, 'pkg') },
    out: () => out,
    err: () => err,
  };
}

describe('pacsnode CLI', () => {
  it('computes the package root from its own location', async () => {
    const pkg = JSON.parse(await readFile(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { name: string };
    assert.equal(pkg.name, 'pacsnode');
  });

  it('generate-config prints the profile on stdout', async () => {
    const t = io();
    assert.equal(await runCli(['generate-config', 'production'], t.io), undefined);
    assert.equal(t.out(), generateConfig('production'));
  });

  it('generate-config --output writes the file and refuses to overwrite without --force', async () => {
    const t = io();
    await runCli(['generate-config', 'standalone', '--output', 'out.toml'], t.io);
    assert.equal(await readFile(path.join(base, 'out.toml'), 'utf8'), generateConfig('standalone'));
    const again = io();
    assert.equal(await runCli(['generate-config', 'production', '--output', 'out.toml'], again.io), 1);
    assert.match(again.err(), /exists/);
    await runCli(['generate-config', 'production', '--output', 'out.toml', '--force'], io().io);
    assert.equal(await readFile(path.join(base, 'out.toml'), 'utf8'), generateConfig('production'));
  });

  it('names a mistyped command as unknown (serve, the default command, does not take it as an argument)', async () => {
    const t = io();
    assert.equal(await runCli(['migarte'], t.io), 1);
    assert.match(t.err(), /^pacsnode: unknown command "migarte" \(commands: serve, generate-config, .*migrate.*; see pacsnode --help\)\n$/);
  });

  it('rejects an unknown profile', async () => {
    const t = io();
    assert.equal(await runCli(['generate-config', 'cluster'], t.io), 1);
    assert.match(t.err(), /standalone, production/);
  });

  for (const argv of [[], ['serve'], ['migrate'], ['gc']]) {
    it(`exits 2 with the message on a config error (${argv.join(' ') || 'no arguments'})`, async () => {
      const t = io({ PACS_SERVER__HTTP_PROT: '1' });
      assert.equal(await runCli(argv, t.io), EXIT_CONFIG);
      assert.match(t.err(), /server\.http_prot: unknown key \(from environment variable PACS_SERVER__HTTP_PROT\)/);
    });
  }

  it('accepts --config before or after the subcommand', async () => {
    await writeFile(path.join(base, 'bad.toml'), '[server]\nhttp_prot = 1\n');
    for (const argv of [['--config', 'bad.toml'], ['--config', 'bad.toml', 'migrate'], ['gc', '--config', 'bad.toml'], ['serve', '-c', 'bad.toml']]) {
      const t = io();
      assert.equal(await runCli(argv, t.io), EXIT_CONFIG, argv.join(' '));
      assert.match(t.err(), /bad\.toml/);
    }
  });

  it('lets extra commands be registered on the program', async () => {
    let ran = false;
    const program = buildProgram(
      {
        io: { stdout: () => {}, stderr: () => {}, env: {}, cwd: base, packageRoot: base },
        loadConfig: () => assert.fail('not needed'),
        createLogger: () => assert.fail('not needed'),
        setExitCode: () => {},
      },
      [(p) => void p.command('echo <ae>').action(() => void (ran = true))],
    );
    await program.parseAsync(['echo', 'STORESCP'], { from: 'user' });
    assert.ok(ran);
  });
});
