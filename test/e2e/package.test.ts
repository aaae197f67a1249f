// What the npm package ships: the docs the README links to (docs/*.md and their pictures) and the LICENSE
// package.json names, beside the code. The package page showed broken links when docs/ was left out.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers.js';

describe('npm package contents', () => {
  it('ships LICENSE (MIT, as package.json says) and every file under docs/', () => {
    // --ignore-scripts: the listing only, without prepack's native rebuild.
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const files = new Set((JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
    assert.ok(files.has('LICENSE'), 'LICENSE');
    assert.match(fs.readFileSync(path.join(ROOT, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) \d{4} tcpkit authors\n/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).license, 'MIT');
    const docs = fs.readdirSync(path.join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' }).filter((f) => fs.statSync(path.join(ROOT, 'docs', f)).isFile());
    assert.ok(docs.length > 5);
    for (const doc of docs) assert.ok(files.has(`docs/${doc}`), `docs/${doc} is in the package`);
    assert.ok(files.has('README.md'));
  });
});
