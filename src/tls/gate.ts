/**
 * TlsGate: the TLS handshake on an accepted connection, after its PROXY header (if
 * any) and before admission, wherever connections are accepted (the server's
 * listener, a pool worker's own acceptor). It hands on the TLSSocket and the
 * connection's info with `tls` filled in (../address.ts TlsInfo), or refuses it with
 * one `refuse ... reason tls-REASON` line.
 *
 *   accepted ─► caps (in total, per source: reason tls-busy)
 *            ─► handshake (until --tls-handshake-timeout: reason tls-timeout)
 *            ─► client certificate (require: verified by --tls-ca, else tls-cert)
 *            ─► pass(tlsSocket, info)
 *
 * Bounded cost for hostile peers: at most `maxPending` handshakes wait at once, at
 * most `maxPendingPerSource` from one address, each for at most the timeout; a
 * waiting handshake is a socket OpenSSL reads only when bytes arrive (no timer per
 * byte, no CPU while nothing does). Refusals are folded to one line a second under
 * a flood (TlsRefusals): the first of each second is logged as it is, the count of
 * the rest in one more line when the second is over.
 */
import type { X509Certificate } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import type { ConnectionInfo, TlsInfo } from '../address.js';
import type { ServerEvent } from '../events.js';
import { FoldedLines } from '../net/folded.js';
import { tlsVerifyError } from '../net/internals.js';
import { TlsContexts } from './contexts.js';
import type { TlsMaterial, TlsSettings } from './settings.js';

/** Counters of one gate, as a plain snapshot (summed over processes by the status views). */
export interface TlsStats {
  /** Handshakes completed (resumed ones included). */
  handshakes: number;
  /** Of which resumed a session (a ticket). */
  resumed: number;
  /** Handshakes in progress now. */
  pending: number;
  /** Refused before or during the handshake, by reason (`tls-timeout`, `tls-version`, ...). */
  failures: Record<string, number>;
  /** Completed handshakes by protocol and by cipher. */
  protocols: Record<string, number>;
  ciphers: Record<string, number>;
}

/** An empty TlsStats. */
export function emptyTlsStats(): TlsStats {
  return { handshakes: 0, resumed: 0, pending: 0, failures: {}, protocols: {}, ciphers: {} };
}

/** Add `b` into `a` (a pool's workers' counters into the server's view). */
export function addTlsStats(a: TlsStats, b: TlsStats): TlsStats {
  const add = (x: Record<string, number>, y: Record<string, number>) => {
    for (const [k, v] of Object.entries(y)) x[k] = (x[k] ?? 0) + v;
  };
  a.handshakes += b.handshakes;
  a.resumed += b.resumed;
  a.pending += b.pending;
  add(a.failures, b.failures);
  add(a.protocols, b.protocols);
  add(a.ciphers, b.ciphers);
  return a;
}

/** The refusal's reason from what Node or OpenSSL said. */
export function tlsReason(err: NodeJS.ErrnoException | undefined): string {
  const code = err?.code ?? '';
  const text = `${code} ${err?.message ?? ''}`.toLowerCase();
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'tls-timeout';
  if (/unsupported.protocol|version.too.low|tlsv1.alert.protocol.version|no.protocols.available/.test(text)) return 'tls-version';
  if (/peer.did.not.return.a.certificate|certificate.required/.test(text)) return 'tls-no-cert';
  if (/no.shared.cipher|no.cipher/.test(text)) return 'tls-cipher';
  if (/no.application.protocol/.test(text)) return 'tls-alpn';
  if (/wrong.version.number|http.request|unknown.protocol|packet.length|record.layer|unexpected.message|bad.record|decode.error|length.mismatch|unexpected.record/.test(text)) return 'tls-garbage';
  if (/alert/.test(text)) return 'tls-alert';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'tls-closed';
  return 'tls-handshake';
}

/** A refusal line. */
type RefuseEvent = Extract<ServerEvent, { type: 'refuse' }>;

