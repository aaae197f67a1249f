// The pools (prefork, threads) with no message per connection between a worker and the server when no
// configured limit needs one: counted over real IPC (the pool's own message counters, read from /status);
// --max-conns and --per-source still exact across workers; /status and /metrics still see every connection
// and the per-worker counts (batched: within seconds); --workers defaults to the CPU count; a worker killed
// in a burst loses no queued connection, and every client it dropped is in the log; a worker that exits at once
// leaves no connection unaccounted for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { eventually, ROOT, sleep, startServer } from '../helpers.js';
import { adminOf, echoes, hold, lines, startLogged, status, type Held } from '../pool-helpers.js';

const CONNECTIONS = 1000;
const LANES = 8;

for (const model of ['prefork', 'threads'] as const) {
  test(`${model}: ${CONNECTIONS} connections, no message per connection; log, /status and /metrics see each one`, async () => {
    const server = await startLogged(['--model', model, '--workers', '2', '--admin', '127.0.0.1:0']);
    try {
      const admin = await adminOf(server);
      const before = (await status(admin)).server.models.messages;
      assert.equal(await echoes(server.port, CONNECTIONS, LANES), CONNECTIONS);
      // Batched: the server's view catches up within a batch's delay; seconds of slack.
      const snap = await eventually(
        async () => {
          const s = await status(admin);
          return s.server.ended === CONNECTIONS ? s : undefined;
        },
        { timeoutMs: 10_000, message: `${CONNECTIONS} ended in /status` },
      );
      assert.equal(snap.server.accepted, CONNECTIONS);
      assert.equal(snap.server.active, 0);
      const workers = snap.server.models.processes;
      assert.equal(workers.length, 2);
      assert.equal(workers.reduce((n, p) => n + p.served, 0), CONNECTIONS, 'per-worker counts add up');
      const { fromWorkers, toWorkers } = snap.server.models.messages;
      const from = fromWorkers - before.fromWorkers;
      const to = toWorkers - before.toWorkers;
      // The round trip took three per connection (accepted, admit, closed). Batches: one per 64 events or 50 ms.
      assert.ok(from < CONNECTIONS / 2, `${from} messages from workers for ${CONNECTIONS} connections`);
      assert.ok(to <= 8, `${to} messages to workers for ${CONNECTIONS} connections (blocks of ids only)`);
      process.stdout.write(`# ${model}: ${from} messages from workers, ${to} to them, for ${CONNECTIONS} connections\n`);

      const metrics = await (await fetch(`${admin}/metrics`)).text();
      assert.match(metrics, new RegExp(`^tcpkit_connections_accepted_total ${CONNECTIONS}$`, 'm'));
      const role = model === 'prefork' ? 'worker' : 'thread';
      assert.match(metrics, new RegExp(`^tcpkit_model_connections_served\\{model="${model}",role="${role}"\\} ${CONNECTIONS}$`, 'm'));

      // One accept and one end line per connection, ids unique in the process.
      const log = server.log();
      const accepts = lines(log, /^accept \S+ -> \S+ IPv4 pid \d+ count \d+\/40 id (\d+)$/gm).map((m) => Number(m[1]));
      const ends = lines(log, /^end pid \d+ exitcode 0 count \d+\/40 id (\d+) ms \d+$/gm).map((m) => Number(m[1]));
      assert.equal(accepts.length, CONNECTIONS);
      assert.equal(new Set(accepts).size, CONNECTIONS, 'ids unique');
      assert.deepEqual([...ends].sort((a, b) => a - b), [...accepts].sort((a, b) => a - b));
      for (const m of lines(log, /count (\d+)\/40/g)) assert.ok(Number(m[1]) <= 40);
    } finally {
      await server.stop();
    }
  });
}

