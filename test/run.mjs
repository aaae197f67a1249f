#!/usr/bin/env node
// Runs every test file (test/unit/**, test/e2e/**, and any not yet moved) one file at a time, TypeScript through tsx.
// Usage: node test/run.mjs [substring ...]   (only files whose path contains one of the substrings)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.dirname(new URL(import.meta.url).pathname);
const walk = (d) =>
  fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === 'fixtures' ? [] : walk(path.join(d, e.name))) : [path.join(d, e.name)]));
const wanted = process.argv.slice(2);
const files = walk(root)
  .filter((f) => /\.test\.(ts|js)$/.test(f))
  .map((f) => path.relative(process.cwd(), f))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.includes(w)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${wanted.join(' ')}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=600000', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
