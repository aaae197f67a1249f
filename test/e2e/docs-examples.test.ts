// Every shell example in README.md and docs/*.md marked runnable runs here and exits 0.
//
// The marker: an HTML comment on the line right before a ```sh (or ```bash) block,
//
//     <!-- runnable -->              or   <!-- runnable timeout=30 -->   (seconds; default 60)
//
// Mark a block when it runs on any Linux machine with this checkout built: no root, no network beyond loopback,
// no fixed port (use --port 0 with --print-port), finished on its own within its timeout. It runs with
// `bash -euo pipefail` in a fresh empty directory (its working directory: write files there), with `tcpkit` on
// PATH as a shim for `node bin/tcpkit.js` of this checkout. Whatever it leaves running is killed (its process group).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, ROOT } from '../helpers.js';

const MARKER = /^<!--\s*runnable(?:\s+timeout=(\d+))?\s*-->\s*$/;
const DEFAULT_TIMEOUT_S = 60;

interface Example {
  doc: string;
  line: number;
  script: string;
  timeoutS: number;
}

/** The runnable blocks of one document; a marker not followed by a sh block is an error, not skipped. */
function examples(doc: string): Example[] {
  const lines = fs.readFileSync(path.join(ROOT, doc), 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]);
    if (!m) continue;
    const fence = lines[i + 1] ?? '';
    assert.match(fence, /^```(sh|bash)\s*$/, `${doc}:${i + 1}: a runnable marker must be followed by a \`\`\`sh block`);
    const end = lines.findIndex((l, k) => k > i + 1 && /^```\s*$/.test(l));
    assert.ok(end > 0, `${doc}:${i + 2}: the block never closes`);
    out.push({ doc, line: i + 2, script: lines.slice(i + 2, end).join('\n'), timeoutS: m[1] ? Number(m[1]) : DEFAULT_TIMEOUT_S });
    i = end;
  }
  return out;
}

const DOCS = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const ALL = DOCS.flatMap(examples);

const shimDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-shim-'));
fs.writeFileSync(path.join(shimDir, 'tcpkit'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
after(() => fs.rmSync(shimDir, { recursive: true, force: true }));

/** Run one block; resolves its exit code (or signal) and output. */
function runBlock(ex: Example): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string; timedOut: boolean }> {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-doc-'));
  return new Promise((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', ex.script], {
      cwd,
      env: { ...process.env, PATH: `${shimDir}:${process.env.PATH ?? '/usr/bin:/bin'}` },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so that what it started in the background can be killed with it
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // the group is gone already
      }
    };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGKILL');
    }, ex.timeoutS * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      killGroup('SIGKILL');
      fs.rmSync(cwd, { recursive: true, force: true });
      resolve({ code, signal, output, timedOut });
    });
  });
}

describe('runnable shell examples in the docs', () => {
  it('there are some (the marker is found)', () => {
    assert.ok(ALL.length >= 3, `only ${ALL.length} runnable blocks found`);
  });
  for (const ex of ALL) {
    it(`${ex.doc}:${ex.line}`, async () => {
      const r = await runBlock(ex);
      assert.ok(!r.timedOut, `${ex.doc}:${ex.line}: still running after ${ex.timeoutS} s\n${r.output}`);
      assert.equal(r.code, 0, `${ex.doc}:${ex.line}: exit ${r.code ?? r.signal}\n--- script\n${ex.script}\n--- output\n${r.output}`);
    });
  }
});
