/**
 * event: every connection in this process's event loop, the select/epoll design.
 * Accepting never waits for a connection to end; one process serves them all.
 *
 *   accept ─► runService(socket) in this process ─► close ─► `end`
 *
 * A program service (exec: its module exports `program`) is started from here per
 * connection, as the fork model starts it (./children.ts, the same unit): the
 * program is the child, so `accept ... pid N` and `end pid N exitcode X` are the
 * program's, the limits are enforced on it from here, and its connection can come
 * as a bare descriptor (the native path: ../net/fast-path.ts decides) that never
 * becomes a net.Socket in this process.
 *
 * Isolation: a throw or rejection in a service is contained to its socket by
 * runService, but an uncaught error from a timer or callback, or process.exit,
 * ends the whole server and every connection in it.
 */
import type { Connection, IncomingConnection } from '../connection/pipeline.js';
import { programOf, type ProgramLauncher } from '../services/index.js';
import { PROGRAM_DESCRIPTORS, ServingChildren } from './children.js';
import { InProcessModel } from './in-process.js';
import type { Model, ModelHost, ModelStats } from './types.js';

/** The event model; no options. */
export class EventModel extends InProcessModel {
  readonly name = 'event' as const;
  /** Set when the service runs a program per connection (exec): started from here, tracked by #children. */
  #program: ProgramLauncher | undefined;
  readonly #children: ServingChildren;

  constructor(host: ModelHost) {
    super(host);
    this.#children = new ServingChildren(host);
  }

  override async start(): Promise<void> {
    await super.start();
    this.#program = await programOf(this.host.service);
    // What programs about to start will open here, so that accepting backs off before a launch runs out of descriptors.
    if (this.#program) this.host.listener.countDescriptors(() => ({ held: 0, reserved: PROGRAM_DESCRIPTORS * this.#children.starting }));
  }

  dispatch(conn: IncomingConnection): void {
    if (this.#program) void this.#children.startProgram(this.#program, conn.socket, conn);
    else this.serve(conn);
  }

  /** A program per connection started from here on a bare descriptor (../net/fast-path.ts decides). */
  servesDescriptors(): boolean {
    return this.#program?.startFd !== undefined;
  }

  /** The native path: the program starts on the accepted descriptor, which never becomes a net.Socket here. */
  serveDescriptor(conn: Connection, fd: number): void {
    void this.#children.startProgram(this.#program!, fd, conn);
  }

  override async close(graceMs: number): Promise<void> {
    await Promise.all([super.close(graceMs), this.#children.close(graceMs)]);
  }

  override destroy(): void {
    super.destroy();
    this.#children.destroy();
  }

  override stats(): ModelStats {
    const own = super.stats();
    return { ...own, processes: [...own.processes, ...this.#children.rows()], crashed: this.#children.crashed, spawned: this.#children.spawned };
  }
}

export default (host: ModelHost): Model => new EventModel(host);
