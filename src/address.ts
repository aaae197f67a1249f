/**
 * Addresses: the getsockname / getpeername / sockfd_to_family of tcpkit.
 * Shared by the server, the client and the load generator.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { InvalidOptionError } from './errors.js';

/** `IPv4` or `IPv6`, as Node names address families; `unix` for a UNIX-domain socket (AF_UNIX). */
export type Family = 'IPv4' | 'IPv6' | 'unix';

/**
 * One end of a connection. For a UNIX-domain socket (`family: 'unix'`) `address` is the socket's path
 * (`@name` in the abstract namespace; '' for a peer that bound no name, the usual case) and `port` 0; the
 * remote end of an accepted UNIX connection carries the peer's credentials as the kernel recorded them at
 * connect (SO_PEERCRED): `pid`, `uid`, `gid`. Absent for TCP.
 */
export interface Endpoint {
  address: string;
  port: number;
  family: Family;
  /** UNIX peers only: the connecting process's pid (SO_PEERCRED). */
  pid?: number;
  /** UNIX peers only: its effective uid. */
  uid?: number;
  /** UNIX peers only: its effective gid. */
  gid?: number;
}

/** The prefix that names a UNIX-domain socket address where a TCP one could stand (`unix:/run/x.sock`). */
export const UNIX_PREFIX = 'unix:';

/** Whether `text` names a UNIX-domain socket (`unix:/path`, `unix:@name`). */
export function isUnixAddress(text: string): boolean {
  return text.startsWith(UNIX_PREFIX);
}

/**
 * What is known about an accepted connection: both ends and the family
 * (getsockname and getpeername on the connected socket), plus its sequence number.
 * Plain data, so it crosses process and thread boundaries unchanged.
 */
export interface ConnectionInfo {
  /** Sequence number of the connection in this server, from 1. */
  id: number;
  local: Endpoint;
  remote: Endpoint;
  /** Milliseconds since the epoch when the connection was accepted. */
  acceptedAt: number;
  /** Set when a PROXY protocol header named the ends: the real connection (the balancer's). Default absent. */
  via?: ProxyVia;
  /** Set when TLS was terminated: what the handshake established (src/tls/gate.ts). Default absent. */
  tls?: TlsInfo;
}

/** What a TLS handshake established, for logs, access rules, a handler's `info` and a program's SSL_* variables. */
export interface TlsInfo {
  /** `TLSv1.3`, `TLSv1.2`, ... */
  protocol: string;
  /** OpenSSL's name of the cipher suite (`TLS_AES_256_GCM_SHA384`). */
  cipher: string;
  /** The SNI name the client asked for; absent when it named none. */
  servername?: string;
  /** Whether the session was resumed (a ticket). */
  resumed: boolean;
  /** The ALPN protocol agreed on, if any. */
  alpn?: string;
  /** The client's certificate, when it sent one that --tls-ca verified. */
  peer?: { subject: string; issuer: string; fingerprint256: string };
}

/**
 * The real connection behind a PROXY protocol header: `remote` is the balancer
 * (getpeername), `local` our own address (getsockname), `version` the header's.
 * The connection's `remote`/`local` are then what the header said.
 */
export interface ProxyVia {
  remote: Endpoint;
  local: Endpoint;
  version: 1 | 2;
}

/** The ends of a connection as the server should see them. */
export interface ConnectionEnds {
  local: Endpoint;
  remote: Endpoint;
  via?: ProxyVia;
}

/** The seed's SERV_PORT (unp.h): greater than 5000, less than 49152, not registered. */
export const SERV_PORT = 9877;

