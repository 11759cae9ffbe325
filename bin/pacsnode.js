#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=100
// Entry point of the `pacsnode` command. Runs the compiled CLI (npm start builds it first).
// The Node flags of the shebang are those of `npm start` and the Dockerfile's CMD (ADR 0018).
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
