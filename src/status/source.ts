/**
 * What the status endpoint, the metrics and the dashboard consume: the plain
 * snapshots of whatever runs the services, and its events. A Server (one service on
 * one address) and a Supervisor (`serve --config`: several) both provide it, so
 * nothing under src/status/ depends on either class.
 */
import type { ServerEvent } from '../events.js';
import type { ServerStats } from '../server.js';

/** A Supervisor's snapshot: every running (service, address) pair by its `SERVICE ADDRESS` label. */
export interface SupervisorStats {
  kind: 'supervisor';
  state: string;
  pid: number;
  startedAt: number;
  services: Record<string, ServerStats>;
}

/** A Server or a Supervisor, as the status code sees it. */
export interface StatusSource {
  /** A plain snapshot: a Server's own, or a Supervisor's with one per service. */
  stats(): ServerStats | SupervisorStats;
  /** Every ServerEvent; a Supervisor also passes the label of the service it came from. */
  on(name: 'event', listener: (event: ServerEvent, service?: string) => void): unknown;
  off(name: 'event', listener: (event: ServerEvent, service?: string) => void): unknown;
}

/** Whether a snapshot is a Supervisor's. */
export function isSupervisorStats(s: ServerStats | SupervisorStats): s is SupervisorStats {
  return (s as SupervisorStats).kind === 'supervisor';
}

/** The services of a snapshot as [label, stats] pairs; a lone Server has one, labelled ''. */
export function servicesOf(s: ServerStats | SupervisorStats): Array<[string, ServerStats]> {
  return isSupervisorStats(s) ? Object.entries(s.services) : [['', s]];
}
