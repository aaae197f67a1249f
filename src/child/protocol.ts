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