/**
 * Refusal lines, at most one per REPORT_MS: the first of a second as it is, the rest
 * counted and reported as one more line (the last one's ends and reason, and how many
 * it stands for) when the second is over.
 */
export class TlsRefusals {
  readonly #lines: FoldedLines<RefuseEvent>;

  constructor(emit: (event: RefuseEvent) => void) {
    this.#lines = new FoldedLines((last, n) =>
      emit(n === 0 ? last : { ...last, message: `${n} handshake${n === 1 ? '' : 's'} refused in the last second, folded into this line; the last: ${last.message ?? last.reason}` }),
    );
  }

  refuse(event: RefuseEvent): void {
    this.#lines.take(event);
  }

  /** Report what is still counted; stop the timer. Idempotent. */
  close(): void {
    this.#lines.close();
  }
}

/** What the gate tells its owner. */
export interface TlsGateHandlers {
  /** A completed handshake: the TLSSocket (paused) and the info with `tls` set. */
  pass(socket: tls.TLSSocket, info: ConnectionInfo): void;
  /** A refusal line (already folded). */
  refuse(event: RefuseEvent): void;
  /** A connection left the gate either way (owners that bound what they hold count from here). */
  settled?(): void;
}

/** See the file comment. */
export class TlsGate {
  readonly #settings: TlsSettings;
  readonly #contexts: TlsContexts;
  readonly #handlers: TlsGateHandlers;
  readonly #refusals: TlsRefusals;
  readonly #bySource = new Map<string, number>();
  readonly #waiting = new Set<net.Socket>();
  readonly #stats = emptyTlsStats();
  #settledWaiters: Array<() => void> = [];

  /** Builds the contexts: a bad pair throws (InvalidOptionError from loadTlsMaterial, or OpenSSL's). */
  constructor(settings: TlsSettings, material: TlsMaterial, handlers: TlsGateHandlers) {
    this.#settings = settings;
    this.#contexts = new TlsContexts(settings, material);
    this.#handlers = handlers;
    this.#refusals = new TlsRefusals(handlers.refuse);
  }

  /** Handshakes in progress. */
  get pending(): number {
    return this.#waiting.size;
  }

  /** New material (SIGHUP): new connections get it; a bad pair throws and the old stays. */
  replace(material: TlsMaterial): void {
    this.#contexts.replace(material);
  }

