// The `pacsnode` command (bin/pacsnode.js runs the compiled copy of this file).
//   pacsnode [serve] [--config FILE]                      start the server (the default command)
//   pacsnode generate-config standalone|production [--output FILE] [--force]
//   pacsnode migrate [--config FILE]                      apply database migrations
//   pacsnode gc [--config FILE]                           delete unreferenced blobs older than gc_grace_secs
//   pacsnode echo|store|find|move|get ...                 DIMSE SCU (cli/dimse.ts)
// Exit codes: 0 ok, 1 failure, 2 invalid configuration.
// This is one of the three places allowed to read process.env (ARCHITECTURE rule 9): it is read
// here once and handed to loadConfig.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, Command, CommanderError } from 'commander';
import { generateConfig, PROFILE_NAMES, type ProfileName } from '../config/generate.js';
import { ConfigError, loadConfig, redactConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../logging.js';
import { registerDimseCommands } from './dimse.js';

import { EXIT_CONFIG, EXIT_FAILURE } from './exit-codes.js';
export { EXIT_CONFIG, EXIT_FAILURE, EXIT_OK } from './exit-codes.js';

/** Everything the CLI takes from the process; tests pass their own. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly packageRoot: string;
  /** stderr is a terminal (progress bars are drawn only then). */
  readonly stderrIsTTY?: boolean;
  /**
   * Whoever read stdout has gone (`pacsnode find … | head`: EPIPE): a command producing output
   * stops, and ends its DIMSE operation properly (C-CANCEL, A-RELEASE), instead of going on.
   */
  readonly stdoutClosed?: () => boolean;
}

/** What a command needs: the process I/O, the config for `--config`, a logger for a config. */
export interface CliContext {
  readonly io: CliIo;
  loadConfig(configPath: string | undefined): Config;
  createLogger(config: Config): Logger;
  /** Sets the process exit code the command ends with (default 0). */
  setExitCode(code: number): void;
}

/**
 * Extension point: a function that adds commands to the program. DIMSE SCU commands (echo,
 * store, find, move, get against registered nodes) and create-admin plug in here; add the
 * registrar to EXTRA_COMMANDS.
 */
export type CommandRegistrar = (program: Command, ctx: CliContext) => void;

export const EXTRA_COMMANDS: readonly CommandRegistrar[] = [registerDimseCommands];

/** dist/cli/index.js and src/cli/index.ts are both two levels below the package root. */
export const PACKAGE_ROOT = path.resolve(fileURLToPath(new URL('../../', import.meta.url)));

let stdoutGone = false;
let stdoutWatched = false;

/**
 * A reader that closed the pipe (EPIPE) is remembered, not thrown: without a listener the 'error'
 * event ended the process with a stack trace, mid C-FIND (the peer saw its connection reset).
 */
function watchStdout(): void {
  if (stdoutWatched) return;
  stdoutWatched = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') {
      stdoutGone = true;
      return;
    }
    throw err;
  });
}

function processIo(): CliIo {
  watchStdout();
  return {
    stdout: (t) => void (stdoutGone || process.stdout.write(t)),
    stdoutClosed: () => stdoutGone,
    stderr: (t) => void process.stderr.write(t),
    env: process.env,
    cwd: process.cwd(),
    packageRoot: PACKAGE_ROOT,
    stderrIsTTY: process.stderr.isTTY,
  };
}

