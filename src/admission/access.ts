/**
 * Access rules, as tcprules has them: an ordered list of `allow` and `deny` rules
 * on addresses and CIDR blocks, IPv4 and IPv6; the first rule that matches the
 * peer decides, and an allow rule may add environment variables for the program
 * an exec service runs (tcprules' `=VAR=value` instructions).
 *
 * Every address is compared as 16 bytes: an IPv4 address is its IPv4-mapped IPv6
 * form (`::ffff:a.b.c.d`), so a rule `127.0.0.0/8` matches a peer that a
 * dual-stack listener reports as `::ffff:127.0.0.2`, and the same rule list
 * serves IPv4 and IPv6 listeners.
 *
 * When no rule matches: denied if the list has any allow rule (it is an allow
 * list), allowed otherwise (a pure deny list, or no rules at all). Write
 * `allow: all` or `deny: all` last to say it explicitly.
 */
import net from 'node:net';
import type { Endpoint } from '../address.js';
import { InvalidOptionError } from '../errors.js';
import { lookupGroup, lookupUser } from '../super/privileges.js';

/** One rule as written in a config file or on the command line. */
export interface AccessRuleSpec {
  /** `allow` or `deny`. */
  action: 'allow' | 'deny';
  /**
   * An address (`127.0.0.1`, `::1`), a CIDR block (`127.0.0.0/8`, `fe80::/10`) or `all`; for UNIX-domain
   * peers `uid:N`, `gid:N`, `user:NAME` or `group:NAME`.
   */
  from: string;
  /** Environment variables added for exec programs when this rule allows (default none). */
  env?: Record<string, string>;
  /**
   * TLS: the rule matches only a connection whose verified client certificate has this
   * subject (as SSL_PEER_CERT_SUBJECT writes it: `CN=client one`) or this SHA-256
   * fingerprint (as SSL_PEER_CERT_HASH: hex pairs, colons and case optional). Default: any
   * connection (with or without a certificate).
   */
  cert?: string;
}

/** What a rule with `cert` compares: the client certificate a TLS handshake verified. */
export interface PeerCertificate {
  subject: string;
  fingerprint256: string;
}

/** A compiled rule. */
interface Rule {
  action: 'allow' | 'deny';
  bytes: Uint8Array;
  prefix: number;
  env: Readonly<Record<string, string>>;
  /** The rule as logged: `deny:127.0.0.2/32`, without spaces (`+cert` when it names a certificate). */
  text: string;
  /** A UNIX peer rule: which credential it compares, and with what; absent for address rules and `all`. */
  cred?: { field: 'uid' | 'gid'; id: number };
  /** The certificate it asks for: a fingerprint (64 hex digits, upper case, no colons) or a subject. */
  cert?: { fingerprint?: string; subject?: string };
}

/** A certificate fingerprint as a rule compares it: upper-case hex, no colons; undefined when `text` is not one. */
function fingerprintOf(text: string): string | undefined {
  const hex = text.replace(/:/g, '').toUpperCase();
  return /^[0-9A-F]{64}$/.test(hex) ? hex : undefined;
}

/** The decision on one peer. */
export type AccessDecision =
  | { ok: true; env: Readonly<Record<string, string>>; rule: string }
  | { ok: false; rule: string };

const V4_MAPPED_PREFIX = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function parseV4(text: string): number[] | undefined {
  if (!net.isIPv4(text)) return undefined;
  return text.split('.').map(Number);
}

/**
 * An IP literal as 16 bytes (IPv4 as IPv4-mapped IPv6); undefined if it is not one.
 * A zone (`fe80::1%eth0`) is ignored.
 */
