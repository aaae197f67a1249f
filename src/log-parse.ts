/**
 * A reader for the text log lines `tcpkit serve` writes (docs/log-grammar.md), for scripts and tests that
 * watch a server's stderr: the inverse of `formatEvent`, values decoded once to the text they stood for.
 *
 *     parseLogLine('error where spawn code ENOENT id 2 message "spawn\\x20ENOENT\\x20/tmp/x"')
 *     // { event: 'error', fields: { where: 'spawn', code: 'ENOENT', id: '2', message: 'spawn ENOENT /tmp/x' } }
 */

/** One parsed log line. */
export interface LogLine {
  /** The first word: `accept`, `end`, `error`, ... */
  event: string;
  /** `REMOTE -> LOCAL FAMILY` of a connection event (accept, deny, refuse). */
  conn?: { remote: string; local: string; family: string };
  /** Words that stand alone before the `key value` pairs: `listen`'s LOCAL and FAMILY, `admin`'s URL, `reload`'s `ok`/`failed`. */
  positional: string[];
  /** Every `key value` pair, its value decoded (`\xNN`, `\\`, `\u{N}`) and a quoted one unquoted. */
  fields: Record<string, string>;
}

/** Events whose line starts with `REMOTE -> LOCAL FAMILY`. */
const CONNECTION_EVENTS = new Set(['accept', 'deny', 'refuse']);
/** How many words stand alone after the event name, before the pairs. */
const POSITIONAL: Record<string, number> = { listen: 2, admin: 1, reload: 1 };

/** Undo the log's sanitizing: `\\` is a backslash, `\xNN` a byte-sized code point, `\u{N}` any other. */
export function unescapeLogValue(value: string): string {
  return value.replace(/\\(\\|x([0-9a-f]{2})|u\{([0-9a-f]+)\})/g, (_m, all: string, hex?: string, cp?: string) =>
    hex !== undefined ? String.fromCodePoint(parseInt(hex, 16)) : cp !== undefined ? String.fromCodePoint(parseInt(cp, 16)) : all,
  );
}

/** A value as written: quoted (`"..."`, a free-text message) or not; decoded either way. */
function decode(value: string): string {
  const unquoted = value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  return unescapeLogValue(unquoted);
}

/**
 * Parse one text log line. Throws a SyntaxError naming the line when it does not follow the grammar
 * (a key without a value, a connection event without `->`).
 */
export function parseLogLine(line: string): LogLine {
  const words = line.replace(/\r?\n$/, '').split(' ');
  const event = words.shift() ?? '';
  if (!/^[a-z]+$/.test(event)) throw new SyntaxError(`not a tcpkit log line (no event name): ${JSON.stringify(line)}`);
  const out: LogLine = { event, positional: [], fields: {} };
  if (CONNECTION_EVENTS.has(event)) {
    const [remote, arrow, local, family] = words.splice(0, 4);
    if (arrow !== '->' || !remote || !local || !family) throw new SyntaxError(`${event} line without REMOTE -> LOCAL FAMILY: ${JSON.stringify(line)}`);
    out.conn = { remote, local, family };
  }
  out.positional = words.splice(0, POSITIONAL[event] ?? 0);
  for (let i = 0; i < words.length; i += 2) {
    const key = words[i]!;
    const value = words[i + 1];
    if (value === undefined || !/^[A-Za-z-]+$/.test(key)) throw new SyntaxError(`key ${JSON.stringify(key)} without a value in ${JSON.stringify(line)}`);
    out.fields[key] = decode(value);
  }
  return out;
}
