/**
 * Prometheus metrics of one server, through prom-client. Fed only by what the
 * server publishes: its `'event'` records (counted as they happen) and `stats()`
 * (read at scrape time). Each server gets its own registry, so two servers in one
 * process never share a counter.
 *
 * Under a supervisor (`serve --config`) every series carries a `binding` label, the
 * service's `SERVICE ADDRESS`, so each service is told apart; a lone Server's series
 * have no such label (unchanged).
 *
 * Names follow Prometheus conventions: `_total` for counters, base units (seconds, bytes).
 */
import client from 'prom-client';
import type { ServerEvent } from '../events.js';
import type { ServerStats } from '../server.js';
import { logDropped } from '../log.js';
import { isSupervisorStats, servicesOf, type StatusSource } from './source.js';

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

/** Create the metrics of `source` (a Server or a Supervisor) and start counting its events. */
export function createMetrics(source: StatusSource): ServerMetrics {
  const registry = new client.Registry();
  const registers = [registry];
  const serverPid = process.pid;
  const multi = isSupervisorStats(source.stats());
  /** The label set of a series: `binding` added under a supervisor. */
  const at = <T extends Record<string, string>>(binding: string | undefined, labels: T): T => (multi ? { ...labels, binding: binding ?? '' } : labels);
  const names = <T extends string>(...labels: T[]): T[] => (multi ? [...labels, 'binding' as T] : labels);
  const each = (fn: (binding: string, s: ServerStats) => void) => {
    for (const [binding, s] of servicesOf(source.stats())) fn(binding, s);
  };

  const accepted = new client.Counter({ name: 'tcpkit_connections_accepted_total', help: 'Connections accepted.', labelNames: names(), registers });
  const ended = new client.Counter({ name: 'tcpkit_connections_ended_total', help: 'Connections that ended (closed by either side or killed).', labelNames: names(), registers });
  const refused = new client.Counter({
    name: 'tcpkit_connections_refused_total',
    help: 'Connections closed without service, by reason (refuse: a limit; deny: an access rule).',
    labelNames: names('event', 'reason'),
    registers,
  });
  const reaped = new client.Counter({
    name: 'tcpkit_children_reaped_total',
    help: 'Child processes and workers that exited and were reaped, by role.',
    labelNames: names('role'),
    registers,
  });
  const errors = new client.Counter({ name: 'tcpkit_errors_total', help: 'Errors reported by the server, by where and code.', labelNames: names('where', 'code'), registers });
  const kills = new client.Counter({ name: 'tcpkit_kills_total', help: 'Signals sent to children and workers, by signal and reason.', labelNames: names('signal', 'reason'), registers });
  const pauses = new client.Counter({ name: 'tcpkit_accept_pauses_total', help: 'Times accepting paused at the connection limit.', labelNames: names(), registers });
  // Registered on the first 'end' that carries byte counts: a model that does not count bytes gets no series, not a false 0.
  let bytes: { in: client.Counter; out: client.Counter } | undefined;
  const countBytes = (binding: string | undefined, received: number, sent: number) => {
    bytes ??= {
      in: new client.Counter({ name: 'tcpkit_received_bytes_total', help: 'Bytes received from clients, over connections that ended.', labelNames: names(), registers }),
      out: new client.Counter({ name: 'tcpkit_sent_bytes_total', help: 'Bytes sent to clients, over connections that ended.', labelNames: names(), registers }),
    };
    bytes.in.inc(at(binding, {}), received);
    bytes.out.inc(at(binding, {}), sent);
  };
  const duration = new client.Histogram({
    name: 'tcpkit_connection_duration_seconds',
    help: 'How long connections lasted, accept to end.',
    buckets: DURATION_BUCKETS,
    labelNames: names(),
    registers,
  });

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
    labelNames: names(),
    registers,
    collect() {
      this.reset();
      each((b, s) => this.set(at(b, {}), s.active));
    },
  });
  new client.Gauge({
    name: 'tcpkit_connections_max',
    help: 'The connection limit (--max-conns); at it, new connections wait in the backlog.',
    labelNames: names(),
    registers,
    collect() {
      this.reset();
      each((b, s) => this.set(at(b, {}), s.maxConns));
    },
  });
  new client.Gauge({
    name: 'tcpkit_accept_paused',
    help: '1 while accepting is paused (at the limit, or closing), else 0.',
    labelNames: names(),
    registers,
    collect() {
      this.reset();
      each((b, s) => this.set(at(b, {}), s.listener === 'accepting' ? 0 : 1));
    },
  });
  new client.Gauge({
    name: 'tcpkit_server_info',
    help: 'Always 1; the labels describe the server.',
    labelNames: names('model', 'service', 'state'),
    registers,
    collect() {
      this.reset();
      each((b, s) => this.set(at(b, { model: s.model, service: s.service, state: s.state }), 1));
    },
  });
  new client.Gauge({
    name: 'tcpkit_server_start_time_seconds',
    help: 'When the server was created, seconds since the epoch.',
    labelNames: names(),
    registers,
    collect() {
      this.reset();
      each((b, s) => this.set(at(b, {}), s.startedAt / 1000));
    },
  });
  // The model's own lifetime counters live in stats(); a counter that mirrors them must only go up.
  const mirror = (name: string, help: string, read: (s: ServerStats) => number | undefined) => {
    const last = new Map<string, number>();
    new client.Counter({
      name,
      help,
      labelNames: names('model'),
      registers,
      collect() {
        each((b, s) => {
          const v = read(s);
          const was = last.get(b) ?? 0;
          if (v !== undefined && v > was) {
            this.inc(at(b, { model: s.model }), v - was);
            last.set(b, v);
          } else if (was === 0) this.inc(at(b, { model: s.model }), 0);
        });
      },
    });
  };
  // TLS: the server's counters (its own handshakes and its workers'), mirrored so they only go up.
  const mirrorBy = (name: string, help: string, label: string, read: (s: ServerStats) => Record<string, number> | undefined) => {
    const last = new Map<string, number>();
    new client.Counter({
      name,
      help,
      labelNames: names(label),
      registers,
      collect() {
        each((b, s) => {
          for (const [k, v] of Object.entries(read(s) ?? {})) {
            const key = `${b}\0${k}`;
            const was = last.get(key) ?? 0;
            if (v > was) {
              this.inc(at(b, { [label]: k }), v - was);
              last.set(key, v);
            }
          }
        });
      },
    });
  };
  mirrorBy('tcpkit_tls_handshakes_total', 'TLS handshakes completed, resumed ones included.', 'kind', (s) => s.tls && { full: s.tls.handshakes - s.tls.resumed, resumed: s.tls.resumed });
  mirrorBy('tcpkit_tls_handshake_failures_total', 'Connections refused before or during the TLS handshake, by reason.', 'reason', (s) => s.tls?.failures);
  mirrorBy('tcpkit_tls_protocol_total', 'TLS handshakes completed, by protocol version.', 'protocol', (s) => s.tls?.protocols);
  mirrorBy('tcpkit_tls_cipher_total', 'TLS handshakes completed, by cipher.', 'cipher', (s) => s.tls?.ciphers);
  new client.Gauge({
    name: 'tcpkit_tls_handshakes_pending',
    help: 'TLS handshakes in progress now (in the server process).',
    labelNames: names(),
    registers,
    collect() {
      this.reset();
      each((b, s) => {
        if (s.tls) this.set(at(b, {}), s.tls.pending);
      });
    },
  });
  mirror('tcpkit_children_spawned_total', 'Child processes or workers started, over the server\'s life.', (s) => s.models?.spawned);
  mirror('tcpkit_children_crashed_total', 'Child processes or workers that ended by a signal or a non-zero exit.', (s) => s.models?.crashed);
  new client.Gauge({
    name: 'tcpkit_model_processes',
    help: 'Processes and threads the model runs now, by model, role and state.',
    labelNames: names('model', 'role', 'state'),
    registers,
    collect() {
      this.reset();
      each((b, s) => {
        const m = s.models;
        if (!m) return;
        const counts = new Map<string, { role: string; state: string; n: number }>();
        for (const p of m.processes) {
          const key = `${p.role}\0${p.state}`;
          const c = counts.get(key) ?? { role: p.role, state: p.state, n: 0 };
          c.n++;
          counts.set(key, c);
        }
        for (const c of counts.values()) this.set(at(b, { model: m.model, role: c.role, state: c.state }), c.n);
      });
    },
  });
  new client.Gauge({
    name: 'tcpkit_model_connections_served',
    help: 'Connections each role of the model has finished, summed over its live processes and threads.',
    labelNames: names('model', 'role'),
    registers,
    collect() {
      this.reset();
      each((b, s) => {
        const m = s.models;
        if (!m) return;
        const sums = new Map<string, number>();
        for (const p of m.processes) sums.set(p.role, (sums.get(p.role) ?? 0) + p.served);
        for (const [role, n] of sums) this.set(at(b, { model: m.model, role }), n);
      });
    },
  });

  // Zero-valued series exist from the start, so a scraper sees them before the first connection.
  each((b) => reaped.inc(at(b, { role: 'child' }), 0));

  const onEvent = (e: ServerEvent, b?: string) => {
    switch (e.type) {
      case 'accept':
        accepted.inc(at(b, {}));
        break;
      case 'end': {
        ended.inc(at(b, {}));
        duration.observe(at(b, {}), e.ms / 1000);
        // A child that served this connection alone reports its exit status here (ModelHost.closed).
        if (e.pid !== serverPid && (e.exitcode !== null || e.signal !== null)) reaped.inc(at(b, { role: 'child' }));
        // Models that count bytes may add them to the record; ServerEvent does not promise them.
        const extra = e as { bytesIn?: unknown; bytesOut?: unknown };
        if (typeof extra.bytesIn === 'number' && typeof extra.bytesOut === 'number') countBytes(b, extra.bytesIn, extra.bytesOut);
        break;
      }
      case 'refuse':
      case 'deny':
        refused.inc(at(b, { event: e.type, reason: e.reason }));
        break;
      case 'exit':
        reaped.inc(at(b, { role: e.role }));
        break;
      case 'error':
        errors.inc(at(b, { where: e.where, code: e.code }));
        // Connections a dead worker never reported: accepted and ended all the same.
        if (e.unreported) {
          accepted.inc(at(b, {}), e.unreported);
          ended.inc(at(b, {}), e.unreported);
        }
        break;
      case 'kill':
        kills.inc(at(b, { signal: e.signal, reason: e.reason }));
        break;
      case 'pause':
        pauses.inc(at(b, {}));
        break;
      default:
        break;
    }
  };
  source.on('event', onEvent);

  return {
    registry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close() {
      source.off('event', onEvent);
    },
  };
}