/** Format an endpoint as `host:port`, with IPv6 literals in brackets: `[::1]:9877`. */
export function formatAddress(address: string, port: number): string {
  return net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * `formatAddress` for an Endpoint. A UNIX socket is `unix:/run/x.sock` (`unix:@name`); a UNIX peer with
 * credentials is `uid=1000,gid=1000,pid=4321` (a peer has no name of its own: who it is, is what counts).
 */
export function formatEndpoint(e: Endpoint): string {
  if (e.family !== 'unix') return formatAddress(e.address, e.port);
  if (e.uid !== undefined) return `uid=${e.uid},gid=${e.gid ?? -1},pid=${e.pid ?? 0}`;
  return `${UNIX_PREFIX}${e.address}`;
}

/** The source a UNIX peer counts as for --per-source and --rate: its uid (`uid:1000`). */
export function unixSource(uid: number): string {
  return `uid:${uid}`;
}

/** The family of an IP literal, or undefined for a name. */
export function familyOf(address: string): Family | undefined {
  const v = net.isIP(address);
  return v === 4 ? 'IPv4' : v === 6 ? 'IPv6' : undefined;
}

/**
 * Validate a port: an integer 0..65535 (0 asks the kernel to choose).
 * Accepts numbers and decimal strings; throws InvalidOptionError naming `option`.
 */
export function parsePort(value: unknown, option = 'port'): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new InvalidOptionError(option, `must be an integer from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return n;
}

/**
 * Check a host to bind as written by a user, and return the form to pass to
 * listen(): `[::1]` loses its brackets (as in `[::1]:7`); an empty string,
 * whitespace or control characters, and an IPv6 zone (`fe80::1%eth9`) that names
 * no interface of this machine are refused. An empty host would make Node bind
 * every interface, and an unknown zone is silently dropped by the resolver: both
 * would serve somewhere other than asked. Throws InvalidOptionError naming `option`.
 */
export function checkHost(host: string, option = 'host'): string {
  const bare = /^\[([^\]]*)\]$/.exec(host)?.[1] ?? host;
  if (bare === '') {
    throw new InvalidOptionError(option, `empty address ${JSON.stringify(host)} (give 0.0.0.0 or :: to bind every interface)`);
  }
  if (/[\s\x00-\x1f\x7f]/.test(bare)) {
    throw new InvalidOptionError(option, `address ${JSON.stringify(host)} contains white space or control characters`);
  }
  const zone = bare.indexOf('%');
  if (zone >= 0) {
    const name = bare.slice(zone + 1);
    if (!net.isIPv6(bare) || !knownInterface(name)) {
      throw new InvalidOptionError(option, `address ${JSON.stringify(host)}: zone ${JSON.stringify(name)} is not a network interface of this machine`);
    }
  }
  return bare;
}

/** An interface name or index this machine has (for IPv6 zones). */
function knownInterface(zone: string): boolean {
  if (zone === '' || zone.includes('/') || zone === '.' || zone === '..') return false;
  if (/^\d+$/.test(zone)) {
    const index = Number(zone);
    return interfaceNames().some((n) => interfaceIndex(n) === index);
  }
  return interfaceNames().includes(zone);
}

function interfaceNames(): string[] {
  try {
    return fs.readdirSync('/sys/class/net');
  } catch {
    return Object.keys(os.networkInterfaces());
  }
}

function interfaceIndex(name: string): number | undefined {
  try {
    return Number(fs.readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/**
 * Parse `host:port`, `[v6]:port`, `:port` or a bare port into parts.
 * A missing host is `defaultHost`; names are kept as given (resolved by the caller).
 */
export function parseHostPort(text: string, defaultHost: string, option = 'address'): { host: string; port: number } {
  const s = text.trim();
  let host: string;
  let port: string;
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    port = bracket[2]!;
  } else if (/^\d+$/.test(s)) {
    host = defaultHost;
    port = s;
  } else {
    const i = s.lastIndexOf(':');
    if (i < 0 || s.indexOf(':') !== i) {
      throw new InvalidOptionError(option, `expected HOST:PORT or [IPv6]:PORT, got ${JSON.stringify(text)}`);
    }
    host = s.slice(0, i) || defaultHost;
    port = s.slice(i + 1);
  }
  return { host, port: parsePort(port, option) };
}

/**
 * Both ends of a connected socket as getsockname + getpeername report them, ignoring any
 * PROXY header: one system call each (Node caches both on the socket). With `local` (what
 * acceptedLocal() gives for the listening socket), getsockname is not called at all.
 */
export function realEndpointsOf(socket: net.Socket, local?: Endpoint): { local: Endpoint; remote: Endpoint } | undefined {
  // getpeername: Node fills address, port and family in one call.
  const { remoteAddress, remotePort } = socket;
  if (remoteAddress === undefined || remotePort === undefined) return undefined;
  const family: Family = (socket.remoteFamily as Family | undefined) ?? familyOf(remoteAddress) ?? 'IPv4';
  const remote: Endpoint = { address: remoteAddress, port: remotePort, family };
  if (local) return { local, remote };
  // getsockname: socket.address() is the same cached call as localAddress/localPort, with the family.
  const a = socket.address() as Partial<net.AddressInfo>;
  if (a.address === undefined || a.port === undefined) return undefined;
  return { local: { address: a.address, port: a.port, family: (a.family as Family | undefined) ?? familyOf(a.address) ?? family }, remote };
}

/**
 * The local end every connection accepted on a socket listening at `listening` has, or
 * undefined when it varies: a socket bound to one address (127.0.0.1:9877, [::1]:9877)
 * accepts only connections to that address and port, so its connections' getsockname
 * is known without asking; one bound to a wildcard (0.0.0.0, ::) accepts for every local
 * address, and each connection must be asked. Used to spare a system call per connection.
 */
export function acceptedLocal(listening: Endpoint): Endpoint | undefined {
  // A UNIX socket accepts on its one path.
  if (listening.family === 'unix') return listening;
  const { address } = listening;
  if (address === '0.0.0.0' || address === '::' || net.isIP(address) === 0 || address.startsWith('::ffff:')) return undefined;
  return { address, port: listening.port, family: listening.family };
}

/**
 * Both ends of a connected socket (getsockname + getpeername), or undefined if it is
 * already gone. What a PROXY header named is not here: it travels with the connection
 * (the acceptor's handler gets it, admission puts it in the ConnectionInfo).
 */
export function endpointsOf(socket: net.Socket): ConnectionEnds | undefined {
  return realEndpointsOf(socket);
}

/**
 * Make text from a peer or the network safe for a one-line log: printable ASCII
 * stays, everything else (spaces, controls, non-ASCII) becomes `\xNN`, and the
 * result is cut at `max` characters so a hostile peer cannot forge or flood lines.
 */
export function sanitize(text: string, max = 256): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c > 0x20 && c < 0x7f && ch !== '\\') out += ch;
    else if (ch === '\\') out += '\\\\';
    else if (c <= 0xff) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += `\\u{${c.toString(16)}}`;
    if (out.length >= max) return `${out.slice(0, max)}...`;
  }
  return out;
}
