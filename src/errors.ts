/**
 * One catalog of tcpkit's errors. Every error carries a stable string `code`
 * (`TCPKIT_*`, or the system's own `EADDRINUSE`-style code for system errors) and,
 * where it wraps something, the original error as `cause`.
 *
 * Messages read like Node's own system errors and always name the address:
 * `listen EADDRINUSE 0.0.0.0:9877`, `connect ECONNREFUSED 127.0.0.1:9877`.
 */

/** Process exit codes, as ucspi-tcp uses them. */
export const ExitCode = {
  /** Success. */
  OK: 0,
  /** The peer went away before the work was done (client: server terminated prematurely). */
  PREMATURE: 1,
  /** Usage error: a bad argument or option; also a denied connection in exec programs. */
  USAGE: 100,
  /** Temporary or system failure: cannot bind, connect, fork, or read a file. */
  TEMPORARY: 111,
} as const;

/** Base class: every tcpkit error has a string code and an exit code for the CLI. */
export class TcpkitError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(code: string, message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options?.exitCode ?? ExitCode.TEMPORARY;
  }
}

/** A command-line usage error: unknown option, missing argument, bad value. Exit 100. */
export class UsageError extends TcpkitError {
  constructor(message: string) {
    super('TCPKIT_USAGE', message, { exitCode: ExitCode.USAGE });
  }
}

/** An invalid library option; thrown at construction, names the option. Exit 100 from the CLI. */
export class InvalidOptionError extends TcpkitError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('TCPKIT_INVALID_OPTION', `${option}: ${message}`, { exitCode: ExitCode.USAGE });
    this.option = option;
  }
}

interface SystemErrorLike extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}

/**
 * A failed system call on an address: `listen EADDRINUSE 0.0.0.0:9877`.
 * `code` is the system code (`EADDRINUSE`, `ECONNREFUSED`, ...); the original error is `cause`.
 */
export class SystemCallError extends TcpkitError {
  readonly syscall: string;
  readonly address: string;
  constructor(syscall: string, address: string, cause: unknown) {
    const c = cause as SystemErrorLike;
    const code = typeof c?.code === 'string' ? c.code : 'EIO';
    super(code, `${syscall} ${code} ${address}`, { cause, exitCode: ExitCode.TEMPORARY });
    this.syscall = syscall;
    this.address = address;
  }
}

