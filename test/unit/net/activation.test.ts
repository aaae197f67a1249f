// Socket activation (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES): which inherited sockets are ours, and which one to serve on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { listenFds, chooseSocket } from '../../../src/net/activation.js';

describe('listenFds (sd_listen_fds semantics)', () => {
  it('takes the sockets meant for this pid, names them, and always unsets the variables', () => {
    const env = { LISTEN_PID: String(process.pid), LISTEN_FDS: '0', LISTEN_FDNAMES: '', OTHER: 'x' };
    assert.deepEqual(listenFds(env), []);
    assert.deepEqual(env, { OTHER: 'x' });
    const other = { LISTEN_PID: String(process.pid + 1), LISTEN_FDS: '1' };
    assert.deepEqual(listenFds(other), [], 'meant for another process');
    assert.deepEqual(other, {});
    assert.throws(() => listenFds({ LISTEN_PID: String(process.pid), LISTEN_FDS: 'two' }), { code: 'TCPKIT_INVALID_OPTION', message: /LISTEN_FDS: must be a count/ });
  });

  it('chooses one socket by name, or the only one', () => {
    const two = [
      { fd: 3, name: 'echo' },
      { fd: 4, name: 'admin' },
    ];
    assert.equal(chooseSocket(two, 'admin')?.fd, 4);
    assert.throws(() => chooseSocket(two), /socket activation passed 2 sockets \(echo \(fd 3\), admin \(fd 4\)\); choose one by name/);
    assert.throws(() => chooseSocket(two, 'web'), /no socket named "web"/);
    assert.equal(chooseSocket([{ fd: 3, name: 'unknown' }])?.fd, 3);
    assert.equal(chooseSocket([]), undefined);
  });
});

