/**
 * The report channel of a fork child and a fork spare (conn.ts, spare.ts): how what
 * the service says (ctx.log) and how it failed reach the server as structured
 * events, to become the same `error where service ...` lines (sanitized by the log
 * grammar), JSON records and metrics as under the in-process models.
 *
 * The channel is the child's descriptor 2, a pipe the server reads (one descriptor
 * in the server per child, which it needs anyway for the child's own stderr).
 * Two kinds of lines travel on it:
 *
 *     \x1e{"type":"log","reason":"...","code":"..."}\n          a record (encodeReport)
 *     \x1e{"type":"failed","code":"...","message":"...","stack":"..."}\n
 *     anything else                                             the child's own stderr text
 *
 * The server turns a record into the connection's event and any other line into
 * `stderr pid P id I text T`, as it does for an exec'd program's stderr. A record
 * is JSON on one line, so no value in it can end the line early; the child escapes
 * the record mark in everything else written to its stderr (escapeStderr), so only
 * its reporter's lines start with it; and the server checks each record field by
 * field (decodeReport): a line that fails the check is logged as stderr text, never
 * trusted. The server never takes `accept` or `end` from a child: those are its own
 * (the child's pid, its exit status).
 */
import { describeError } from '../errors.js';
import { eachLine } from '../net/programs.js';

/** What a child reports: the service's ctx.log, or its failure (a throw, a rejection, a socket error). */
export type ChildReport =
  | { type: 'log'; reason: string; code: string }
  | { type: 'failed'; code: string; message: string; stack?: string };

/** The byte that starts a record line (ASCII RS): never in the text a child writes on its own. */
export const RECORD_MARK = '\x1e';

/** Longest line read in one piece; a longer one is cut and its pieces are stderr text. 16 KiB. */
export const MAX_REPORT_LINE = 16384;

/** Bounds of a record's fields, so a child cannot make one event carry without end (characters). */
const MAX_CODE = 64;
const MAX_TEXT = 4096;
const MAX_STACK = 8192;

const cut = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max)}...` : s);

/** One record as the line a child writes (mark, JSON, newline), its fields cut to their bounds. */
export function encodeReport(r: ChildReport): string {
  const bounded: ChildReport =
    r.type === 'log'
      ? { type: 'log', reason: cut(r.reason, MAX_TEXT), code: cut(r.code, MAX_CODE) }
      : { type: 'failed', code: cut(r.code, MAX_CODE), message: cut(r.message, MAX_TEXT), ...(r.stack !== undefined && { stack: cut(r.stack, MAX_STACK) }) };
  return `${RECORD_MARK}${JSON.stringify(bounded)}\n`;
}

const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max + 3;

/**
 * A record line (without its newline) as the ChildReport it carries, checked field by
 * field; undefined when it is not one (no mark, not JSON, a field missing, of the
 * wrong type or too long, an unknown type).
 */
export function decodeReport(line: string): ChildReport | undefined {
  if (!line.startsWith(RECORD_MARK)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line.slice(RECORD_MARK.length));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (o.type === 'log' && isText(o.reason, MAX_TEXT) && isText(o.code, MAX_CODE) && o.code !== '') {
    return { type: 'log', reason: o.reason, code: o.code };
  }
  if (o.type === 'failed' && isText(o.code, MAX_CODE) && o.code !== '' && isText(o.message, MAX_TEXT) && (o.stack === undefined || isText(o.stack, MAX_STACK))) {
    return { type: 'failed', code: o.code, message: o.message, ...(o.stack !== undefined && { stack: o.stack as string }) };
  }
  return undefined;
}

/**
 * The server's side: splits what a child writes on its descriptor 2 into lines
 * (bounded: a longer line is cut into MAX_REPORT_LINE pieces, ../net/programs.ts
 * eachLine, as an exec'd program's stderr is read) and hands each on as a record or
 * as text.
 */
export class ReportReader {
  readonly #onReport: (r: ChildReport) => void;
  readonly #onText: (line: string) => void;

  constructor(onReport: (r: ChildReport) => void, onText: (line: string) => void) {
    this.#onReport = onReport;
    this.#onText = onText;
  }

  /** Read a stream to its end; resolves once it ended (or failed) and its last line is out. No stream: at once. */
  read(stream: NodeJS.ReadableStream | null | undefined): Promise<void> {
    return eachLine(stream, MAX_REPORT_LINE, (line) => this.#line(line));
  }

  #line(line: string): void {
    const report = decodeReport(line);
    if (report) this.#onReport(report);
    else this.#onText(line);
  }
}

/** What a fork child or spare gives runService: ctx.log and the failure callback, as records on its stderr. */
export interface ChildReporter {
  log(reason: string, code?: string): void;
  failed(err: unknown): void;
  /**
   * An error nothing caught (an 'uncaughtException' handler): reported as the failure, then
   * exit 1, so that even a crash outside the service's promise is one event, not a stack on stderr.
   */
  fatal(err: unknown): never;
  /** Whether the service failed (the child then exits 1). */
  readonly hasFailed: boolean;
}

/**
 * The child's side, called once at its start: from then on everything else written
 * through process.stderr has the record mark escaped (`\x1e` becomes `\\x1e`), and
 * the returned reporter writes records. Records go through the same stream as the
 * rest, in order; on Linux a pipe's process.stderr writes synchronously, so a record
 * written before process.exit() is in the pipe. Codes as the in-process models
 * use them: ctx.log without a code is `TCPKIT_SERVICE`, a failure without one
 * `TCPKIT_HANDLER` (LocalConnections in connection/local.ts).
 */
export function reportOnStderr(): ChildReporter {
  const stderr = process.stderr;
  const write = stderr.write.bind(stderr) as (chunk: string | Uint8Array, ...rest: unknown[]) => boolean;
  stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => write(escapeStderr(chunk), ...rest)) as typeof stderr.write;
  let failed = false;
  const fail = (err: unknown): void => {
    failed = true;
    const { code, message } = describeError(err, 'TCPKIT_HANDLER');
    const stack = (err as Error | undefined)?.stack;
    write(encodeReport({ type: 'failed', code, message, ...(typeof stack === 'string' && { stack }) }));
  };
  return {
    log: (reason, code) => void write(encodeReport({ type: 'log', reason: String(reason), code: code ?? 'TCPKIT_SERVICE' })),
    failed: fail,
    fatal(err) {
      fail(err);
      process.exit(1);
    },
    get hasFailed() {
      return failed;
    },
  };
}

/** Text a child writes on its own, with every record mark escaped so that no line of it reads as a record. */
export function escapeStderr(chunk: string | Uint8Array): string | Uint8Array {
  if (typeof chunk === 'string') return chunk.includes(RECORD_MARK) ? chunk.replaceAll(RECORD_MARK, '\\x1e') : chunk;
  if (!chunk.includes(0x1e)) return chunk;
  return Buffer.from(Buffer.from(chunk).toString('latin1').replaceAll(RECORD_MARK, '\\x1e'), 'latin1');
}