/** A connect that did not complete within its time limit. */
export class ConnectTimeoutError extends TcpkitError {
  readonly address: string;
  readonly timeoutMs: number;
  constructor(address: string, timeoutMs: number) {
    super('ETIMEDOUT', `connect ETIMEDOUT ${address} (no answer within ${timeoutMs} ms)`, {
      exitCode: ExitCode.TEMPORARY,
    });
    this.address = address;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The server closed (or reset) the connection before the client's input ended:
 * UNP's `str_cli: server terminated prematurely`.
 */
export class PrematureCloseError extends TcpkitError {
  constructor(detail?: string, cause?: unknown) {
    super('TCPKIT_PREMATURE_CLOSE', `server terminated prematurely${detail ? ` (${detail})` : ''}`, {
      cause,
      exitCode: ExitCode.PREMATURE,
    });
  }
}

/** A peer broke the protocol of a service (bad bench count, bad PROXY header, ...). */
export class ProtocolError extends TcpkitError {
  constructor(message: string, code = 'TCPKIT_PROTOCOL') {
    super(code, message, { exitCode: ExitCode.USAGE });
  }
}

/**
 * Why a PROXY protocol header was refused (src/net/proxy-protocol.ts):
 * `missing` the connection does not start with a PROXY header; `malformed` it breaks
 * the specification; `version` a version that is not accepted; `oversized` longer
 * than the limit (v1: no CRLF in 107 bytes; v2: 16 + length over the cap);
 * `checksum` its CRC32C TLV does not match; `truncated` the peer closed before the
 * header was complete; `timeout` it did not arrive in time; `busy` too many
 * connections were already waiting for their headers.
 */
export type ProxyFailure = 'missing' | 'malformed' | 'version' | 'oversized' | 'checksum' | 'truncated' | 'timeout' | 'busy' | 'untrusted';

/**
 * A PROXY protocol header that cannot be used. `code` is `TCPKIT_PROXY_` + the
 * reason in capitals (`TCPKIT_PROXY_MALFORMED`); the message says what was wrong:
 * `PROXY v1: bad source address "1.2.3"`. The connection is closed; others go on.
 */
export class ProxyProtocolError extends ProtocolError {
  readonly reason: ProxyFailure;
  constructor(reason: ProxyFailure, message: string) {
    super(message, `TCPKIT_PROXY_${reason.toUpperCase()}`);
    this.reason = reason;
  }
}

/** The server is not in a state that allows the call (listen twice, ...). */
export class StateError extends TcpkitError {
  constructor(message: string) {
    super('TCPKIT_STATE', message, { exitCode: ExitCode.TEMPORARY });
  }
}

/** A process, server or endpoint that was asked for does not exist (`tcpkit status --pid 99999`). Exit 111. */
export class NotFoundError extends TcpkitError {
  constructor(message: string) {
    super('TCPKIT_NOT_FOUND', message, { exitCode: ExitCode.TEMPORARY });
  }
}

/**
 * A configuration file that cannot be used: unreadable, not YAML, or a field that
 * breaks the schema. The message names the file, the field's path and what is
 * wrong: `tcpkit.yaml: services.echo.limits.perSource: must be integer`. Exit 100.
 */
export class ConfigError extends TcpkitError {
  readonly file: string;
  /** The field's path (`services.echo.listen[1]`), or '' for the file as a whole. */
  readonly path: string;
  constructor(file: string, path: string, message: string, cause?: unknown) {
    super('TCPKIT_CONFIG', `${file}: ${path ? `${path}: ` : ''}${message}`, { cause, exitCode: ExitCode.USAGE });
    this.file = file;
    this.path = path;
  }
}

/**
 * The directory for the admin state file cannot be used safely:
 * `admin state directory /tmp/tcpkit-0: is owned by uid 1000, not by this server's uid 0`.
 * The fix is the operator's (remove it, or set TCPKIT_STATE_DIR). Exit 111.
 */
export class StateDirError extends TcpkitError {
  readonly dir: string;
  constructor(dir: string, problem: string, cause?: unknown) {
    super('TCPKIT_STATE_DIR', `admin state directory ${dir}: ${problem}; refusing to write there (remove it or set TCPKIT_STATE_DIR)`, {
      cause,
      exitCode: ExitCode.TEMPORARY,
    });
    this.dir = dir;
  }
}

/** The exit code the CLI should use for any thrown value. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof TcpkitError) return err.exitCode;
  return ExitCode.TEMPORARY;
}

/** An echo came back different from what was sent (load generator, echo and bulk modes). */
export class EchoMismatchError extends TcpkitError {
  /** Offset in the connection's byte stream of the first chunk that differed. */
  readonly offset: number;
  constructor(address: string, offset: number) {
    super('TCPKIT_ECHO_MISMATCH', `echo from ${address} differs from what was sent at byte ${offset}`, {
      exitCode: ExitCode.TEMPORARY,
    });
    this.offset = offset;
  }
}

/** A connected peer stopped making progress for longer than the time limit. */
export class ReadTimeoutError extends TcpkitError {
  readonly address: string;
  readonly timeoutMs: number;
  constructor(address: string, timeoutMs: number) {
    super('ETIMEDOUT', `read ETIMEDOUT ${address} (no progress within ${timeoutMs} ms)`, { exitCode: ExitCode.TEMPORARY });
    this.address = address;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The string code and message of anything thrown, for a log line: the error's own
 * `code` when it has one, else `fallback` (`EIO` for a system call, `TCPKIT_HANDLER`
 * for a service, ...).
 */
export function describeError(err: unknown, fallback: string): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown } | null | undefined;
  return {
    code: typeof e?.code === 'string' ? e.code : fallback,
    message: typeof e?.message === 'string' ? e.message : String(err),
  };
}