for (const model of ['prefork', 'threads'] as const) {
  test(`${model}: --max-conns 3 across 2 workers holds exactly; the rest wait in the backlog, then are served`, async () => {
    const server = await startServer(['--model', model, '--workers', '2', '-c', '3']);
    const held: Held[] = [];
    try {
      for (let i = 0; i < 7; i++) held.push(await hold(server.port));
      await eventually(() => held.filter((h) => h.served).length >= 3, { timeoutMs: 10_000, message: '3 served' });
      // Seconds for a fourth to sneak in, if one could.
      await sleep(1500);
      assert.equal(held.filter((h) => h.served).length, 3);
      assert.equal(held.filter((h) => h.closed).length, 0, 'none refused: they wait');
      for (const h of held.filter((x) => x.served)) h.socket.end();
      await eventually(() => held.filter((h) => h.served).length === 6, { timeoutMs: 10_000, message: 'the next 3 served' });
      await sleep(1000);
      assert.equal(held.filter((h) => h.served).length, 6);
      for (const h of held) h.socket.end();
      await eventually(() => held.every((h) => h.served), { timeoutMs: 10_000, message: 'all served' });
      for (const m of lines(server.log(), /^accept .* count (\d+)\/3 /gm)) assert.ok(Number(m[1]) <= 3, m[0]);
    } finally {
      for (const h of held) h.socket.destroy();
      await server.stop();
    }
  });

  test(`${model}: --per-source 2 across 2 workers: exactly 2 served, the others refused with a log line`, async () => {
    const server = await startServer(['--model', model, '--workers', '2', '--per-source', '2']);
    const held: Held[] = [];
    try {
      for (let i = 0; i < 6; i++) held.push(await hold(server.port));
      await eventually(() => held.filter((h) => h.served || h.closed).length === 6, { timeoutMs: 10_000, message: 'all answered' });
      assert.equal(held.filter((h) => h.served).length, 2);
      assert.equal(held.filter((h) => h.closed && !h.served).length, 4);
      await server.waitFor(/(?:^refuse .* reason per-source\n[^]*){4}/m);
    } finally {
      for (const h of held) h.socket.destroy();
      await server.stop();
    }
  });

  test(`${model}: --workers defaults to the number of CPUs (${os.availableParallelism()})`, async () => {
    const server = await startServer(['--model', model, '--admin', '127.0.0.1:0']);
    try {
      const snap = await status(await adminOf(server));
      assert.equal(snap.server.models.processes.length, os.availableParallelism());
    } finally {
      await server.stop();
    }
  });
}

