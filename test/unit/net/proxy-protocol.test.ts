// The PROXY protocol parser (src/proxy-protocol.ts) against every example and rule of HAProxy's
// proxy-protocol.txt (2020/03/05), plus property-based fuzzing with fast-check.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import net from 'node:net';
import {
  crc32c,
  DEFAULT_V2_LIMIT,
  encodeProxyHeader,
  parseProxyHeader,
  V1_MAX_LENGTH,
  V2_SIGNATURE,
  type ProxyHeader,
  type ProxyParse,
  type ProxyParseOptions,
} from '../../../src/net/proxy-protocol.js';
import { ProxyProtocolError, type ProxyFailure } from '../../../src/errors.js';

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function complete(bytes: Uint8Array, options?: ProxyParseOptions): ProxyHeader {
  const r = parseProxyHeader(bytes, options);
  assert.equal(r.state, 'complete', `expected a complete header, got ${JSON.stringify(r.state === 'invalid' ? r.error.message : r)}`);
  return r.header;
}

function refused(bytes: Uint8Array, reason: ProxyFailure, pattern?: RegExp, options?: ProxyParseOptions): ProxyProtocolError {
  const r = parseProxyHeader(bytes, options);
  assert.equal(r.state, 'invalid', `expected invalid (${reason}), got ${JSON.stringify(r)}`);
  assert.ok(r.error instanceof ProxyProtocolError);
  assert.equal(r.error.reason, reason, r.error.message);
  assert.equal(r.error.code, `TCPKIT_PROXY_${reason.toUpperCase()}`);
  if (pattern) assert.match(r.error.message, pattern);
  return r.error;
}

function incomplete(bytes: Uint8Array, options?: ProxyParseOptions): number {
  const r = parseProxyHeader(bytes, options);
  assert.equal(r.state, 'incomplete', `expected incomplete, got ${JSON.stringify(r.state === 'invalid' ? r.error.message : r)}`);
  return r.need;
}

/** A v2 header: signature, ver/cmd, fam, then `body` (addresses + TLVs) with its length. */
function v2(verCmd: number, fam: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head);
  head[12] = verCmd;
  head[13] = fam;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

const tlv = (type: number, value: Buffer): Buffer => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), value]);
// The HAProxy specification's own example addresses: parsed in memory, never connected to.
const V4_ADDRS = hex('c0a80001 c0a8000b dc04 01bb'); // 192.168.0.1 -> 192.168.0.11, 56324 -> 443
const V6_ADDRS = Buffer.concat([
  hex('20010db8000000000000000000000001'),
  hex('20010db8000000000000000000000002'),
  hex('dc04 01bb'),
]);

