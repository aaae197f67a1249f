#!/usr/bin/env node
// The tcpkit command. The work is in dist/cli (built from src/cli by `npm ci`).
import { main } from '../dist/cli/main.js';

const code = await main(process.argv.slice(2));
// Let stdout/stderr drain before exiting; an exit code alone does not wait for pipes.
process.exitCode = code;
if (code !== 0 || process.argv[2] === 'serve') process.exit(code);
