// executableBy (issue 15 item 10): whether the user a server drops to may run a program,
// judged before the drop from the modes and owners of the file and every directory above it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { executableBy } from '../../../src/services/exec-options.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-unit-priv-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
fs.chmodSync(root, 0o755);
const NOBODY = { uid: 65534, gid: 65534 };

function program(name: string, mode: number, dir = root): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, '#!/bin/sh\n', { mode });
  fs.chmodSync(file, mode);
  return file;
}

describe('executableBy', () => {
  it('others need the others execute bit', () => {
    assert.equal(executableBy(program('all.sh', 0o755), NOBODY), undefined);
    assert.match(executableBy(program('owner.sh', 0o700), NOBODY) ?? '', /uid 65534 gid 65534 may not execute .*owner\.sh \(mode 700, owner \d+:\d+\)/);
  });

  it('the owner is judged by the owner bits only, the group by the group bits', { skip: process.getuid?.() === 0 ? false : 'needs root (chown)' }, () => {
    // As the kernel does: the owner gets the owner bits, even when others may execute.
    const mine = program('mine.sh', 0o075);
    fs.chownSync(mine, NOBODY.uid, 0);
    assert.match(executableBy(mine, NOBODY) ?? '', /may not execute/);
    const group = program('group.sh', 0o750);
    fs.chownSync(group, 0, NOBODY.gid);
    assert.equal(executableBy(group, NOBODY), undefined);
  });

  it('a directory the user cannot search hides the program', () => {
    const dir = path.join(root, 'private');
    fs.mkdirSync(dir, { mode: 0o700 });
    const file = program('inside.sh', 0o755, dir);
    assert.match(executableBy(file, NOBODY) ?? '', /cannot search .*private/);
  });

  it('root needs one execute bit; a directory or a missing file is refused', () => {
    assert.equal(executableBy(program('x.sh', 0o100), { uid: 0, gid: 0 }), undefined);
    assert.match(executableBy(program('nox.sh', 0o644), { uid: 0, gid: 0 }) ?? '', /may not execute/);
    assert.match(executableBy(root, NOBODY) ?? '', /is not a regular file/);
    assert.match(executableBy(path.join(root, 'missing'), NOBODY) ?? '', /ENOENT/);
  });
});
