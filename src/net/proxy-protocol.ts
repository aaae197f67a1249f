/**
 * The PROXY protocol, versions 1 and 2, exactly as HAProxy's proxy-protocol.txt
 * (2020/03/05) specifies it: a header a load balancer puts in front of the bytes of
 * a connection it relays, naming the client it came from and the address the
 * client connected to, which getpeername and getsockname can no longer tell.
 *
 * This file is pure: `parseProxyHeader(bytes)` decides from the bytes seen so far
 * whether a header is complete, still incomplete, or invalid, and never looks past
 * the header's limit (v1: 107 bytes; v2: 16 + its length, at most `v2Limit`).
 * Malformed input never throws: it comes back as a ProxyProtocolError naming what
 * was wrong. Reading the bytes off a socket without taking the client's data is
 * src/net/proxy-gate.ts.
 *
 *   v1   "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"          (text, <= 107 bytes)
 *   v2   \r\n\r\n\0\r\nQUIT\n | ver<<4|cmd | fam<<4|proto | len (u16) | addresses | TLVs
 */
import net from 'node:net';
import type { Endpoint } from '../address.js';
import { ProxyProtocolError, type ProxyFailure } from '../errors.js';
import { DEFAULT_V2_LIMIT } from '../options.js';

/** Longest v1 line including CRLF ("PROXY UNKNOWN" with two full IPv6 addresses and ports). */
export const V1_MAX_LENGTH = 107;

/** The 12-byte v2 signature; it contains a NUL byte, so never treat it as a string. */
export const V2_SIGNATURE: Readonly<Buffer> = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

// The longest v2 header the format allows (16 bytes plus a 16-bit length) and the default cap on one
// are the proxyV2Limit option's bounds, stated in the option table.
export { DEFAULT_V2_LIMIT, V2_MAX_LENGTH } from '../options.js';

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

/** Registered TLV types the parser acts on (the others are returned, not interpreted). */
export const PP2_TYPE_CRC32C = 0x03;

/** A v2 Type-Length-Value: returned to the library, never interpreted except CRC32C. */
export interface ProxyTlv {
  type: number;
  value: Buffer;
}

/** A complete, valid PROXY header. */
export interface ProxyHeader {
  version: 1 | 2;
  /**
   * `PROXY`: relayed on behalf of a client. `LOCAL` (v2 only): the balancer's own
   * connection, e.g. a health check; the real connection's ends apply.
   */
  command: 'PROXY' | 'LOCAL';
  /**
   * What the header says was proxied: v1 `TCP4`, `TCP6` or `UNKNOWN`; v2 `TCP4`,
   * `UDP4`, `TCP6`, `UDP6`, `UNIX_STREAM`, `UNIX_DGRAM` or `UNSPEC`.
   */
  protocol: string;
  /**
   * The client and the address it connected to, when the header carries TCP
   * addresses and the command is PROXY. Undefined otherwise (LOCAL, UNKNOWN,
   * UNSPEC, UDP, UNIX): the specification then has the receiver use the real
   * connection's ends, as if there were no header.
   */
  source?: Endpoint;
  destination?: Endpoint;
  /** v2 TLVs after the addresses, in order (always empty for v1). */
  tlvs: ProxyTlv[];
  /** Bytes the header takes on the wire, CRLF or TLVs included: what the receiver must consume. */
  length: number;
}

/** What the bytes seen so far amount to. */
export type ProxyParse =
  /** Not enough bytes yet; look again with up to `need` bytes (more would not be read). */
  | { state: 'incomplete'; need: number }
  | { state: 'complete'; header: ProxyHeader }
  | { state: 'invalid'; error: ProxyProtocolError };

/** Options of parseProxyHeader. */
export interface ProxyParseOptions {
  /** Versions accepted. Default both, `[1, 2]` (HAProxy's `accept-proxy` does the same). */
  versions?: ReadonlyArray<1 | 2>;
  /** Largest v2 header accepted, 16 + length, in bytes. Default DEFAULT_V2_LIMIT (4096); at most V2_MAX_LENGTH. */
  v2Limit?: number;
}

