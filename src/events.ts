/**
 * Server events: one discriminated union, published on `node:diagnostics_channel`
 * (`tcpkit:event`) and emitted by the Server as `'event'`. The log lines are a
 * rendering of these records (see docs/log-grammar.md); status views and metrics
 * consume the same records, never the server's internals.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { formatEndpoint, sanitize, type Endpoint } from './address.js';

/**
 * Every event a server reports. Field names are the log grammar's keys. `service`:
 * under `serve --config`, the name (config key) of the service the event concerns,
 * set by the Supervisor on every event of its servers (`listen` names the service
 * in every case: its kind, or under --config its name).
 */
export type ServerEvent = EventRecord & { service?: string };

/** The events themselves, without the service's name. */
type EventRecord =
  | { type: 'listen'; local: Endpoint; model: string; service: string; pid: number; max: number }
  /** `via`: the real peer (the balancer) when a PROXY header named `remote`. */
  | { type: 'accept'; id: number; local: Endpoint; remote: Endpoint; pid: number; count: number; max: number; via?: Endpoint; tls?: string }
  | {
      type: 'end';
      id: number;
      pid: number;
      exitcode: number | null;
      signal: string | null;
      count: number;
      max: number;
      ms: number;
    }
  | { type: 'pause'; count: number; max: number }
  | { type: 'resume'; count: number; max: number }
  | { type: 'deny'; remote: Endpoint; local: Endpoint; reason: string; rule?: string }
  /** `message`: what exactly was wrong, where the reason alone does not say (a bad PROXY header). */
  | { type: 'refuse'; remote: Endpoint; local: Endpoint; reason: string; message?: string }
  | { type: 'spawn'; pid: number; role: string }
  | { type: 'exit'; pid: number; role: string; exitcode: number | null; signal: string | null }
  /**
   * `stack`: where a service failed, for the JSON log only (a text line leaves it out). `unreported`: connections a
   * dead pool worker served but never reported (TCPKIT_WORKER_LOST), counted as accepted and ended.
   */
  | { type: 'error'; where: string; code: string; message: string; id?: number; pid?: number; suppressed?: number; unreported?: number; stack?: string }
  | { type: 'shutdown'; signal: string; active: number; grace: number }
  | { type: 'kill'; pid: number; signal: string; reason: string }
  | { type: 'closed'; accepted: number; served: number }
  /** A line an exec'd program wrote on its stderr (sanitized when rendered). */
  | { type: 'stderr'; pid: number; id?: number; text: string }
  /** A configuration reload (SIGHUP): applied, or refused with the old one still running. */
  | { type: 'reload'; ok: boolean; kept: number; started: number; stopped: number; message?: string }
  /** Zero-downtime restart: the successor `pid` was started, is accepting, or failed (this server goes on). */
  | { type: 'restart'; state: 'spawn' | 'ready' | 'failed'; pid: number; message?: string };

export type ServerEventType = ServerEvent['type'];

/** The diagnostics channel every server publishes its events on. */
export const eventChannel = diagnostics_channel.channel('tcpkit:event');

/** The code a service's ctx.log uses for a line of its program's stderr, written `pid P: TEXT` (stderrReason). */
export const STDERR_CODE = 'stderr';

/** How an in-process exec service reports a line of its program's stderr through ctx.log. */
export const stderrReason = (pid: number, line: string): string => `pid ${pid}: ${line}`;

/** The code prefix with which a service's ctx.log says its program could not be started (spawnFailedCode). */
const SPAWN_CODE_PREFIX = 'spawn:';

/**
 * The ctx.log code for "the program could not be started" with system error `code` (ENOENT, EACCES...): logged
 * as `error where spawn code CODE`, under every model (the exec service in a process or worker, the fork model).
 */
export const spawnFailedCode = (code: string): string => `${SPAWN_CODE_PREFIX}${code}`;

/**
 * What a service's ctx.log(reason, code) for connection `id` served by `pid` is in the log: a connection closed
 * for a limit is `kill ... signal close reason idle|time-limit` (as the fork model logs a child it signals); a
 * program's stderr line is `stderr pid P id I text T` under every model, as under fork; a program that could not
 * be started (spawnFailedCode) is `error where spawn`; anything else is `error where service`.
 */
export function serviceLogEvent(id: number, pid: number, reason: string, code: string): ServerEvent {
  if (code === 'idle' || code === 'time-limit') return { type: 'kill', pid, signal: 'close', reason: code };
  if (code.startsWith(SPAWN_CODE_PREFIX) && code.length > SPAWN_CODE_PREFIX.length) {
    return { type: 'error', where: 'spawn', code: code.slice(SPAWN_CODE_PREFIX.length), message: reason, id, pid };
  }
  const m = code === STDERR_CODE ? /^pid (\d+): ([^]*)$/.exec(reason) : null;
  if (m) return { type: 'stderr', pid: Number(m[1]), id, text: m[2]! };
  return { type: 'error', where: 'service', code, message: reason, id, pid };
}

