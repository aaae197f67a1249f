// The admin state directory (issue 15 item 2): created mode 0700 or used only when it is
// this user's own, not a link, and writable by no one else; the state file is written
// through an exclusively created temporary file and never through a planted link.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ensureStateDir, removeState, stateDir, writeState } from '../../../src/status/discovery.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-unit-state-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;
const record = { pid: process.pid, admin: 'http://127.0.0.1:1', listen: '127.0.0.1:2', startedAt: 0 };

describe('state directory', () => {
  it('is created mode 0700 when missing', () => {
    const dir = path.join(root, 'fresh');
    ensureStateDir(dir);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  });

  it('a symbolic link is refused, even to a directory of ours', () => {
    const real = path.join(root, 'real');
    fs.mkdirSync(real, { mode: 0o700 });
    const link = path.join(root, 'link');
    fs.symlinkSync(real, link);
    assert.throws(() => writeState(record, link), { code: 'TCPKIT_STATE_DIR', message: /admin state directory .*link: is a symbolic link; refusing/ });
    assert.deepEqual(fs.readdirSync(real), []);
  });

  it('a group- or world-writable directory is refused with its mode', () => {
    const dir = path.join(root, 'open');
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o777);
    assert.throws(() => ensureStateDir(dir), { code: 'TCPKIT_STATE_DIR', message: /is writable by group or others \(mode 777\)/ });
  });

  it('a directory owned by another user is refused', { skip: isRoot ? false : 'needs root (chown)' }, () => {
    const dir = path.join(root, 'foreign');
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.chownSync(dir, 65534, 65534);
    assert.throws(() => ensureStateDir(dir), { message: /is owned by uid 65534, not by this server's uid 0/ });
  });

  it('a link planted at the state file name is replaced, its target untouched', () => {
    const dir = path.join(root, 'planted');
    ensureStateDir(dir);
    const victim = path.join(root, 'victim');
    fs.writeFileSync(victim, 'precious');
    fs.symlinkSync(victim, path.join(dir, `${process.pid}.json`));
    const file = writeState(record, dir);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious');
    assert.equal(fs.lstatSync(file).isSymbolicLink(), false);
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), record);
    assert.deepEqual(fs.readdirSync(dir), [`${process.pid}.json`], 'no temporary file left');
    removeState(file);
    assert.equal(fs.existsSync(file), false);
  });

  it('removal never throws (missing file, or a directory it cannot remove)', () => {
    removeState(path.join(root, 'nothing-here.json'));
    removeState('/proc/1/nonexistent/x.json');
  });

  it('XDG_RUNTIME_DIR is used only when it belongs to the user (a server that dropped --user keeps root\'s)', () => {
    const mine = path.join(root, 'xdg');
    fs.mkdirSync(mine, { mode: 0o700 });
    const uid = process.geteuid!();
    assert.equal(stateDir({ XDG_RUNTIME_DIR: mine }, uid), path.join(mine, 'tcpkit'));
    assert.equal(stateDir({ XDG_RUNTIME_DIR: mine }, uid + 1), path.join(os.tmpdir(), `tcpkit-${uid + 1}`));
  });
});
