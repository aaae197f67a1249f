/**
 * What a parent tells a child process that serves connections. Plain data only.
 */
import type { ConnectionInfo } from '../address.js';
import type { ServiceSpec } from '../services/types.js';

/** The fork model's child: one service, one connection. */
export interface ChildSpec {
  service: ServiceSpec;
  info: ConnectionInfo;
}

/**
 * The fork model's spare child (--spare), over its IPC channel: it reports `ready`
 * once its service is loaded; the server then sends it one `connection` with the
 * connected socket attached, and the spare serves it and exits.
 */
export type SpareMessage = { type: 'ready' } | { type: 'connection'; info: ConnectionInfo };

/** What a spare child is started with (TCPKIT_SPARE, JSON). */
export interface SpareSpec {
  service: ServiceSpec;
}
