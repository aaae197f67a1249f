// docs/benchmarks.md is generated whole by one `npm run bench` run (bench/run.js): every table stamped with that run's
// time and load, each goal once, and the hand-written reading (bench/reading.md) quoting no figure the tables lack.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const DOC = path.join(ROOT, 'docs', 'benchmarks.md');
const RESULTS = path.join(ROOT, 'docs', 'benchmarks', 'results.json');
const doc = fs.readFileSync(DOC, 'utf8');
const lines = doc.split('\n');
const isTableRow = (l: string) => l.startsWith('|');

/** The cells of every table row in the document, trimmed. */
const cells = lines.filter(isTableRow).flatMap((l) => l.split('|').map((c) => c.trim()));
/** Every number written in a table cell (commas removed): what prose may quote. */
const tableNumbers = new Set(cells.flatMap((c) => [...c.matchAll(/\d[\d,]*(?:\.\d+)?/g)].map((m) => m[0].replace(/,/g, ''))));

/**
 * A figure in prose: a number with a decimal point, a ratio (`3x`, `1.2×`), or a number with a unit of measure
 * (ms, s, MiB/s, /s, %). Whole numbers that name counts or sizes of the set-up ("4,000 bytes", "256 KiB") are not
 * figures of a run.
 */
const FIGURE = /\d[\d,]*\.\d+|\d[\d,]*\s?(?:x|×|ms\b|s\b|MiB\/s|\/s|%)/g;

/** The section of the document under `## title`, up to the next `## `. */
function section(title: string): string[] {
  const i = lines.indexOf(`## ${title}`);
  assert.ok(i >= 0, `docs/benchmarks.md has no "## ${title}" section`);
  const j = lines.findIndex((l, k) => k > i && l.startsWith('## '));
  return lines.slice(i + 1, j < 0 ? undefined : j);
}

describe('docs/benchmarks.md', () => {
  it('is exactly what bench/run.js renders from the one run saved in docs/benchmarks/results.json', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-benchdoc-'));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const out = path.join(dir, 'benchmarks.md');
    execFileSync(process.execPath, [path.join(ROOT, 'bench', 'run.js'), '--from', RESULTS, '--out', out], { stdio: 'pipe', timeout: 60_000 });
    assert.equal(doc, fs.readFileSync(out, 'utf8'), 'docs/benchmarks.md differs from its rendering: regenerate it (node bench/run.js --from docs/benchmarks/results.json)');
  });

  it('stamps every table with a time inside the one run the header names, and quotes no other run', () => {
    const header = /on (\d{4}-\d\d-\d\d \d\d:\d\d) UTC in ([\d.]+) minutes/.exec(doc);
    assert.ok(header, 'the header names the run: "on YYYY-MM-DD HH:MM UTC in N minutes"');
    const start = Date.parse(`${header[1].replace(' ', 'T')}:00Z`);
    const end = start + (Number(header[2]) + 1) * 60_000;
    assert.doesNotMatch(doc, /kept from|earlier run|\(run of /i, 'no figure kept from another run');
    const headings = lines.filter((l) => /^## \d\. /.test(l));
    assert.ok(headings.length > 0, 'at least one table');
    for (const h of headings) {
      const body = section(h.slice(3)).join('\n');
      const stamps = [...body.matchAll(/Measured (\d{4}-\d\d-\d\d \d\d:\d\d) UTC/g)];
      assert.ok(stamps.length > 0, `${h}: stamped "Measured ... UTC"`);
      assert.match(body, /load average[^.]*\d+\.\d\d \d+\.\d\d \d+\.\d\d/, `${h}: stamped with the load average`);
      for (const s of stamps) {
        const at = Date.parse(`${s[1].replace(' ', 'T')}:00Z`);
        assert.ok(at >= start && at <= end, `${h}: measured ${s[1]} UTC, outside the run of ${header[1]} UTC (${header[2]} minutes)`);
      }
    }
  });

  it('lists each goal once', () => {
    const goals = section('Goals')
      .filter(isTableRow)
      .slice(2)
      .map((l) => l.split('|')[1].trim());
    assert.ok(goals.length > 0);
    // The same goal twice with two thresholds ("event: CPU ≤ 1.1x" and "event: CPU ... within 1.5x") counts as twice:
    // a goal is its subject (up to the first colon) and the first word of what it asks.
    const seen = new Map<string, string>();
    for (const g of goals) {
      const m = /^(.*?): (\S+)/.exec(g.replace(/\s*\(earlier run\)/g, ''));
      const key = m ? `${m[1]}: ${m[2]}` : g;
      assert.ok(!seen.has(key), `goal listed twice: "${seen.get(key)}" and "${g}"`);
      seen.set(key, g);
    }
  });

  it('quotes in its reading only figures that appear in its tables', () => {
    const prose = section('Reading').filter((l) => !isTableRow(l));
    const missing: string[] = [];
    for (const l of prose) {
      for (const m of l.matchAll(FIGURE)) {
        const number = m[0].match(/\d[\d,]*(?:\.\d+)?/)![0].replace(/,/g, '');
        if (!tableNumbers.has(number)) missing.push(`"${m[0]}" in: ${l.trim()}`);
      }
    }
    assert.deepEqual(missing, [], 'figures quoted in the reading but in no table');
  });
});

describe('bench/run.js options', () => {
  it('--help prints the usage (exit 0); an unknown option is one line and exit 100, not a stack trace', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bench', 'run.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
    const help = run('--help');
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /--only cpu-per-conn/);
    const bad = run('--nope');
    assert.equal(bad.status, 100);
    assert.match(bad.stderr, /^bench\/run\.js: Unknown option '--nope'\n/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  });
});
