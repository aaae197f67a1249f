/**
 * TlsContexts: the secure contexts one process serves with, built from the material
 * (./settings.ts) it holds in memory: one for --tls-cert, one per SNI name, each with
 * the current session-ticket key.
 *
 * Ticket keys rotate every `ticketRotateMs` without any message between processes:
 * the key of period N is derived from the material's secret seed and N (HMAC-SHA256),
 * so every pool worker computes the same key and a ticket issued by one resumes on
 * another. Node's context holds one ticket key, so a ticket issued just before a
 * period ends resumes no more after it (a full handshake then): the price of a key
 * that never lives longer than one period.
 */
import crypto from 'node:crypto';
import tls from 'node:tls';
import type { TlsMaterial, TlsSettings } from './settings.js';

/** The contexts of one period: the default and the SNI names' (exact, then `*.` wildcard). */
interface Period {
  n: number;
  main: tls.SecureContext;
  exact: Map<string, tls.SecureContext>;
  wildcard: Map<string, tls.SecureContext>;
}

/** See the file comment. */
export class TlsContexts {
  readonly #settings: TlsSettings;
  #material: TlsMaterial;
  #period: Period | undefined;

  /** Builds the contexts now: a pair OpenSSL refuses throws (the error names the SNI name or the main pair). */
  constructor(settings: TlsSettings, material: TlsMaterial) {
    this.#settings = settings;
    this.#material = material;
    this.#period = this.#build(this.#periodNumber(), material);
  }

  /** Replace the material (SIGHUP): builds first, so a bad pair throws and the old contexts stay. */
  replace(material: TlsMaterial): void {
    this.#period = this.#build(this.#periodNumber(), material);
    this.#material = material;
  }

  /** The default context (for a client that names no SNI or an unknown one). */
  main(): tls.SecureContext {
    return this.#current().main;
  }

  /** The context for an SNI name: exact match, then `*.rest` for one label, then the default. */
  forName(servername: string): tls.SecureContext {
    const p = this.#current();
    const name = servername.toLowerCase();
    const exact = p.exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    return (dot > 0 && p.wildcard.get(name.slice(dot + 1))) || p.main;
  }

  #periodNumber(): number {
    const ms = this.#settings.ticketRotateMs;
    return ms > 0 ? Math.floor(Date.now() / ms) : 0;
  }

  #current(): Period {
    const n = this.#periodNumber();
    if (this.#period === undefined || this.#period.n !== n) this.#period = this.#build(n, this.#material);
    return this.#period;
  }

  /** 48 bytes of ticket key for period `n` (Node: 16 name, 16 HMAC secret, 16 AES key). */
  #ticketKeys(seed: string, n: number): Buffer {
    const h = (label: string) => crypto.createHmac('sha256', Buffer.from(seed, 'hex')).update(`tcpkit ticket ${n} ${label}`).digest();
    return Buffer.concat([h('a'), h('b')]).subarray(0, 48);
  }

  #build(n: number, m: TlsMaterial): Period {
    const s = this.#settings;
    const tickets = s.ticketRotateMs > 0;
    const common: tls.SecureContextOptions = {
      minVersion: s.minVersion,
      ...(s.ciphers !== undefined && { ciphers: s.ciphers }),
      ...(m.ca !== undefined && { ca: m.ca }),
      ...(tickets
        ? { ticketKeys: this.#ticketKeys(m.ticketSeed, n), sessionTimeout: Math.max(1, Math.floor(s.ticketRotateMs / 1000)) }
        : { secureOptions: crypto.constants.SSL_OP_NO_TICKET }),
    };
    const make = (cert: string, key: string) => tls.createSecureContext({ ...common, cert, key });
    const exact = new Map<string, tls.SecureContext>();
    const wildcard = new Map<string, tls.SecureContext>();
    for (const e of m.sni) {
      const ctx = make(e.cert, e.key);
      if (e.name.startsWith('*.')) wildcard.set(e.name.slice(2), ctx);
      else exact.set(e.name, ctx);
    }
    return { n, main: make(m.main.cert, m.main.key), exact, wildcard };
  }
}
