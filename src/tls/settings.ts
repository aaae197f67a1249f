/**
 * TLS settings: what the option table's `tls*` rows say, checked once (resolveTls),
 * and the material they name (certificates, keys, CA), read once by the process that
 * binds, before it drops privileges (loadTlsMaterial), then handed in memory to the
 * workers that terminate TLS themselves (a pool's, in a message: ../workers/messages.ts
 * `tls`), never as paths they would reopen. SIGHUP reads it again (Server.reloadTls).
 *
 * The settings are plain data (they travel in a worker's spec); the material holds
 * the private keys and travels only in messages, never in a spec, which a prefork
 * worker gets in its environment (readable in /proc, inherited by its programs).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { InvalidOptionError } from '../errors.js';
import { checkChoice, checkNumber, OPTIONS, toTimerMs } from '../options.js';

/** The TLS options of a ServerOptions (library, CLI, config file's `tls:`). Defaults: src/options.ts. */
export interface TlsOptions {
  /** Certificate file (PEM, chain after it). Setting it turns TLS on. Default off. */
  tlsCert?: string;
  /** Its private key (PEM). Needed with tlsCert. */
  tlsKey?: string;
  /** More certificates chosen by SNI: `NAME=CERT,KEY` each. Default none. */
  tlsSni?: readonly string[];
  /** CA certificates (PEM) client certificates are checked against. Default none. */
  tlsCa?: string;
  /** Client certificates: none (default), request, require. */
  tlsClient?: 'none' | 'request' | 'require';
  /** Oldest protocol accepted. Default OPTIONS.tlsMinVersion (TLSv1.2). */
  tlsMinVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list. Default Node's. */
  tlsCiphers?: string;
  /** ALPN protocols offered, in order. Default none. */
  tlsAlpn?: readonly string[];
  /** Seconds between ticket keys; 0: no session tickets. Default OPTIONS.tlsTicketRotate. */
  tlsTicketRotate?: number;
  /** Seconds a handshake may take. Default OPTIONS.tlsHandshakeTimeout. */
  tlsHandshakeTimeout?: number;
  /** Handshakes in progress at once in one accepting process or thread. Default OPTIONS.tlsMaxPending. */
  tlsMaxPending?: number;
  /** Handshakes in progress at once from one address. Default OPTIONS.tlsMaxPendingPerSource. */
  tlsMaxPendingPerSource?: number;
}

/** One SNI entry as given: the name and its files. */
export interface SniFiles {
  name: string;
  cert: string;
  key: string;
}

/** Checked TLS settings: plain data (a worker's spec carries it). */
export interface TlsSettings {
  cert: string;
  key: string;
  sni: SniFiles[];
  ca: string | undefined;
  client: 'none' | 'request' | 'require';
  minVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  ciphers: string | undefined;
  alpn: string[];
  /** Ticket key period in ms; 0: no tickets. */
  ticketRotateMs: number;
  handshakeMs: number;
  maxPending: number;
  maxPendingPerSource: number;
}

/** A certificate and its key, as PEM text. */
export interface KeyPair {
  cert: string;
  key: string;
}

/** What the settings' files hold, read at one moment: held in memory, handed to workers in messages. */
export interface TlsMaterial {
  main: KeyPair;
  sni: Array<KeyPair & { name: string }>;
  ca: string | undefined;
  /** The secret every ticket key is derived from (hex): the same in every worker, so tickets resume anywhere. */
  ticketSeed: string;
}

/** An SNI name: a host name, or `*.` and one. */
const SNI_NAME = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** Parse `NAME=CERT,KEY`. Throws InvalidOptionError naming `label`. */
export function parseSni(text: string, label: string): SniFiles {
  const m = /^([^=]+)=([^,]+),(.+)$/.exec(text);
  if (!m || !SNI_NAME.test(m[1]!)) throw new InvalidOptionError(label, `must be NAME=CERT,KEY (NAME a host name or *.domain), got ${JSON.stringify(text)}`);
  return { name: m[1]!.toLowerCase(), cert: m[2]!, key: m[3]! };
}

