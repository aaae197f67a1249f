/**
 * event: every connection in this process's event loop, the select/epoll design.
 * Accepting never waits for a connection to end; one process serves them all.
 *
 *   accept ─► runService(socket) in this process ─► close ─► `end`
 *
 * Isolation: a throw or rejection in a service is contained to its socket by
 * runService, but an uncaught error from a timer or callback, or process.exit,
 * ends the whole server and every connection in it.
 */
import type { IncomingConnection } from '../connection/pipeline.js';
import { InProcessModel } from './in-process.js';
import type { Model, ModelHost } from './types.js';

/** The event model; no options. */
export class EventModel extends InProcessModel {
  readonly name = 'event' as const;

  dispatch(conn: IncomingConnection): void {
    this.serve(conn);
  }
}

export default (host: ModelHost): Model => new EventModel(host);