export function ipBytes(address: string): Uint8Array | undefined {
  const text = address.replace(/%.*$/, '');
  const v4 = parseV4(text);
  if (v4) return Uint8Array.from([...V4_MAPPED_PREFIX, ...v4]);
  if (!net.isIPv6(text)) return undefined;
  let tail: number[] = [];
  let body = text;
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) is two groups.
  const lastColon = body.lastIndexOf(':');
  const maybeV4 = parseV4(body.slice(lastColon + 1));
  if (maybeV4) {
    tail = maybeV4;
    body = `${body.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = body.split('::') as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const r = groups(rest);
  const all = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tail.length) out.set(tail, 12);
  return out;
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; any other address unchanged. UCSPI programs see IPv4 peers as IPv4. */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

function matches(rule: Rule, peer: Uint8Array, cert: PeerCertificate | undefined): boolean {
  if (rule.cert) {
    if (!cert) return false;
    if (rule.cert.fingerprint !== undefined ? fingerprintOf(cert.fingerprint256) !== rule.cert.fingerprint : cert.subject !== rule.cert.subject) return false;
  }
  let bits = rule.prefix;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((peer[i]! & mask) !== (rule.bytes[i]! & mask)) return false;
  }
  return true;
}

/** An environment variable name a rule may set: a portable shell name. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Compile one rule; throws InvalidOptionError naming `where` (`access[2].allow`, `--deny`). */
function compile(spec: AccessRuleSpec, where: string): Rule {
  // Names first, under every rule (`all` included): a name like `LD_PRELOAD=/x.so X` must never reach a program.
  for (const [name, value] of Object.entries(spec.env ?? {})) {
    if (!ENV_NAME.test(name) || typeof value !== 'string') {
      throw new InvalidOptionError(`${where}.env`, `${JSON.stringify(name)} is not NAME=string`);
    }
  }
  let cert: Rule['cert'];
  if (spec.cert !== undefined) {
    if (typeof spec.cert !== 'string' || spec.cert.trim() === '') throw new InvalidOptionError(`${where}.cert`, `must be a certificate subject or SHA-256 fingerprint, got ${JSON.stringify(spec.cert)}`);
    const fingerprint = fingerprintOf(spec.cert.trim());
    cert = fingerprint !== undefined ? { fingerprint } : { subject: spec.cert.trim() };
  }
  const certText = cert ? '+cert' : '';
  const from = spec.from.trim();
  if (from === 'all' || from === '*') {
    return { action: spec.action, bytes: new Uint8Array(16), prefix: 0, env: spec.env ?? {}, text: `${spec.action}:all${certText}`, ...(cert && { cert }) };
  }
  const cred = /^(uid|gid|user|group):(.+)$/.exec(from);
  if (cred) {
    const [, kind, name] = cred as unknown as [string, 'uid' | 'gid' | 'user' | 'group', string];
    const numeric = /^\d+$/.test(name) ? Number(name) : undefined;
    if ((kind === 'uid' || kind === 'gid') && (numeric === undefined || numeric > 0xffffffff)) {
      throw new InvalidOptionError(where, `${kind}: takes a number, got ${JSON.stringify(spec.from)}`);
    }
    const field = kind === 'uid' || kind === 'user' ? 'uid' : 'gid';
    const id = kind === 'user' ? lookupUser(name, where).uid : kind === 'group' ? lookupGroup(name, where) : numeric!;
    return { action: spec.action, bytes: new Uint8Array(16), prefix: 0, env: spec.env ?? {}, text: `${spec.action}:${field}:${id}`, cred: { field, id } };
  }
  const [addr, len, extra] = from.split('/');
  const bytes = addr === undefined ? undefined : ipBytes(addr);
  if (!bytes || extra !== undefined) {
    throw new InvalidOptionError(where, `expected an IP address, ADDRESS/PREFIX, uid:N, gid:N, user:NAME, group:NAME or "all", got ${JSON.stringify(spec.from)}`);
  }
  const isV4 = net.isIPv4(addr!);
  const max = isV4 ? 32 : 128;
  let prefix = max;
  if (len !== undefined) {
    if (!/^\d+$/.test(len) || Number(len) > max) {
      throw new InvalidOptionError(where, `prefix length must be 0 to ${max}, got ${JSON.stringify(spec.from)}`);
    }
    prefix = Number(len);
  }
  return {
    action: spec.action,
    bytes,
    // An IPv4 prefix counts from the start of the mapped address's last 32 bits.
    prefix: isV4 ? prefix + 96 : prefix,
    env: spec.env ?? {},
    text: `${spec.action}:${addr}/${prefix}${certText}`,
    ...(cert && { cert }),
  };
}

/** The decision of an empty rule list, shared (frozen: callers only read it). */
const ALLOW_ALL: AccessDecision = Object.freeze({ ok: true as const, env: Object.freeze({}), rule: 'default-allow' });

/** A compiled, ordered rule list. Immutable; a reload builds a new one. */
export class AccessRules {
  readonly #rules: Rule[];
  readonly #defaultAllow: boolean;
  /** The specs it was built from (for equality on reload and for status views). */
  readonly specs: readonly AccessRuleSpec[];

  /** Compile `specs`; `where` names them in errors (default `access`). */
  constructor(specs: readonly AccessRuleSpec[] = [], where = 'access') {
    this.specs = specs;
    this.#rules = specs.map((s, i) => compile(s, `${where}[${i}].${s.action}`));
    this.#defaultAllow = !this.#rules.some((r) => r.action === 'allow');
  }

  /** Whether there are no rules (every peer allowed, nothing added). */
  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /**
   * Decide on a peer address (IPv4, IPv6 or IPv4-mapped IPv6) and, over TLS, its verified
   * client certificate (rules with `cert` match only that): the first matching rule wins.
   */
  check(address: string, cert?: PeerCertificate): AccessDecision {
    // No rules (the usual case): nothing to parse, one shared answer.
    if (this.#rules.length === 0) return ALLOW_ALL;
    const peer = ipBytes(address);
    if (peer) {
      for (const rule of this.#rules) {
        if (rule.cred || !matches(rule, peer, cert)) continue;
        return rule.action === 'allow' ? { ok: true, env: rule.env, rule: rule.text } : { ok: false, rule: rule.text };
      }
    }
    return this.#defaultAllow ? { ok: true, env: {}, rule: 'default-allow' } : { ok: false, rule: 'default-deny' };
  }

  /**
   * Decide on a UNIX-domain peer by its credentials (Endpoint uid/gid, from SO_PEERCRED): the first `uid:`,
   * `gid:` (the peer's effective gid), `user:`, `group:` or `all` rule that matches wins; address rules are skipped.
   */
  checkPeer(remote: Pick<Endpoint, 'uid' | 'gid'>): AccessDecision {
    if (this.#rules.length === 0) return ALLOW_ALL;
    for (const rule of this.#rules) {
      const hit = rule.cred ? remote[rule.cred.field] === rule.cred.id : rule.prefix === 0 && rule.text.endsWith(':all');
      if (!hit) continue;
      return rule.action === 'allow' ? { ok: true, env: rule.env, rule: rule.text } : { ok: false, rule: rule.text };
    }
    return this.#defaultAllow ? { ok: true, env: {}, rule: 'default-allow' } : { ok: false, rule: 'default-deny' };
  }
}
