/**
 * The service contract (docs/handlers.md): a service, or a user's handler, is a
 * function of one connection, called once with its ServiceContext, as a
 * `net.createServer` listener is called with its socket. The connection lives until
 * the socket has closed (both directions ended, or destroyed) and the promise the
 * function returned, if any, has settled: returning does not close the socket. The
 * same function runs under every model: in the server process, in a child, in a
 * worker or a thread (connection/run.ts keeps the contract for all of them).
 */
import type net from 'node:net';
import type { ConnectionInfo } from '../address.js';
import type { Child } from '../net/launcher.js';

/** What a service gets for one connection. */
export interface ServiceContext {
  /**
   * The connected socket: a plain net.Socket, half-open allowed (a FIN from the peer
   * ends only its readable side: end() yours). Not flowing yet and flowing-capable, as
   * a `net.createServer` listener gets it: on('data'), pipe(), resume(), read() or
   * `for await` start reading. `for await` ends at the peer's FIN without destroying it.
   */
  socket: net.Socket;
  /** Both ends of the connection, its id and accept time. */
  info: ConnectionInfo;
  /** Options for the service, from the command line or config (`maxReply`, ...). */
  options: Readonly<Record<string, unknown>>;
  /**
   * Report a service-level event (a protocol error, ...) to the server's log, as an
   * `error where service code CODE ... reason REASON` line (code default `TCPKIT_SERVICE`).
   * It does not close the connection.
   */
  log(reason: string, code?: string): void;
  /**
   * Variables the server's admission added for this connection (the access
   * rule's, TCPCONNNUM); the exec service gives them to its program. Default none.
   */
  env?: Readonly<Record<string, string>>;
}

/**
 * A service: a function of one connection. Returning (or resolving) leaves the socket
 * as it is; throwing, rejecting or an 'error' event on the socket is one service error
 * in the log and destroys this socket only. A peer's reset is not a service error.
 */
export type Service = ((ctx: ServiceContext) => void | Promise<void>) & {
  /**
   * The connection lasts until the returned promise settles, even after the socket has
   * closed (default: until the socket closes). For a service whose work outlives its copy
   * of the socket: exec, whose program holds a copy of its own.
   */
  readonly holdsConnection?: boolean;
};

/** A user's handler (`--handler FILE`, registerService, createServer's `service`): the Service type, by the name the docs use. */
export type Handler = Service;

/**
 * Which service to run, as plain data so it can cross to a child process or a thread:
 * a built-in by `name`, or a user's module by `handler` (an absolute path or file URL
 * of a module whose default export, or export `handler`, is a Service).
 */
export interface ServiceSpec {
  name: string;
  handler?: string;
  options?: Record<string, unknown>;
}

/**
 * A service that is a program run per connection (exec) says so, and how, so that a
 * model starting a process per connection (fork) starts the program itself rather
 * than a Node process that would start it. No model checks a service by name.
 */
export interface ProgramLauncher {
  /** The program's complete environment for this connection (`extra`: the admission's variables). */
  environment(info: ConnectionInfo, extra: Readonly<Record<string, string>>): Promise<Record<string, string>>;
  /** Start it on the socket; the caller closes its own copy. Rejects when it cannot be started. */
  start(socket: net.Socket, env: Record<string, string>, onStderr: (line: string, pid: number) => void): Promise<Child>;
  /**
   * Start it on a bare accepted descriptor, which is the launcher's from this call on
   * (closed once the program holds it, or when it cannot be started). Absent when the
   * program cannot start that way (it runs as another user: child_process).
   */
  startFd?(fd: number, env: Record<string, string>, onStderr: (line: string, pid: number) => void): Promise<Child>;
}

/** A service's module: the Service as default export, and `program` if the service runs one. */
export interface ServiceModule {
  default: Service;
  /** Given the spec's options (already checked), how to run its program. */
  program?: (options: Readonly<Record<string, unknown>>) => ProgramLauncher;
}
