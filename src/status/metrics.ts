/**
 * Prometheus metrics of one server, through prom-client. Fed only by what the
 * server publishes: its `'event'` records (counted as they happen) and `stats()`
 * (read at scrape time). Each server gets its own registry, so two servers in one
 * process never share a counter.
 *
 * Names follow Prometheus conventions: `_total` for counters, base units (seconds, bytes).
 */
import client from 'prom-client';
import type { ServerEvent } from '../events.js';
import type { Server } from '../server.js';
import { logDropped } from '../log.js';

/** A server's metrics; `close()` stops listening to the server's events. */
export interface ServerMetrics {
  readonly registry: client.Registry;
  /** The exposition text (`text/plain; version=0.0.4`). */
  text(): Promise<string>;
  readonly contentType: string;
  close(): void;
}

/** Connection durations, in seconds: from a quick echo to a long-lived session. */
const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Create the metrics of `server` and start counting its events. */
export function createMetrics(server: Server): ServerMetrics {
  const registry = new client.Registry();
  const registers = [registry];
  const serverPid = process.pid;

  const accepted = new client.Counter({ name: 'tcpkit_connections_accepted_total', help: 'Connections accepted.', registers });
  const ended = new client.Counter({ name: 'tcpkit_connections_ended_total', help: 'Connections that ended (closed by either side or killed).', registers });
  const refused = new client.Counter({
    name: 'tcpkit_connections_refused_total',
    help: 'Connections closed without service, by reason (refuse: a limit; deny: an access rule).',
    labelNames: ['event', 'reason'] as const,
    registers,
  });
  const reaped = new client.Counter({
    name: 'tcpkit_children_reaped_total',
    help: 'Child processes and workers that exited and were reaped, by role.',
    labelNames: ['role'] as const,
    registers,
  });
  const errors = new client.Counter({ name: 'tcpkit_errors_total', help: 'Errors reported by the server, by where and code.', labelNames: ['where', 'code'] as const, registers });
  const kills = new client.Counter({ name: 'tcpkit_kills_total', help: 'Signals sent to children and workers, by signal and reason.', labelNames: ['signal', 'reason'] as const, registers });
  const pauses = new client.Counter({ name: 'tcpkit_accept_pauses_total', help: 'Times accepting paused at the connection limit.', registers });
  // Registered on the first 'end' that carries byte counts: a model that does not count bytes gets no series, not a false 0.
  let bytes: { in: client.Counter; out: client.Counter } | undefined;
  const countBytes = (received: number, sent: number) => {
    bytes ??= {
      in: new client.Counter({ name: 'tcpkit_received_bytes_total', help: 'Bytes received from clients, over connections that ended.', registers }),
      out: new client.Counter({ name: 'tcpkit_sent_bytes_total', help: 'Bytes sent to clients, over connections that ended.', registers }),
    };
    bytes.in.inc(received);
    bytes.out.inc(sent);
  };
  const duration = new client.Histogram({ name: 'tcpkit_connection_duration_seconds', help: 'How long connections lasted, accept to end.', buckets: DURATION_BUCKETS, registers });

  // Log lines the process could not write (a log target that failed); read at scrape time.
  let droppedSeen = 0;
  new client.Counter({
    name: 'tcpkit_log_dropped_total',
    help: 'Log lines dropped because the log target failed (EPIPE, ENOSPC, EAGAIN); serving went on.',
    registers,
    collect() {
      const n = logDropped();
      if (n > droppedSeen) this.inc(n - droppedSeen);
      droppedSeen = n;
    },
  });

  // Figures read from stats() at scrape time: the server is the source of truth.
  new client.Gauge({
    name: 'tcpkit_connections_active',
    help: 'Connections being served now.',
    registers,
    collect() {
      this.set(server.stats().active);
    },
  });
  new client.Gauge({
    name: 'tcpkit_connections_max',
    help: 'The connection limit (--max-conns); at it, new connections wait in the backlog.',
    registers,
    collect() {
      this.set(server.stats().maxConns);
    },
  });
  new client.Gauge({
    name: 'tcpkit_accept_paused',
    help: '1 while accepting is paused (at the limit, or closing), else 0.',
    registers,
    collect() {
      this.set(server.stats().listener === 'accepting' ? 0 : 1);
    },
  });
  new client.Gauge({
    name: 'tcpkit_server_info',
    help: 'Always 1; the labels describe the server.',
    labelNames: ['model', 'service', 'state'] as const,
    registers,
    collect() {
      const s = server.stats();
      this.reset();
      this.set({ model: s.model, service: s.service, state: s.state }, 1);
    },
  });
  new client.Gauge({
    name: 'tcpkit_server_start_time_seconds',
    help: 'When the server was created, seconds since the epoch.',
    registers,
    collect() {
      this.set(server.stats().startedAt / 1000);
    },
  });
  // The model's own lifetime counters live in stats(); a counter that mirrors them must only go up.
  const mirror = (name: string, help: string, read: () => number | undefined) => {
    let last = 0;
    new client.Counter({
      name,
      help,
      labelNames: ['model'] as const,
      registers,
      collect() {
        const v = read();
        if (v !== undefined && v > last) {
          this.inc({ model: server.options.model }, v - last);
          last = v;
        } else if (last === 0) this.inc({ model: server.options.model }, 0);
      },
    });
  };
  mirror('tcpkit_children_spawned_total', 'Child processes or workers started, over the server\'s life.', () => server.stats().models?.spawned);
  mirror('tcpkit_children_crashed_total', 'Child processes or workers that ended by a signal or a non-zero exit.', () => server.stats().models?.crashed);
  new client.Gauge({
    name: 'tcpkit_model_processes',
    help: 'Processes and threads the model runs now, by model, role and state.',
    labelNames: ['model', 'role', 'state'] as const,
    registers,
    collect() {
      const m = server.stats().models;
      this.reset();
      if (!m) return;
      const counts = new Map<string, { role: string; state: string; n: number }>();
      for (const p of m.processes) {
        const key = `${p.role}\0${p.state}`;
        const c = counts.get(key) ?? { role: p.role, state: p.state, n: 0 };
        c.n++;
        counts.set(key, c);
      }
      for (const c of counts.values()) this.set({ model: m.model, role: c.role, state: c.state }, c.n);
    },
  });
  new client.Gauge({
    name: 'tcpkit_model_connections_served',
    help: 'Connections each role of the model has finished, summed over its live processes and threads.',
    labelNames: ['model', 'role'] as const,
    registers,
    collect() {
      const m = server.stats().models;
      this.reset();
      if (!m) return;
      const sums = new Map<string, number>();
      for (const p of m.processes) sums.set(p.role, (sums.get(p.role) ?? 0) + p.served);
      for (const [role, n] of sums) this.set({ model: m.model, role }, n);
    },
  });

  // Zero-valued series exist from the start, so a scraper sees them before the first connection.
  reaped.inc({ role: 'child' }, 0);

  const onEvent = (e: ServerEvent) => {
    switch (e.type) {
      case 'accept':
        accepted.inc();
        break;
      case 'end': {
        ended.inc();
        duration.observe(e.ms / 1000);
        // A child that served this connection alone reports its exit status here (ModelHost.closed).
        if (e.pid !== serverPid && (e.exitcode !== null || e.signal !== null)) reaped.inc({ role: 'child' });
        // Models that count bytes may add them to the record; ServerEvent does not promise them.
        const extra = e as { bytesIn?: unknown; bytesOut?: unknown };
        if (typeof extra.bytesIn === 'number' && typeof extra.bytesOut === 'number') countBytes(extra.bytesIn, extra.bytesOut);
        break;
      }
      case 'refuse':
      case 'deny':
        refused.inc({ event: e.type, reason: e.reason });
        break;
      case 'exit':
        reaped.inc({ role: e.role });
        break;
      case 'error':
        errors.inc({ where: e.where, code: e.code });
        break;
      case 'kill':
        kills.inc({ signal: e.signal, reason: e.reason });
        break;
      case 'pause':
        pauses.inc();
        break;
      default:
        break;
    }
  };
  server.on('event', onEvent);

  return {
    registry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close() {
      server.off('event', onEvent);
    },
  };
}