/** The options' TLS settings, checked; undefined when TLS is off (no tlsCert). Throws InvalidOptionError naming the field. */
export function resolveTls(o: TlsOptions): TlsSettings | undefined {
  const client = checkChoice('tlsClient', o.tlsClient, OPTIONS.tlsClient.choices) ?? OPTIONS.tlsClient.default;
  const minVersion = checkChoice('tlsMinVersion', o.tlsMinVersion, OPTIONS.tlsMinVersion.choices) ?? OPTIONS.tlsMinVersion.default;
  const ticketRotate = checkNumber('tlsTicketRotate', o.tlsTicketRotate);
  const handshake = checkNumber('tlsHandshakeTimeout', o.tlsHandshakeTimeout);
  const maxPending = checkNumber('tlsMaxPending', o.tlsMaxPending);
  const maxPendingPerSource = checkNumber('tlsMaxPendingPerSource', o.tlsMaxPendingPerSource);
  const str = (name: keyof TlsOptions, v: unknown): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw new InvalidOptionError(name, `must be a file name, got ${JSON.stringify(v)}`);
    return v;
  };
  const list = (name: keyof TlsOptions, v: unknown): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) throw new InvalidOptionError(name, `must be a list of strings, got ${JSON.stringify(v)}`);
    return [...(v as string[])];
  };
  const cert = str('tlsCert', o.tlsCert);
  const key = str('tlsKey', o.tlsKey);
  const ca = str('tlsCa', o.tlsCa);
  const ciphers = o.tlsCiphers === undefined ? undefined : str('tlsCiphers', o.tlsCiphers);
  const sni = list('tlsSni', o.tlsSni).map((t, i) => parseSni(t, `tlsSni[${i}]`));
  const alpn = list('tlsAlpn', o.tlsAlpn);
  if (cert === undefined) {
    const stray = (['tlsKey', 'tlsSni', 'tlsCa', 'tlsCiphers', 'tlsAlpn'] as const).find((n) => o[n] !== undefined) ?? (o.tlsClient !== undefined && o.tlsClient !== 'none' ? 'tlsClient' : undefined);
    if (stray) throw new InvalidOptionError(stray, 'needs tlsCert (TLS is off without a certificate)');
    return undefined;
  }
  if (key === undefined) throw new InvalidOptionError('tlsKey', 'is needed with tlsCert');
  if (client !== 'none' && ca === undefined) throw new InvalidOptionError('tlsClient', `${client} needs tlsCa (the CAs client certificates are checked against)`);
  return {
    cert,
    key,
    sni,
    ca,
    client,
    minVersion,
    ciphers,
    alpn,
    ticketRotateMs: toTimerMs(ticketRotate),
    handshakeMs: toTimerMs(handshake),
    maxPending,
    maxPendingPerSource,
  };
}

/** Read a PEM file; the error names the option and the file. */
function readPem(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new InvalidOptionError(what, `cannot read ${file}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' '), );
  }
}

/**
 * Read every file the settings name, now (before privileges are dropped; again on
 * SIGHUP), and check each pair by building a context from it (a key that does not
 * match its certificate, or text that is not PEM, throws InvalidOptionError naming
 * the option and the file). `ticketSeed`: keep the running one across a reload
 * (tickets stay valid), default a fresh random one.
 */
export function loadTlsMaterial(s: TlsSettings, ticketSeed?: string): TlsMaterial {
  const pair = (cert: string, key: string, what: string): KeyPair => {
    const p = { cert: readPem(cert, what), key: readPem(key, what) };
    try {
      crypto.createPrivateKey(p.key);
      new crypto.X509Certificate(p.cert);
    } catch (err) {
      throw new InvalidOptionError(what, `${cert} / ${key}: ${(err as Error).message}`);
    }
    const x = new crypto.X509Certificate(p.cert);
    if (!x.checkPrivateKey(crypto.createPrivateKey(p.key))) throw new InvalidOptionError(what, `${key} is not the key of the certificate in ${cert}`);
    return p;
  };
  return {
    main: pair(s.cert, s.key, 'tlsCert'),
    sni: s.sni.map((e, i) => ({ name: e.name, ...pair(e.cert, e.key, `tlsSni[${i}]`) })),
    ca: s.ca === undefined ? undefined : readPem(s.ca, 'tlsCa'),
    ticketSeed: ticketSeed ?? crypto.randomBytes(32).toString('hex'),
  };
}