describe('PROXY v1 (human-readable), spec section 2.1', () => {
  it('the spec example before an HTTP request: header consumed, request untouched', () => {
    const line = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
    const bytes = ascii(`${line}GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n`);
    const h = complete(bytes);
    assert.equal(h.version, 1);
    assert.equal(h.command, 'PROXY');
    assert.equal(h.protocol, 'TCP4');
    assert.deepEqual(h.source, { address: '192.168.0.1', port: 56324, family: 'IPv4' });
    assert.deepEqual(h.destination, { address: '192.168.0.11', port: 443, family: 'IPv4' });
    assert.equal(h.length, line.length);
    assert.equal(bytes.subarray(h.length).toString('latin1'), 'GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n');
  });

  it('the longest TCP/IPv4 line (56 chars)', () => {
    const line = 'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n';
    assert.equal(line.length, 56);
    const h = complete(ascii(line));
    assert.equal(h.length, 56);
    assert.deepEqual(h.source, { address: '255.255.255.255', port: 65535, family: 'IPv4' });
  });

  it('the longest TCP/IPv6 line (104 chars), upper and lower case hex', () => {
    const f = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const line = `PROXY TCP6 ${f} ${f.toUpperCase()} 65535 65535\r\n`;
    assert.equal(line.length, 104);
    const h = complete(ascii(line));
    assert.equal(h.length, 104);
    assert.equal(h.source?.address, f);
    assert.equal(h.destination?.address, f);
    assert.equal(h.source?.family, 'IPv6');
  });

  it('IPv6 with one "::" is decoded to 128 bits and given in canonical form', () => {
    const h = complete(ascii('PROXY TCP6 2001:DB8::1 ::1 1 0\r\n'));
    assert.deepEqual(h.source, { address: '2001:db8::1', port: 1, family: 'IPv6' });
    assert.deepEqual(h.destination, { address: '::1', port: 0, family: 'IPv6' });
  });

  it('the short UNKNOWN form (15 chars): valid, no addresses (the real ends apply)', () => {
    const h = complete(ascii('PROXY UNKNOWN\r\n'));
    assert.equal(h.length, 15);
    assert.equal(h.protocol, 'UNKNOWN');
    assert.equal(h.source, undefined);
    assert.equal(h.destination, undefined);
  });

  it('the worst case (107 chars): UNKNOWN with full addresses; the rest of the line is ignored', () => {
    const f = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const line = `PROXY UNKNOWN ${f} ${f} 65535 65535\r\n`;
    assert.equal(line.length, V1_MAX_LENGTH);
    const h = complete(ascii(`${line}data`));
    assert.equal(h.length, 107);
    assert.equal(h.source, undefined);
    // "the receiver must ignore anything presented before the CRLF"
    assert.equal(complete(ascii('PROXY UNKNOWN whatever \x01\x7f\r\n')).length, 27);
  });

  it('no CRLF within the first 107 characters: invalid (oversized)', () => {
    refused(ascii(`PROXY UNKNOWN ${'x'.repeat(120)}`), 'oversized', /107/);
    // CR as the 107th byte leaves no room for the LF
    refused(ascii(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n`), 'oversized');
    // ...but 106 bytes + nothing yet is still waiting
    incomplete(ascii(`PROXY UNKNOWN ${'x'.repeat(92)}`));
  });

  it('waits for the CRLF before decoding: every strict prefix is incomplete', () => {
    const line = ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
    for (let n = 0; n < line.length; n++) assert.equal(incomplete(line.subarray(0, n)), V1_MAX_LENGTH);
  });

  it('a single CR or LF never ends the line', () => {
    refused(ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n'), 'malformed', /0x0a/);
    refused(ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX'), 'malformed', /CR not followed by LF/);
    refused(ascii('PROXY UNKNOWN\r\r\n'), 'malformed', /CR not followed by LF/);
  });

  it('exactly one space between fields', () => {
    refused(ascii('PROXY TCP4  192.168.0.1 192.168.0.11 56324 443\r\n'), 'malformed', /single spaces/);
    refused(ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n'), 'malformed', /single spaces/);
    refused(ascii('PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'), 'malformed', /unknown protocol ""/);
    refused(ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n'), 'malformed', /5 fields/);
  });

  it('only TCP4, TCP6 and UNKNOWN are protocols', () => {
    refused(ascii('PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n'), 'malformed', /unknown protocol "UDP4"/);
    refused(ascii('PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n'), 'malformed', /unknown protocol "tcp4"/);
    refused(ascii('PROXY UNKNOWNX\r\n'), 'malformed', /unknown protocol "UNKNOWNX"/);
  });

  it('IPv4: exactly 4 decimal integers 0..255, no heading zeroes', () => {
    refused(ascii('PROXY TCP4 192.168.000.1 192.168.0.11 56324 443\r\n'), 'malformed', /source address "192\.168\.000\.1"/);
    refused(ascii('PROXY TCP4 192.168.0.1 192.168.0.256 56324 443\r\n'), 'malformed', /destination address/);
    refused(ascii('PROXY TCP4 192.168.0 192.168.0.11 56324 443\r\n'), 'malformed', /source address/);
    refused(ascii('PROXY TCP4 1.2.3.4.5 192.168.0.11 56324 443\r\n'), 'malformed', /source address/);
    refused(ascii('PROXY TCP4 ::1 192.168.0.11 56324 443\r\n'), 'malformed', /IPv4 source address "::1"/);
  });

  it('IPv6: 128 bits, at most one "::", the family the protocol says', () => {
    refused(ascii('PROXY TCP6 1::2::3 ::1 1 2\r\n'), 'malformed', /source address/);
    refused(ascii('PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n'), 'malformed', /source address/);
    refused(ascii('PROXY TCP6 ::1 192.168.0.11 1 2\r\n'), 'malformed', /IPv6 destination address/);
    refused(ascii('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'), 'malformed', /0x25/);
  });

  it('ports: decimal 0..65535, no heading zeroes', () => {
    assert.equal(complete(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n')).destination?.port, 65535);
    refused(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 0443 443\r\n'), 'malformed', /source port "0443"/);
    refused(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 443 65536\r\n'), 'malformed', /destination port "65536"/);
    refused(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 443 -1\r\n'), 'malformed', /0x2d/);
  });
});

describe('PROXY v2 (binary), spec section 2.2', () => {
  it('the signature contains a NUL byte and is 12 bytes', () => {
    assert.equal(V2_SIGNATURE.length, 12);
    assert.equal(V2_SIGNATURE[4], 0);
    assert.deepEqual([...V2_SIGNATURE], [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  });

  it('\\x11 TCP over IPv4: addresses (12 bytes) in network order; the header is 16 + len', () => {
    const bytes = Buffer.concat([v2(0x21, 0x11, V4_ADDRS), ascii('client data')]);
    const h = complete(bytes);
    assert.equal(h.version, 2);
    assert.equal(h.command, 'PROXY');
    assert.equal(h.protocol, 'TCP4');
    assert.equal(h.length, 28);
    assert.deepEqual(h.source, { address: '192.168.0.1', port: 56324, family: 'IPv4' });
    assert.deepEqual(h.destination, { address: '192.168.0.11', port: 443, family: 'IPv4' });
    assert.equal(bytes.subarray(h.length).toString(), 'client data');
  });

  it('\\x21 TCP over IPv6: 36 bytes of addresses', () => {
    const h = complete(v2(0x21, 0x21, V6_ADDRS));
    assert.equal(h.length, 52);
    assert.deepEqual(h.source, { address: '2001:db8::1', port: 56324, family: 'IPv6' });
    assert.deepEqual(h.destination, { address: '2001:db8::2', port: 443, family: 'IPv6' });
  });

  it('\\x00 UNSPEC with LOCAL (a health check): valid, the real ends apply', () => {
    const h = complete(v2(0x20, 0x00));
    assert.equal(h.command, 'LOCAL');
    assert.equal(h.protocol, 'UNSPEC');
    assert.equal(h.length, 16);
    assert.equal(h.source, undefined);
  });

  it('LOCAL: the length is always honoured, never assumed zero; addresses are ignored', () => {
    const h = complete(Buffer.concat([v2(0x20, 0x11, V4_ADDRS), ascii('after')]));
    assert.equal(h.command, 'LOCAL');
    assert.equal(h.length, 28);
    assert.equal(h.source, undefined);
    // LOCAL with a family whose addresses do not fit: the block is discarded, family included.
    assert.equal(complete(v2(0x20, 0x21, Buffer.alloc(5))).length, 21);
  });

  it('PROXY with UNSPEC: accepted, addresses ignored', () => {
    const h = complete(v2(0x21, 0x00));
    assert.equal(h.command, 'PROXY');
    assert.equal(h.source, undefined);
  });

  it('\\x12 UDP4, \\x22 UDP6, \\x31 UNIX stream, \\x32 UNIX dgram: valid, fall back to UNSPEC (real ends)', () => {
    const families: [fam: number, size: number, name: string][] = [
      [0x12, 12, 'UDP4'],
      [0x22, 36, 'UDP6'],
      [0x31, 216, 'UNIX_STREAM'],
      [0x32, 216, 'UNIX_DGRAM'],
    ];
    for (const [fam, size, name] of families) {
      const h = complete(v2(0x21, fam, Buffer.alloc(size, 1)));
      assert.equal(h.protocol, name);
      assert.equal(h.length, 16 + size);
      assert.equal(h.source, undefined, name);
    }
  });

  it('a PROXY command whose address block is shorter than its family needs is refused', () => {
    refused(v2(0x21, 0x11, Buffer.alloc(11)), 'malformed', /TCP4 needs 12 address bytes, the header has 11/);
    refused(v2(0x21, 0x21, Buffer.alloc(12)), 'malformed', /TCP6 needs 36/);
  });

  it('the version nibble must be 2', () => {
    refused(v2(0x11, 0x11, V4_ADDRS), 'version', /version 1/);
    refused(v2(0x31, 0x11, V4_ADDRS), 'version', /version 3/);
    refused(v2(0x01, 0x11, V4_ADDRS), 'version', /version 0/);
  });

  it('unassigned commands are dropped', () => {
    for (const cmd of [0x2, 0x3, 0xf]) refused(v2(0x20 | cmd, 0x11, V4_ADDRS), 'malformed', /unassigned command/);
  });

  it('unassigned families and transport protocols are rejected', () => {
    refused(v2(0x21, 0x41, V4_ADDRS), 'malformed', /address family 0x4/);
    refused(v2(0x21, 0xf1, V4_ADDRS), 'malformed', /address family 0xf/);
    refused(v2(0x21, 0x13, V4_ADDRS), 'malformed', /transport protocol 0x3/);
  });

  it('partial headers: incomplete until 16 + len bytes, never parsed early', () => {
    const whole = v2(0x21, 0x21, V6_ADDRS);
    for (let n = 0; n < whole.length; n++) incomplete(whole.subarray(0, n));
    assert.equal(incomplete(whole.subarray(0, 16)), 52);
  });

  it('TLVs after the addresses are skipped (returned, not interpreted)', () => {
    const body = Buffer.concat([
      V4_ADDRS,
      tlv(0x01, ascii('h2')), // PP2_TYPE_ALPN
      tlv(0x02, ascii('example.com')), // PP2_TYPE_AUTHORITY
      tlv(0x04, Buffer.alloc(0)), // PP2_TYPE_NOOP, empty
      tlv(0x05, Buffer.alloc(128, 7)), // PP2_TYPE_UNIQUE_ID, up to 128 bytes
      tlv(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), tlv(0x21, ascii('TLSv1.3'))])), // PP2_TYPE_SSL
      tlv(0x30, ascii('ns1')), // PP2_TYPE_NETNS
      tlv(0xe0, ascii('custom')),
    ]);
    const h = complete(Buffer.concat([v2(0x21, 0x11, body), ascii('data')]));
    assert.equal(h.length, 16 + body.length);
    assert.deepEqual(
      h.tlvs.map((t) => t.type),
      [0x01, 0x02, 0x04, 0x05, 0x20, 0x30, 0xe0],
    );
    assert.equal(h.tlvs[1].value.toString(), 'example.com');
    assert.deepEqual(h.source, { address: '192.168.0.1', port: 56324, family: 'IPv4' });
  });

  it('TLVs are bounded by the header: one running past it, or stray bytes, is refused', () => {
    refused(v2(0x21, 0x11, Buffer.concat([V4_ADDRS, Buffer.from([0x04, 0x00, 0x05, 1, 2])])), 'malformed', /runs past the header/);
    refused(v2(0x21, 0x11, Buffer.concat([V4_ADDRS, Buffer.from([0x04, 0x00])])), 'malformed', /2 stray bytes/);
  });

  it('PP2_TYPE_CRC32C: checked over the header with the field zeroed; a mismatch is refused', () => {
    assert.equal(crc32c(ascii('123456789')), 0xe3069283); // RFC 4960 / iSCSI check value
    const good = encodeProxyHeader({
      version: 2,
      source: { address: '192.168.0.1', port: 56324 },
      destination: { address: '192.168.0.11', port: 443 },
      checksum: true,
    });
    const h = complete(good);
    assert.equal(h.tlvs.at(-1)?.type, 0x03);
    const bad = Buffer.from(good);
    bad[17] ^= 1; // one bit of the source address
    refused(bad, 'checksum', /CRC32C/);
    refused(v2(0x21, 0x11, Buffer.concat([V4_ADDRS, tlv(0x03, Buffer.alloc(3))])), 'malformed', /CRC32C TLV of 3 bytes/);
  });

  it('the size cap: 16 + len over the limit is refused as soon as the 16 bytes are in', () => {
    const big = v2(0x21, 0x11, Buffer.concat([V4_ADDRS, tlv(0x04, Buffer.alloc(DEFAULT_V2_LIMIT))]));
    refused(big.subarray(0, 16), 'oversized', new RegExp(`over the limit of ${DEFAULT_V2_LIMIT}`));
    assert.equal(complete(big, { v2Limit: 65551 }).length, big.length);
    refused(v2(0x21, 0x11, V4_ADDRS), 'oversized', /28 bytes is over the limit of 20/, { v2Limit: 20 });
  });
});

describe('telling the versions apart (spec 2.2, "Identifying the protocol version")', () => {
  it('the v2 signature with version 2 is v2; "PROXY" is v1; anything else is dropped', () => {
    assert.equal(complete(v2(0x21, 0x11, V4_ADDRS)).version, 2);
    assert.equal(complete(ascii('PROXY UNKNOWN\r\n')).version, 1);
    refused(ascii('GET / HTTP/1.1\r\n\r\n'), 'missing', /starts with "GET \/ HTTP\/1.1\\r\\n"$/);
    refused(Buffer.from([0x16, 0x03, 0x01]), 'missing'); // a TLS ClientHello
    refused(ascii('PROXYTCP4'), 'missing');
    refused(ascii('SSH-2.0-OpenSSH\r\n'), 'missing');
  });

  it('a prefix of either signature waits; the first differing byte decides', () => {
    incomplete(Buffer.alloc(0));
    incomplete(ascii('PROX'));
    incomplete(V2_SIGNATURE.subarray(0, 5));
    refused(ascii('PROXx'), 'missing');
    refused(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b]), 'missing');
  });

  it('a receiver configured for one version refuses the other', () => {
    refused(ascii('PROXY UNKNOWN\r\n'), 'version', /only v2/, { versions: [2] });
    refused(v2(0x21, 0x11, V4_ADDRS), 'version', /only v1/, { versions: [1] });
    assert.equal(complete(ascii('PROXY UNKNOWN\r\n'), { versions: [1] }).version, 1);
  });
});

describe('encodeProxyHeader (the sending side, for tcpkit client and tests)', () => {
  it('v1 and v2, IPv4 and IPv6, UNKNOWN/LOCAL without addresses', () => {
    const src = { address: '127.0.0.7', port: 40000 };
    const dst = { address: '127.0.0.1', port: 9877 };
    assert.equal(encodeProxyHeader({ version: 1, source: src, destination: dst }).toString(), 'PROXY TCP4 127.0.0.7 127.0.0.1 40000 9877\r\n');
    assert.equal(encodeProxyHeader({ version: 1 }).toString(), 'PROXY UNKNOWN\r\n');
    assert.deepEqual(encodeProxyHeader({ version: 2, source: src, destination: dst }), v2(0x21, 0x11, hex('7f000007 7f000001 9c40 2695')));
    assert.deepEqual(encodeProxyHeader({ version: 2 }), v2(0x20, 0x00));
    const h = complete(encodeProxyHeader({ version: 2, source: { address: '::ffff:1.2.3.4', port: 1 }, destination: { address: '::1', port: 2 } }));
    assert.equal(h.source?.address, '::ffff:1.2.3.4');
    assert.throws(() => encodeProxyHeader({ version: 1, source: src, destination: { address: '::1', port: 1 } }), TypeError);
  });
});

// ---- property-based ------------------------------------------------------------------------

const port = fc.integer({ min: 0, max: 65535 });
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const endpoints = fc.oneof(
  fc.record({ s: ipv4, d: ipv4, sp: port, dp: port }),
  fc.record({ s: ipv6, d: ipv6, sp: port, dp: port }),
);
const validHeader = fc
  .record({
    version: fc.constantFrom(1, 2),
    ends: fc.option(endpoints, { nil: undefined }),
    tlvs: fc.array(fc.record({ type: fc.integer({ min: 0x04, max: 0x04 }), value: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 4 }),
    checksum: fc.boolean(),
  })
  .map(({ version, ends, tlvs, checksum }) =>
    encodeProxyHeader({
      version,
      source: ends && { address: ends.s, port: ends.sp },
      destination: ends && { address: ends.d, port: ends.dp },
      tlvs: version === 2 ? tlvs.map((t) => ({ type: t.type, value: Buffer.from(t.value) })) : undefined,
      checksum: version === 2 && checksum,
    }),
  );
/** Inputs that look like headers often enough to reach deep into the parser. */
const hostile = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([ascii('PROXY '), b])),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([ascii('PROXY TCP4 '), b])),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([V2_SIGNATURE, b])),
  fc
    .tuple(validHeader, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 50 }))
    .map(([h, at, byte, tail]) => {
      const m = Buffer.from(h);
      m[at % m.length] = byte;
      return Buffer.concat([m, tail]);
    }),
);

/** How far the parser may look into `bytes`: v1 107 bytes, v2 16 + its length (16 if that is over the cap). */
function limitOf(bytes: Uint8Array, v2Limit: number = DEFAULT_V2_LIMIT): number {
  if (bytes.length >= 16 && Buffer.from(bytes.subarray(0, 12)).equals(V2_SIGNATURE)) {
    const total = 16 + Buffer.from(bytes).readUInt16BE(14);
    return total > v2Limit ? 16 : total;
  }
  return V1_MAX_LENGTH;
}

const strip = (r: ProxyParse) => (r.state === 'invalid' ? { state: r.state, reason: r.error.reason, message: r.error.message } : r);

describe('properties (fast-check)', () => {
  it('never throws: any input gives complete, incomplete or a typed ProxyProtocolError', () => {
    fc.assert(
      fc.property(hostile, (bytes) => {
        const r = parseProxyHeader(bytes);
        if (r.state === 'invalid') return r.error instanceof ProxyProtocolError && typeof r.error.reason === 'string';
        if (r.state === 'complete') return r.header.length > 0 && r.header.length <= bytes.length;
        return r.state === 'incomplete' && r.need > bytes.length - 1;
      }),
      { numRuns: 3000 },
    );
  });

  it('never reads past its limit: the bytes after it never change the answer', () => {
    fc.assert(
      fc.property(hostile, fc.uint8Array({ maxLength: 200 }), (bytes, more) => {
        const limit = limitOf(bytes);
        const cut = Buffer.from(bytes).subarray(0, limit);
        const r = parseProxyHeader(bytes);
        if (r.state === 'complete') {
          assert.ok(r.header.length <= limit);
          // Only the header's own bytes decide; what follows is the client's.
          assert.deepEqual(strip(parseProxyHeader(Buffer.from(bytes).subarray(0, r.header.length))), strip(r));
          assert.deepEqual(strip(parseProxyHeader(Buffer.concat([bytes, more]))), strip(r));
        }
        if (bytes.length >= limit) {
          // Anything past the limit is invisible.
          assert.deepEqual(strip(parseProxyHeader(Buffer.concat([cut, more]))), strip(r));
          assert.notEqual(r.state, 'incomplete', 'a full window always decides');
        }
        if (r.state === 'incomplete') assert.ok(r.need <= Math.max(V1_MAX_LENGTH, DEFAULT_V2_LIMIT));
      }),
      { numRuns: 3000 },
    );
  });

  it('round trip: what a sender encodes parses back exactly, whatever data follows', () => {
    fc.assert(
      fc.property(validHeader, fc.uint8Array({ maxLength: 100 }), (header, data) => {
        const h = complete(Buffer.concat([header, data]));
        assert.equal(h.length, header.length);
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(endpoints, fc.constantFrom(1, 2), ({ s, d, sp, dp }, version) => {
        const h = complete(encodeProxyHeader({ version, source: { address: s, port: sp }, destination: { address: d, port: dp } }));
        const canon = (a: string): string => new net.SocketAddress({ address: a, family: a.includes(':') ? 'ipv6' : 'ipv4' }).address;
        assert.equal(h.source?.port, sp);
        assert.equal(h.destination?.port, dp);
        assert.equal(canon(h.source?.address), canon(s));
        assert.equal(canon(h.destination?.address), canon(d));
      }),
      { numRuns: 1000 },
    );
  });

  it('a header cut anywhere is incomplete, never invalid and never complete', () => {
    fc.assert(
      fc.property(validHeader, fc.nat(), (header, at) => {
        const n = at % header.length;
        return parseProxyHeader(header.subarray(0, n)).state === 'incomplete';
      }),
      { numRuns: 1000 },
    );
  });
});