function field(key: string, value: unknown): string {
  return `${key} ${sanitize(String(value))}`;
}

/**
 * A free-text value (`message "..."`): sanitized once, as every value, and put in double quotes so a person sees
 * where it starts and ends. Not JSON-quoted: that doubled every backslash the sanitizing wrote (`\\x20`), and a
 * parser following docs/log-grammar.md decoded `\x20` instead of a space.
 */
function quoted(text: string, max: number): string {
  return `"${sanitize(text, max)}"`;
}

/**
 * Render an event as one log line. The grammar: the event name, then for
 * connection events `REMOTE -> LOCAL FAMILY`, then `key value` pairs.
 * Every value is sanitized: no spaces, no control characters, bounded length.
 *
 *     accept 127.0.0.1:51234 -> 127.0.0.1:9877 IPv4 pid 4242 count 3/40 id 3
 *     end pid 4242 exitcode 0 count 2/40 id 3 ms 12
 *     deny 127.0.0.2:40000 -> 127.0.0.1:9877 IPv4 reason access rule deny:127.0.0.2/32
 *     refuse 127.0.0.1:40002 -> 127.0.0.1:9877 IPv4 reason per-source
 *     stderr pid 4243 id 4 text cat:\x20write\x20error
 *     end pid 4242 exitcode 0 count 2/40 id 3 ms 12 service web        (serve --config)
 */
export function formatEvent(e: ServerEvent): string {
  const line = formatRecord(e);
  // Under --config: every line names its service (listen's own field already does).
  return e.service !== undefined && e.type !== 'listen' ? `${line} ${field('service', e.service)}` : line;
}

function formatRecord(e: ServerEvent): string {
  switch (e.type) {
    case 'listen':
      return `listen ${sanitize(formatEndpoint(e.local))} ${e.local.family} ${field('model', e.model)} ${field('service', e.service)} pid ${e.pid} max ${e.max}`;
    case 'accept':
      return `accept ${sanitize(formatEndpoint(e.remote))} -> ${sanitize(formatEndpoint(e.local))} ${e.remote.family} pid ${e.pid} count ${e.count}/${e.max} id ${e.id}${e.via ? ` via ${sanitize(formatEndpoint(e.via))}` : ''}${e.tls ? ` tls ${sanitize(e.tls)}` : ''}`;
    case 'end': {
      const how = e.signal ? `signal ${e.signal}` : `exitcode ${e.exitcode ?? 0}`;
      return `end pid ${e.pid} ${how} count ${e.count}/${e.max} id ${e.id} ms ${e.ms}`;
    }
    case 'pause':
    case 'resume':
      return `${e.type} count ${e.count}/${e.max}`;
    case 'deny':
    case 'refuse':
      return `${e.type} ${sanitize(formatEndpoint(e.remote))} -> ${sanitize(formatEndpoint(e.local))} ${e.remote.family} ${field('reason', e.reason)}${e.type === 'deny' && e.rule ? ` ${field('rule', e.rule)}` : ''}${e.type === 'refuse' && e.message ? ` message ${quoted(e.message, 512)}` : ''}`;
    case 'spawn':
      return `spawn pid ${e.pid} ${field('role', e.role)}`;
    case 'exit': {
      const how = e.signal ? `signal ${e.signal}` : `exitcode ${e.exitcode ?? 0}`;
      return `exit pid ${e.pid} ${field('role', e.role)} ${how}`;
    }
    case 'error':
      return `error ${field('where', e.where)} ${field('code', e.code)}${e.id !== undefined ? ` id ${e.id}` : ''}${e.pid !== undefined ? ` pid ${e.pid}` : ''}${e.suppressed !== undefined ? ` suppressed ${e.suppressed}` : ''}${e.unreported !== undefined ? ` unreported ${e.unreported}` : ''} message ${quoted(e.message, 512)}`;
    case 'shutdown':
      return `shutdown ${field('signal', e.signal)} active ${e.active} grace ${e.grace}`;
    case 'kill':
      return `kill pid ${e.pid} ${field('signal', e.signal)} ${field('reason', e.reason)}`;
    case 'closed':
      return `closed accepted ${e.accepted} served ${e.served}`;
    case 'stderr':
      return `stderr pid ${e.pid}${e.id !== undefined ? ` id ${e.id}` : ''} text ${sanitize(e.text, 512)}`;
    case 'reload':
      return e.ok
        ? `reload ok kept ${e.kept} started ${e.started} stopped ${e.stopped}`
        : `reload failed message ${quoted(e.message ?? '', 1024)}`;
    case 'restart':
      return `restart state ${e.state} pid ${e.pid}${e.message ? ` message ${quoted(e.message, 512)}` : ''}`;
  }
}

/** Render an event as one JSON line (`--log-format json`): the record plus an ISO time. */
export function formatEventJson(e: ServerEvent, now = new Date()): string {
  return JSON.stringify({ time: now.toISOString(), ...e });
}
