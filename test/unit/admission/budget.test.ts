// ServiceBudget (src/admission/budget.ts): one service's limits shared by all its Servers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServiceBudget } from '../../../src/admission/budget.js';
import { InvalidOptionError } from '../../../src/errors.js';

function member() {
  const m = { paused: false, pause: () => void (m.paused = true), resume: () => void (m.paused = false) };
  return m;
}

describe('ServiceBudget', () => {
  it('at maxConns every member pauses; below it every member resumes', () => {
    const b = new ServiceBudget({ maxConns: 2 });
    const [x, y] = [member(), member()];
    b.join(x);
    b.join(y);
    assert.equal(b.opened(), 1);
    assert.deepEqual([x.paused, y.paused], [false, false]);
    assert.equal(b.opened(), 2);
    assert.deepEqual([x.paused, y.paused], [true, true]);
    // A member joining at the limit starts paused.
    const z = member();
    b.join(z);
    assert.equal(z.paused, true);
    assert.equal(b.closed(), 1);
    assert.deepEqual([x.paused, y.paused, z.paused], [false, false, false]);
    b.leave(z);
    b.opened();
    assert.equal(z.paused, false);
  });

  it('per-source places are shared', () => {
    const b = new ServiceBudget({ maxConns: 10, perSource: 1 });
    assert.equal(b.sources.take('127.0.0.1').ok, true);
    assert.deepEqual(b.sources.take('::ffff:127.0.0.1'), { ok: false, reason: 'per-source' });
  });

  it('checks its limits through the option table', () => {
    assert.throws(() => new ServiceBudget({ maxConns: 0 }), (e: unknown) => e instanceof InvalidOptionError && e.option === 'maxConns');
    assert.throws(() => new ServiceBudget({ perSource: -1 }), { message: 'perSource: must be an integer from 0 to 1000000, got -1' });
    assert.equal(new ServiceBudget().maxConns, 40);
  });
});