export async function runCli(argv: string[], io: Partial<CliIo> = {}): Promise<number | void> {
  const fullIo: CliIo = { ...processIo(), ...io };
  let exitCode: number | undefined;
  const ctx: CliContext = {
    io: fullIo,
    loadConfig: (configPath) =>
      loadConfig({
        ...(configPath === undefined ? {} : { argvConfigPath: configPath }),
        env: fullIo.env,
        cwd: fullIo.cwd,
        packageRoot: fullIo.packageRoot,
      }),
    createLogger: (config) => createLogger(config.logging),
    setExitCode: (code) => {
      exitCode = code;
    },
  };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode; // commander already printed it
    if (err instanceof ConfigError) {
      fullIo.stderr(`pacsnode: ${err.message}\n`);
      return EXIT_CONFIG;
    }
    fullIo.stderr(`pacsnode: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  }
}

export function buildProgram(ctx: CliContext, registrars: readonly CommandRegistrar[] = EXTRA_COMMANDS): Command {
  const { io } = ctx;
  const program = new Command('pacsnode')
    .description('pacsnode: a DICOM archive (DICOMweb, DIMSE, REST). NOT FOR CLINICAL USE.')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run pacsnode --help for usage)');
  const version = packageVersion(io.packageRoot);
  if (version !== undefined) program.version(version);

  // `--config` is accepted before or after the subcommand; PACS_CONFIG is its environment twin.
  const configOption = (cmd: Command): Command =>
    cmd.option('-c, --config <file>', 'config file; replaces both config.toml layers (or PACS_CONFIG=FILE)');
  const configPath = (cmd: Command): string | undefined => {
    const own = cmd.opts<{ config?: string }>().config;
    return own ?? program.opts<{ config?: string }>().config;
  };
  configOption(program);

  configOption(
    program
      .command('serve', { isDefault: true })
      .description('start the HTTP and DIMSE servers (the default command)')
      // As the default command, serve receives any word that is no command: a mistyped one.
      .argument('[unknown...]')
      .exitOverride(),
  ).action(async (unknown: string[], _opts: unknown, cmd: Command) => {
    const [word] = unknown;
    if (word !== undefined) {
      const known = program.commands.map((c) => c.name()).filter((n) => n !== 'help');
      throw new Error(`unknown command ${JSON.stringify(word)} (commands: ${known.join(', ')}; see pacsnode --help)`);
    }
    const config = ctx.loadConfig(configPath(cmd));
    const logger = ctx.createLogger(config);
    logger.debug({ config: redactConfig(config) }, 'configuration loaded');
    const { startServer } = await import('../main.js');
    // The process stays up on the open listeners; main.ts closes them on SIGTERM/SIGINT.
    await startServer(config, { logger, handleSignals: true });
  });

  program
    .command('generate-config')
    .description('print a fully commented config file that loads back unchanged')
    .addArgument(new Argument('<profile>', 'standalone (SQLite + files) or production (PostgreSQL + S3)').choices(PROFILE_NAMES))
    .option('-o, --output <file>', 'write to FILE instead of stdout')
    .option('-f, --force', 'overwrite FILE if it exists')
    .exitOverride()
    .action((profile: ProfileName, opts: { output?: string; force?: boolean }) => {
      const text = generateConfig(profile);
      if (opts.output === undefined) {
        io.stdout(text);
        return;
      }
      const file = path.resolve(io.cwd, opts.output);
      try {
        writeFileSync(file, text, { flag: opts.force === true ? 'w' : 'wx' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        io.stderr(code === 'EEXIST' ? `pacsnode: ${file} exists (use --force to overwrite)\n` : `pacsnode: cannot write ${file}: ${(err as Error).message}\n`);
        ctx.setExitCode(EXIT_FAILURE);
        return;
      }
      io.stdout(`Wrote ${file}\n`);
    });

  configOption(
    program.command('migrate').description('apply pending database migrations').exitOverride(),
  ).action(async (_opts: unknown, cmd: Command) => {
    const config = ctx.loadConfig(configPath(cmd));
    const { runMigrate } = await import('../main.js');
    await runMigrate(config, { logger: ctx.createLogger(config) });
  });

  configOption(
    program.command('gc').description('delete unreferenced blobs older than storage.gc_grace_secs').exitOverride(),
  ).action(async (_opts: unknown, cmd: Command) => {
    const config = ctx.loadConfig(configPath(cmd));
    const { runGc } = await import('../main.js');
    await runGc(config, { logger: ctx.createLogger(config) });
  });

  for (const register of registrars) register(program, ctx);
  return program;
}

function packageVersion(packageRoot: string): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : undefined;
  } catch {
    return undefined;
  }
}