const invalid = (reason: ProxyFailure, message: string): ProxyParse => ({
  state: 'invalid',
  error: new ProxyProtocolError(reason, message),
});

/** How the first bytes read: each byte that matches neither signature ends the search. */
function isPrefixOf(bytes: Uint8Array, signature: Readonly<Buffer>): boolean {
  const n = Math.min(bytes.length, signature.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== signature[i]) return false;
  return true;
}

/** Up to 16 peer bytes as a JSON string (control bytes escaped), for an error message. */
function shown(bytes: Uint8Array): string {
  return JSON.stringify(Buffer.from(bytes.subarray(0, 16)).toString('latin1'));
}

/**
 * Decide what `bytes` (the first bytes of a connection) hold. Reads at most
 * V1_MAX_LENGTH bytes of a v1 header and at most 16 + length (capped by `v2Limit`)
 * of a v2 one; bytes after the header are the client's and are never looked at.
 * Never throws for any input.
 */
export function parseProxyHeader(bytes: Uint8Array, options: ProxyParseOptions = {}): ProxyParse {
  const versions = options.versions ?? [1, 2];
  const v2Limit = options.v2Limit ?? DEFAULT_V2_LIMIT;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maybeV2 = isPrefixOf(buf, V2_SIGNATURE);
  const maybeV1 = isPrefixOf(buf, V1_PREFIX);
  if (!maybeV1 && !maybeV2) {
    return invalid('missing', `no PROXY header: the connection starts with ${shown(buf)}`);
  }
  if (maybeV1 && maybeV2) return { state: 'incomplete', need: V1_MAX_LENGTH }; // nothing seen yet
  if (maybeV2) {
    if (!versions.includes(2)) return invalid('version', 'PROXY v2 header, but only v1 is accepted');
    return parseV2(buf, v2Limit);
  }
  if (buf.length < V1_PREFIX.length) return { state: 'incomplete', need: V1_MAX_LENGTH };
  if (!versions.includes(1)) return invalid('version', 'PROXY v1 header, but only v2 is accepted');
  return parseV1(buf);
}

// ---- version 1 ---------------------------------------------------------------------------------

/** Exactly 4 decimal integers 0..255 separated by single dots, no heading zeroes. */
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)){3}$/;
/** Decimal 0..65535 without heading zeroes (range checked after). */
const PORT = /^(?:0|[1-9]\d{0,4})$/;

function v1Address(text: string, family: 'IPv4' | 'IPv6'): string | undefined {
  if (family === 'IPv4') return IPV4.test(text) ? text : undefined;
  // Hex groups and colons (an IPv4 tail as inet_pton allows it); no zone index. Node
  // validates the 128 bits and the single "::"; SocketAddress gives the canonical form.
  if (text.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(text) || !net.isIPv6(text)) return undefined;
  return new net.SocketAddress({ address: text, family: 'ipv6' }).address;
}

function v1Port(text: string): number | undefined {
  return PORT.test(text) && Number(text) <= 65535 ? Number(text) : undefined;
}

/** Bytes a TCP4/TCP6 line may hold before its CR: digits, hex letters, '.', ':' and spaces. */
function isAddressLineByte(b: number): boolean {
  return (b >= 0x30 && b <= 0x3a) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66) || b === 0x2e || b === 0x20;
}