  /** Counters now. */
  stats(): TlsStats {
    return { ...this.#stats, pending: this.#waiting.size, failures: { ...this.#stats.failures }, protocols: { ...this.#stats.protocols }, ciphers: { ...this.#stats.ciphers } };
  }

  /** Take an accepted, identified connection (paused, not yet read). */
  take(raw: net.Socket, info: ConnectionInfo): void {
    const s = this.#settings;
    const source = info.remote.address;
    const fromSource = this.#bySource.get(source) ?? 0;
    if (this.#waiting.size >= s.maxPending || fromSource >= s.maxPendingPerSource) {
      raw.destroy();
      const which = this.#waiting.size >= s.maxPending ? `${s.maxPending} handshakes in progress` : `${fromSource} handshakes in progress from ${source}`;
      this.#fail(info, 'tls-busy', which, false);
      return;
    }
    this.#waiting.add(raw);
    this.#bySource.set(source, fromSource + 1);
    let done = false;
    const leave = () => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      this.#waiting.delete(raw);
      const n = (this.#bySource.get(source) ?? 1) - 1;
      if (n > 0) this.#bySource.set(source, n);
      else this.#bySource.delete(source);
      return true;
    };
    const contexts = this.#contexts;
    const socket = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: contexts.main(),
      // Only with SNI certificates: the callback costs a call into JS on every handshake.
      ...(s.sni.length > 0 && { SNICallback: (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => cb(null, contexts.forName(name)) }),
      requestCert: s.client !== 'none',
      rejectUnauthorized: s.client === 'require',
      ...(s.alpn.length > 0 && { ALPNProtocols: s.alpn }),
    });
    const fail = (reason: string, message: string) => {
      if (!leave()) return;
      socket.destroy();
      raw.destroy();
      this.#fail(info, reason, message, true);
    };
    const timer = setTimeout(() => fail('tls-timeout', `handshake not complete after ${s.handshakeMs} ms`), s.handshakeMs);
    // OpenSSL's message is a whole error-queue line; its `reason` says it in a few words.
    socket.once('error', (err: NodeJS.ErrnoException & { reason?: string }) => fail(tlsReason(err), err.reason ?? err.message.split('\n')[0]!));
    // The peer's FIN ends only its side (the accepted socket is half-open): before the handshake, it is the end.
    socket.once('end', () => fail('tls-closed', 'closed by the peer before the handshake was complete'));
    socket.once('close', () => fail('tls-closed', 'closed by the peer before the handshake was complete'));
    socket.once('secure', () => {
      if (done) return;
      // A certificate sent must verify against --tls-ca (require: and one must be sent; request: an
      // unverified one is refused too, rather than served as if none had been sent).
      const peerCert = s.client !== 'none' ? socket.getPeerX509Certificate() : undefined;
      const verifyError = peerCert ? tlsVerifyError(socket) : null;
      if (verifyError || (s.client === 'require' && !peerCert)) {
        fail('tls-cert', `client certificate not accepted: ${verifyError ? (verifyError.code ?? verifyError.message) : 'none sent'}`);
        return;
      }
      leave();
      socket.removeAllListeners('end');
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      socket.pause();
      const t = describe(socket, peerCert);
      this.#stats.handshakes++;
      if (t.resumed) this.#stats.resumed++;
      this.#stats.protocols[t.protocol] = (this.#stats.protocols[t.protocol] ?? 0) + 1;
      this.#stats.ciphers[t.cipher] = (this.#stats.ciphers[t.cipher] ?? 0) + 1;
      this.#handlers.pass(socket, { ...info, tls: t });
      this.#settled();
    });
  }

  #fail(info: ConnectionInfo, reason: string, message: string, counted: boolean): void {
    this.#stats.failures[reason] = (this.#stats.failures[reason] ?? 0) + 1;
    this.#refusals.refuse({ type: 'refuse', remote: info.remote, local: info.local, reason, message });
    if (counted) this.#settled();
    else this.#handlers.settled?.();
  }

  #settled(): void {
    this.#handlers.settled?.();
    if (this.#waiting.size === 0) {
      const w = this.#settledWaiters;
      this.#settledWaiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves once no handshake is in progress. */
  settled(): Promise<void> {
    if (this.#waiting.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settledWaiters.push(resolve));
  }

  /** Close every handshake in progress; report folded refusals. Idempotent. */
  destroy(): void {
    for (const raw of [...this.#waiting]) raw.destroy();
    this.#refusals.close();
  }
}

/** The TlsInfo of a completed handshake. */
function describe(socket: tls.TLSSocket, peer: X509Certificate | undefined): TlsInfo {
  const cipher = socket.getCipher();
  const t: TlsInfo = { protocol: socket.getProtocol() ?? 'unknown', cipher: cipher?.name ?? 'unknown', resumed: socket.isSessionReused() };
  const servername = (socket as tls.TLSSocket & { servername?: string | false }).servername;
  if (typeof servername === 'string' && servername !== '') t.servername = servername;
  if (typeof socket.alpnProtocol === 'string') t.alpn = socket.alpnProtocol;
  if (peer) t.peer = { subject: oneLine(peer.subject), issuer: oneLine(peer.issuer), fingerprint256: peer.fingerprint256 };
  return t;
}

/** X509Certificate's multi-line name as one line, most specific last as OpenSSL prints it: `C=FR,O=x,CN=y`. */
function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(',');
}
