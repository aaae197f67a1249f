/**
 * Admission: the one decision on a new connection, the same wherever it is served
 * (the server's pipeline, a pool worker that accepts on its own):
 *
 *   identify ─► access rules ─► per-source place ─► rate ─► id ─► environment
 *   (ends)      `deny`          `refuse per-source`  `refuse rate`  (TCPCONNNUM, the rule's variables)
 *
 * The per-source and rate counts are a SourceLimits, whose table a pool shares with its
 * workers (./source-table.ts), so TCPCONNNUM and the limits count every
 * connection of the service whichever process or thread admits it. The caller logs
 * the refusal it gets back and, for an admitted connection, gives the place back with
 * release() when the connection ends.
 */
import type net from 'node:net';
import { realEndpointsOf, unixSource, type ConnectionEnds, type ConnectionInfo, type Endpoint, type TlsInfo } from '../address.js';
import { fdutil } from '../net/fdutil.js';
import { socketFd } from '../net/internals.js';
import type { ServerEvent } from '../events.js';
import type { AccessRules } from './access.js';
import type { SourceLimits } from './limits.js';

/** An admitted connection: its numbered info, its environment, and its place (give it back with release()). */
export interface Admitted {
  ok: true;
  info: ConnectionInfo;
  env: Readonly<Record<string, string>>;
  place: number;
}

/** A connection not to be served, and the event that says why (`deny` or `refuse`). */
export interface NotAdmitted {
  ok: false;
  event: Extract<ServerEvent, { type: 'deny' | 'refuse' }>;
}

/**
 * Both ends of an accepted socket, or undefined when the peer is already gone (reset
 * before getpeername). `local`: the local end when the listening socket fixes it
 * (acceptedLocal in address.ts; default: getsockname). `announced`: the ends a PROXY
 * header named (the acceptor's handler gets them), which win over both. The id is 0
 * until admitted.
 */
export function identify(socket: net.Socket, local?: Endpoint, announced?: ConnectionEnds): ConnectionInfo | undefined {
  const ends = announced ?? (local?.family === 'unix' ? unixEndsOf(socket, local) : (realEndpointsOf(socket, local) ?? unixEndsOf(socket, local)));
  if (!ends) return undefined;
  const info: ConnectionInfo = { id: 0, local: ends.local, remote: ends.remote, acceptedAt: Date.now() };
  if (announced?.via) info.via = announced.via;
  return info;
}

/**
 * The ends of an accepted UNIX-domain connection: the peer's credentials (SO_PEERCRED: one getsockopt) as
 * the remote end, the listening path as the local one (getsockname only when not known). Undefined when
 * the descriptor is gone or is not a UNIX socket (then it is a TCP socket whose peer already left).
 */
function unixEndsOf(socket: net.Socket, local?: Endpoint): ConnectionEnds | undefined {
  const fd = socketFd(socket);
  if (fd < 0) return undefined;
  let peer: ReturnType<typeof fdutil.unixPeer>;
  try {
    peer = fdutil.unixPeer(fd);
  } catch {
    return undefined;
  }
  return {
    local: local ?? { address: peer.path, port: 0, family: 'unix' },
    remote: { address: '', port: 0, family: 'unix', pid: peer.pid, uid: peer.uid, gid: peer.gid },
  };
}

/** The source a peer counts as for the per-source and rate limits: its address, or a UNIX peer's uid. */
export function sourceOf(remote: Endpoint): string {
  return remote.family === 'unix' ? unixSource(remote.uid ?? -1) : remote.address;
}

/**
 * A TLS connection's variables for its program, named as s6-tlsserver and mod_ssl name
 * them: SSL_PROTOCOL, SSL_CIPHER, SSL_TLS_SNI_SERVERNAME (when the client named one), and
 * with a verified client certificate SSL_PEER_CERT_SUBJECT, _ISSUER and _HASH (SHA-256).
 */
export function tlsEnv(t: TlsInfo | undefined): Record<string, string> {
  if (!t) return {};
  const env: Record<string, string> = { SSL_PROTOCOL: t.protocol, SSL_CIPHER: t.cipher };
  if (t.servername !== undefined) env.SSL_TLS_SNI_SERVERNAME = t.servername;
  if (t.peer) {
    env.SSL_PEER_CERT_SUBJECT = t.peer.subject;
    env.SSL_PEER_CERT_ISSUER = t.peer.issuer;
    env.SSL_PEER_CERT_HASH = t.peer.fingerprint256;
  }
  return env;
}

/** Whether an object has no own enumerable property (a rule without variables): the usual environment is then one literal. */
function isEmpty(o: Readonly<Record<string, string>> | undefined): boolean {
  if (o === undefined) return true;
  for (const _ in o) return false;
  return true;
}

/** See the file comment. `nextId`: the connection ids of the place that serves (the process's sequence, a worker's blocks). */
export class Admission {
  readonly #access: AccessRules;
  readonly #sources: SourceLimits;
  readonly #nextId: () => number;

  constructor(access: AccessRules, sources: SourceLimits, nextId: () => number) {
    this.#access = access;
    this.#sources = sources;
    this.#nextId = nextId;
  }

  /** Decide on an identified connection (its id is ignored: an admitted one gets the next). */
  admit(identified: ConnectionInfo, now = Date.now()): Admitted | NotAdmitted {
    const { remote, local } = identified;
    const decision = remote.family === 'unix' ? this.#access.checkPeer(remote) : this.#access.check(remote.address, identified.tls?.peer);
    if (!decision.ok) return { ok: false, event: { type: 'deny', remote, local, reason: 'access', rule: decision.rule } };
    const place = this.#sources.take(sourceOf(remote), now);
    if (!place.ok) return { ok: false, event: { type: 'refuse', remote, local, reason: place.reason } };
    const info: ConnectionInfo = { id: this.#nextId(), local, remote, acceptedAt: identified.acceptedAt };
    if (identified.via) info.via = identified.via;
    if (identified.tls) info.tls = identified.tls;
    const env = identified.tls === undefined && isEmpty(decision.env) ? { TCPCONNNUM: String(place.count) } : { TCPCONNNUM: String(place.count), ...tlsEnv(identified.tls), ...decision.env };
    return { ok: true, info, env, place: place.place };
  }

  /** The connection ended (or was never served): give its place back. */
  release(place: number): void {
    this.#sources.release(place);
  }
}