function parseV1(buf: Buffer): ProxyParse {
  const window = buf.subarray(0, V1_MAX_LENGTH);
  // The line ends at the first CR, which must be followed by LF: a lone CR or LF never ends it.
  const cr = window.indexOf(0x0d);
  // A TCP4/TCP6 line can be refused at its first impossible byte (a lone LF, a NUL, a
  // letter), without waiting for a CRLF that would not make it valid.
  const tcp = /^PROXY TCP[46] /.test(window.toString('latin1', 0, 11));
  if (tcp) {
    const end = cr < 0 ? window.length : cr;
    for (let i = 11; i < end; i++) {
      if (!isAddressLineByte(window[i]!)) {
        return invalid('malformed', `PROXY v1: byte 0x${window[i]!.toString(16).padStart(2, '0')} at offset ${i} cannot be part of a ${window.toString('latin1', 6, 10)} line`);
      }
    }
  }
  if (cr < 0) {
    if (window.length >= V1_MAX_LENGTH) {
      return invalid('oversized', `PROXY v1: no CRLF within the first ${V1_MAX_LENGTH} bytes`);
    }
    return { state: 'incomplete', need: V1_MAX_LENGTH };
  }
  if (cr + 1 >= window.length) {
    // CR seen, LF not yet; a CR at byte 107 leaves no room for the LF.
    if (cr + 1 >= V1_MAX_LENGTH) return invalid('oversized', `PROXY v1: no CRLF within the first ${V1_MAX_LENGTH} bytes`);
    return { state: 'incomplete', need: V1_MAX_LENGTH };
  }
  if (window[cr + 1] !== 0x0a) return invalid('malformed', 'PROXY v1: CR not followed by LF');
  const length = cr + 2;
  const line = window.toString('latin1', 0, cr);
  const fields = line.split(' ');
  const protocol = fields[1] ?? '';
  if (protocol === 'UNKNOWN') {
    // "the receiver must ignore anything presented before the CRLF is found"
    return { state: 'complete', header: { version: 1, command: 'PROXY', protocol, tlvs: [], length } };
  }
  if (protocol !== 'TCP4' && protocol !== 'TCP6') {
    return invalid('malformed', `PROXY v1: unknown protocol ${JSON.stringify(protocol)} (TCP4, TCP6 or UNKNOWN)`);
  }
  if (fields.length !== 6) {
    return invalid('malformed', `PROXY v1: expected "PROXY ${protocol} SRC DST SPORT DPORT" with single spaces, got ${fields.length} fields`);
  }
  const family = protocol === 'TCP4' ? 'IPv4' : 'IPv6';
  const [, , src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  const srcAddress = v1Address(src, family);
  if (srcAddress === undefined) return invalid('malformed', `PROXY v1: bad ${family} source address ${JSON.stringify(src)}`);
  const dstAddress = v1Address(dst, family);
  if (dstAddress === undefined) return invalid('malformed', `PROXY v1: bad ${family} destination address ${JSON.stringify(dst)}`);
  const srcPort = v1Port(sport);
  if (srcPort === undefined) return invalid('malformed', `PROXY v1: bad source port ${JSON.stringify(sport)}`);
  const dstPort = v1Port(dport);
  if (dstPort === undefined) return invalid('malformed', `PROXY v1: bad destination port ${JSON.stringify(dport)}`);
  return {
    state: 'complete',
    header: {
      version: 1,
      command: 'PROXY',
      protocol,
      source: { address: srcAddress, port: srcPort, family },
      destination: { address: dstAddress, port: dstPort, family },
      tlvs: [],
      length,
    },
  };
}

// ---- version 2 ---------------------------------------------------------------------------------

const FAMILIES = ['UNSPEC', 'INET', 'INET6', 'UNIX'] as const;
/** Address block size by family (AF_UNSPEC carries none). */
const ADDRESS_SIZE = [0, 12, 36, 216] as const;
const PROTOCOL_NAMES: Record<number, string> = {
  0x00: 'UNSPEC',
  0x11: 'TCP4',
  0x12: 'UDP4',
  0x21: 'TCP6',
  0x22: 'UDP6',
  0x31: 'UNIX_STREAM',
  0x32: 'UNIX_DGRAM',
};

function ipv6At(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i).toString(16));
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