for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
  test(`prefork: a worker killed by ${signal} in a burst loses no queued connection; every client it dropped is in the log`, async () => {
    const CLIENTS = 300;
    const server = await startLogged(['--model', 'prefork', '--workers', '2', '-c', '1000']);
    try {
      const workers = await eventually(() => {
        const pids = lines(server.log(), /^spawn pid (\d+) role worker$/gm).map((m) => Number(m[1]));
        return pids.length === 2 ? pids : undefined;
      });
      const victim = workers[0]!;
      // Each client: connect, send a line, keep the connection 300 ms after the echo, then close.
      const outcome = (): Promise<{ port: number; echoed: boolean; how: string }> =>
        new Promise((resolve) => {
          const s = net.connect({ port: server.port, host: '127.0.0.1' });
          let got = '';
          let port = 0;
          const timer = setTimeout(() => s.destroy(new Error('hang')), 30_000);
          s.setEncoding('utf8');
          s.on('connect', () => {
            port = s.localPort ?? 0;
            s.write('ping\n');
          });
          s.on('data', (c: string) => {
            got += c;
            if (got === 'ping\n') setTimeout(() => s.end(), 300);
          });
          let how = 'end';
          s.on('error', (e: NodeJS.ErrnoException) => (how = e.code ?? e.message));
          s.on('close', () => {
            clearTimeout(timer);
            resolve({ port, echoed: got === 'ping\n', how });
          });
        });
      const burst = Array.from({ length: CLIENTS }, outcome);
      // Kill once the victim has reported connections (some are in its hands, some still queued).
      await eventually(() => new RegExp(`^accept .* pid ${victim} `, 'm').test(server.log()), { timeoutMs: 20_000, message: 'an accept by the victim' });
      process.kill(victim, signal);
      const results = await Promise.all(burst);
      await eventually(() => new RegExp(`^exit pid ${victim} role worker signal ${signal}$`, 'm').test(server.log()), { message: 'the victim\'s exit line' });
      assert.ok(results.every((r) => r.how !== 'hang'), 'no client hangs');
      const log = server.log();
      const acceptedBy = new Map(lines(log, /^accept 127\.0\.0\.1:(\d+) -> \S+ IPv4 pid (\d+) count \S+ id (\d+)$/gm).map((m) => [Number(m[1]), { pid: Number(m[2]), id: Number(m[3]) }]));
      const killedIds = new Set(lines(log, new RegExp(`^end pid ${victim} signal ${signal} count \\S+ id (\\d+) `, 'gm')).map((m) => Number(m[1])));
      const lostLine = new RegExp(`^error where worker code TCPKIT_WORKER_LOST pid ${victim} `, 'm').test(log);
      // SIGTERM: the worker sends its last batch before it goes, so nothing is left unreported.
      if (signal === 'SIGTERM') assert.ok(!lostLine, 'no TCPKIT_WORKER_LOST line after SIGTERM');
      const dropped = results.filter((r) => !r.echoed);
      for (const r of dropped) {
        const a = acceptedBy.get(r.port);
        if (a) {
          assert.equal(a.pid, victim, `client :${r.port} dropped (${r.how}) by a worker that was not killed`);
          assert.ok(killedIds.has(a.id), `client :${r.port} (id ${a.id}) has an end line with signal ${signal}`);
        } else assert.ok(lostLine, `client :${r.port} dropped (${r.how}) before any report, and no TCPKIT_WORKER_LOST line`);
      }
      // The survivor and the replacement served the rest, queued ones included.
      assert.ok(results.length - dropped.length > 0);
      process.stdout.write(`# ${dropped.length} of ${CLIENTS} clients dropped with the killed worker, ${killedIds.size} ended by its ${signal} in the log, lost line: ${lostLine}\n`);
      // Everything accepted has ended in the log (the victim's by its exit).
      await eventually(() => lines(server.log(), /^end /gm).length === lines(server.log(), /^accept /gm).length, { timeoutMs: 10_000, message: 'an end for every accept' });
    } finally {
      await server.stop();
    }
  });
}

for (const model of ['prefork', 'threads'] as const) {
  test(`${model}: a worker that ends at once (process.exit in a handler) leaves no connection unaccounted for`, async () => {
    const server = await startServer(['--model', model, '--workers', '1', '--handler', path.join(ROOT, 'test', 'fixtures', 'crashy-handler.js')]);
    const held: Held[] = [];
    try {
      // Two connections, then one that makes the worker call process.exit(3) before its batch goes out (50 ms).
      for (let i = 0; i < 2; i++) held.push(await hold(server.port));
      const e = await hold(server.port);
      e.socket.write('EXIT');
      held.push(e);
      await server.waitFor(/^exit pid \d+ role (?:worker|thread\d+) exitcode 3$/m);
      await eventually(() => held.every((h) => h.closed), { timeoutMs: 10_000, message: 'every client closed' });
      const log = server.log();
      const lost = /^error where worker code TCPKIT_WORKER_LOST pid \d+ unreported (\d+) /m.exec(log);
      const reported = held.filter((h) => new RegExp(`^accept 127\\.0\\.0\\.1:${h.port} `, 'm').test(log)).length;
      // Each one either reported (accept, then end with the thread's exit code) or counted in the lost line.
      assert.equal(reported + Number(lost?.[1] ?? 0), held.length, log);
      assert.equal(lines(log, /^end pid \d+ exitcode 3 /gm).length, reported, log);
      // A process sends its last batch on its way out; a thread cannot, and its shared counter says how many.
      if (model === 'prefork') assert.equal(reported, held.length, log);
    } finally {
      for (const h of held) h.socket.destroy();
      await server.stop();
    }
  });
}
