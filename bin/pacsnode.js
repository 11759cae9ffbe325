#!/usr/bin/env node
// Entry point of the `pacsnode` command. Runs the compiled CLI (npm start builds it first).
import { runCli } from '../dist/cli/index.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`pacsnode: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