function parseV2(buf: Buffer, v2Limit: number): ProxyParse {
  if (buf.length < 16) return { state: 'incomplete', need: 16 };
  const version = buf[12]! >> 4;
  const cmd = buf[12]! & 0x0f;
  if (version !== 2) return invalid('version', `PROXY v2 signature with version ${version} (only 2 exists)`);
  if (cmd > 1) return invalid('malformed', `PROXY v2: unassigned command 0x${cmd.toString(16)} (LOCAL 0x0 or PROXY 0x1)`);
  const fam = buf[13]!;
  const family = fam >> 4;
  const transport = fam & 0x0f;
  if (family > 3) return invalid('malformed', `PROXY v2: unassigned address family 0x${family.toString(16)}`);
  if (transport > 2) return invalid('malformed', `PROXY v2: unassigned transport protocol 0x${transport.toString(16)}`);
  const length = 16 + buf.readUInt16BE(14);
  if (length > v2Limit) {
    return invalid('oversized', `PROXY v2: header of ${length} bytes is over the limit of ${v2Limit}`);
  }
  if (buf.length < length) return { state: 'incomplete', need: length };
  const header = buf.subarray(0, length);
  const isLocal = cmd === 0;
  // A family with no transport, or a transport with no family, is not one of the
  // combinations the specification lists: treat it as UNSPEC (use the real ends).
  const known = PROTOCOL_NAMES[fam] !== undefined;
  const protocol = known ? PROTOCOL_NAMES[fam]! : `${FAMILIES[family]}/${transport}`;
  const addressSize = known ? ADDRESS_SIZE[family]! : 0;
  const command = isLocal ? ('LOCAL' as const) : ('PROXY' as const);
  if (!known || length - 16 < addressSize) {
    // LOCAL: the receiver must discard the block, family included. An unlisted
    // family/transport pair falls back to UNSPEC: its bytes cannot be interpreted.
    if (isLocal || !known) {
      return { state: 'complete', header: { version: 2, command: command, protocol, tlvs: [], length } };
    }
    return invalid('malformed', `PROXY v2: ${protocol} needs ${addressSize} address bytes, the header has ${length - 16}`);
  }
  const tlvs: ProxyTlv[] = [];
  let crc: { at: number; value: number } | undefined;
  for (let at = 16 + addressSize; at < length; ) {
    if (at + 3 > length) return invalid('malformed', `PROXY v2: ${length - at} stray bytes after the last TLV`);
    const type = header[at]!;
    const size = header.readUInt16BE(at + 1);
    if (at + 3 + size > length) {
      return invalid('malformed', `PROXY v2: TLV 0x${type.toString(16)} of ${size} bytes runs past the header`);
    }
    if (type === PP2_TYPE_CRC32C) {
      if (size !== 4) return invalid('malformed', `PROXY v2: CRC32C TLV of ${size} bytes (must be 4)`);
      crc = { at: at + 3, value: header.readUInt32BE(at + 3) };
    }
    tlvs.push({ type, value: Buffer.from(header.subarray(at + 3, at + 3 + size)) });
    at += 3 + size;
  }
  if (crc) {
    const copy = Buffer.from(header);
    copy.writeUInt32BE(0, crc.at);
    const computed = crc32c(copy);
    if (computed !== crc.value) {
      return invalid('checksum', `PROXY v2: CRC32C 0x${crc.value.toString(16)} does not match the header (0x${computed.toString(16)})`);
    }
  }
  const result: ProxyHeader = { version: 2, command: command, protocol, tlvs, length };
  if (!isLocal && (fam === 0x11 || fam === 0x21)) {
    if (fam === 0x11) {
      result.source = { address: [...header.subarray(16, 20)].join('.'), port: header.readUInt16BE(24), family: 'IPv4' };
      result.destination = { address: [...header.subarray(20, 24)].join('.'), port: header.readUInt16BE(26), family: 'IPv4' };
    } else {
      result.source = { address: ipv6At(header, 16), port: header.readUInt16BE(48), family: 'IPv6' };
      result.destination = { address: ipv6At(header, 32), port: header.readUInt16BE(50), family: 'IPv6' };
    }
  }
  return { state: 'complete', header: result };
}

// ---- CRC32C (Castagnoli, RFC 4960 appendix B), for the PP2_TYPE_CRC32C TLV ------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC32C of `bytes`, as the PROXY v2 checksum TLV carries it. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// ---- sending (tcpkit client --proxy-protocol, tests) -------------------------------------------

/** What to put in a header: the client and the address it connected to; none for v1 UNKNOWN / v2 LOCAL. */
export interface ProxyHeaderSpec {
  version: 1 | 2;
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
  /** v2 only: TLVs to append. Default none. */
  tlvs?: ProxyTlv[];
  /** v2 only: append a CRC32C TLV computed over the header. Default false. */
  checksum?: boolean;
}

function familyOfPair(spec: ProxyHeaderSpec): 'IPv4' | 'IPv6' | undefined {
  const { source, destination } = spec;
  if (!source || !destination) return undefined;
  const fs = net.isIPv4(source.address) ? 'IPv4' : net.isIPv6(source.address) ? 'IPv6' : undefined;
  const fd = net.isIPv4(destination.address) ? 'IPv4' : net.isIPv6(destination.address) ? 'IPv6' : undefined;
  if (fs === undefined || fs !== fd) {
    throw new TypeError(`PROXY header: source ${source.address} and destination ${destination.address} must be IP addresses of one family`);
  }
  return fs;
}

/**
 * Encode a header as a sender would: v1 `PROXY TCP4 ...\r\n` (or `PROXY UNKNOWN\r\n`
 * without addresses); v2 PROXY with TCP addresses (or LOCAL, family UNSPEC, without).
 * Throws TypeError for addresses that are not IP literals of one family.
 */
export function encodeProxyHeader(spec: ProxyHeaderSpec): Buffer {
  const family = familyOfPair(spec);
  const { source, destination } = spec;
  if (spec.version === 1) {
    if (!family || !source || !destination) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    const proto = family === 'IPv4' ? 'TCP4' : 'TCP6';
    const text = (a: string) => (family === 'IPv6' ? new net.SocketAddress({ address: a, family: 'ipv6' }).address : a);
    return Buffer.from(`PROXY ${proto} ${text(source.address)} ${text(destination.address)} ${source.port} ${destination.port}\r\n`, 'latin1');
  }
  const parts: Buffer[] = [];
  let fam = 0x00;
  if (family && source && destination) {
    fam = family === 'IPv4' ? 0x11 : 0x21;
    const addr = Buffer.alloc(family === 'IPv4' ? 12 : 36);
    const size = family === 'IPv4' ? 4 : 16;
    writeIp(addr, 0, source.address, family);
    writeIp(addr, size, destination.address, family);
    addr.writeUInt16BE(source.port, 2 * size);
    addr.writeUInt16BE(destination.port, 2 * size + 2);
    parts.push(addr);
  }
  for (const tlv of spec.tlvs ?? []) {
    const head = Buffer.alloc(3);
    head[0] = tlv.type;
    head.writeUInt16BE(tlv.value.length, 1);
    parts.push(head, tlv.value);
  }
  if (spec.checksum) parts.push(Buffer.from([PP2_TYPE_CRC32C, 0, 4, 0, 0, 0, 0]));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head);
  head[12] = 0x20 | (fam === 0 ? 0x0 : 0x1);
  head[13] = fam;
  head.writeUInt16BE(body.length, 14);
  const out = Buffer.concat([head, body]);
  if (spec.checksum) out.writeUInt32BE(crc32c(out), out.length - 4);
  return out;
}

function writeIp(out: Buffer, at: number, address: string, family: 'IPv4' | 'IPv6'): void {
  if (family === 'IPv4') {
    address.split('.').forEach((octet, i) => (out[at + i] = Number(octet)));
    return;
  }
  // Expand "::" and an IPv4 tail into eight 16-bit groups.
  const canonical = new net.SocketAddress({ address, family: 'ipv6' }).address;
  let text = canonical;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), at + 2 * i));
}
