/**
 * `tcpkit client [HOST] [PORT]`: argv → connect + echoSession over stdin/stdout.
 */
import fs from 'node:fs';
import { connect, echoSession, startTls, type ClientTlsOptions } from '../client.js';
import net from 'node:net';
import { formatAddress, formatEndpoint, isUnixAddress, parseHostPort, parsePort, SERV_PORT, UNIX_PREFIX } from '../address.js';
import { UsageError, InvalidOptionError } from '../errors.js';
import { endpointsOf } from '../address.js';
import { choiceOption, parse, secondsOption } from './args.js';

export const clientHelp = `usage: tcpkit client [HOST] [PORT] [options]
       tcpkit client unix:PATH [options]

Send stdin to the server at HOST:PORT (default 127.0.0.1:${SERV_PORT}), or on the UNIX-domain
socket PATH, and write what it
sends back to stdout. At the end of stdin the client half-closes and waits for the
server to finish, so nothing in flight is lost.

  --source ADDR             local address to bind (e.g. 127.0.0.2)
  --connect-timeout SECONDS give up connecting after this long (default 10)
  --proxy-protocol v1|v2    send a PROXY protocol header first, as a load balancer would
  --proxy-source ADDR:PORT  the client the header claims, of the server's address family
                            (default: this connection's own address)
  --tls                     speak TLS: verify the server's certificate (system CAs, or --tls-ca)
                            and its name (HOST, or --servername)
  --tls-ca FILE             trust the CA certificates in FILE (PEM) instead of the system's
  --servername NAME         the name to ask for (SNI) and to check the certificate against
  --tls-cert FILE           a client certificate (PEM), with --tls-key FILE its key
  --tls-key FILE
  --insecure                do not verify the server's certificate
  -v, --verbose             print the local and peer addresses (getsockname/getpeername) to stderr
  -h, --help                this text

Exit codes: 0 success, 1 server terminated prematurely, 100 usage error,
111 cannot connect (refused, unreachable, timed out, unknown host).`;

/** --tls-ca, --tls-cert, --tls-key read now (a file that cannot be read: usage error naming the flag), --servername, --insecure. */
function tlsFlags(values: Record<string, string | boolean | undefined>): ClientTlsOptions {
  const read = (flag: string): string | undefined => {
    const file = values[flag];
    if (typeof file !== 'string') return undefined;
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`client: --${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const out: ClientTlsOptions = { insecure: values.insecure === true };
  const ca = read('tls-ca');
  const cert = read('tls-cert');
  const key = read('tls-key');
  if (ca !== undefined) out.ca = ca;
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  if (typeof values.servername === 'string') out.servername = values.servername;
  return out;
}

export async function client(argv: string[]): Promise<number> {
  const { values, positionals } = parse('client', argv, {
    source: { type: 'string' },
    'connect-timeout': { type: 'string' },
    'proxy-protocol': { type: 'string' },
    'proxy-source': { type: 'string' },
    tls: { type: 'boolean' },
    'tls-ca': { type: 'string' },
    servername: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    insecure: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(`${clientHelp}\n`);
    return 0;
  }
  if (positionals.length > 2) throw new UsageError(`client: expected [HOST] [PORT], got ${positionals.join(' ')}`);
  const target = positionals[0];
  if (target !== undefined && isUnixAddress(target)) {
    if (positionals.length > 1) throw new UsageError(`client: unix:PATH takes no PORT, got ${positionals[1]}`);
    const flag = (['source', 'proxy-protocol', 'proxy-source'] as const).find((f) => values[f] !== undefined);
    if (flag) throw new UsageError(`client: --${flag} does not apply to a UNIX socket`);
    const timeout = secondsOption('connect-timeout', values['connect-timeout']);
    let socket;
    try {
      socket = await connect({ path: target.slice(UNIX_PREFIX.length), timeout: timeout === undefined ? undefined : timeout * 1000 });
    } catch (err) {
      if (err instanceof InvalidOptionError) throw new UsageError(`client: ${err.message}`);
      throw err;
    }
    if (values.verbose) process.stderr.write(`connected ${target}\n`);
    const result = await echoSession(socket, process.stdin, process.stdout);
    if (values.verbose) process.stderr.write(`closed sent ${result.bytesSent} received ${result.bytesReceived}\n`);
    return 0;
  }
  const host = positionals[0] ?? '127.0.0.1';
  let port: number;
  try {
    port = parsePort(positionals[1] ?? SERV_PORT, 'PORT');
  } catch (err) {
    throw new UsageError(`client: ${(err as InvalidOptionError).message}`);
  }
  if (port === 0) throw new UsageError('client: PORT: must be an integer from 1 to 65535, got "0"');
  const tlsOnly = (['tls-ca', 'servername', 'tls-cert', 'tls-key', 'insecure'] as const).find((f) => values[f] !== undefined);
  if (tlsOnly && !values.tls) throw new UsageError(`client: --${tlsOnly} needs --tls`);
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('client: --tls-cert and --tls-key go together');
  const timeout = secondsOption('connect-timeout', values['connect-timeout']);
  const version = choiceOption('proxy-protocol', values['proxy-protocol'], ['v1', 'v2'] as const);
  let claimed: { address: string; port: number } | undefined;
  if (values['proxy-source'] !== undefined) {
    if (!version) throw new UsageError('client: --proxy-source needs --proxy-protocol v1|v2');
    try {
      const { host: address, port: p } = parseHostPort(values['proxy-source'], '', 'proxy-source');
      if (net.isIP(address) === 0) throw new InvalidOptionError('proxy-source', `must be an IP address and port, got ${JSON.stringify(values['proxy-source'])}`);
      claimed = { address, port: p };
    } catch (err) {
      throw new UsageError(`client: --${(err as InvalidOptionError).message}`);
    }
  }
  const proxy = version ? { version: version === 'v1' ? (1 as const) : (2 as const), source: claimed } : undefined;
  let socket;
  try {
    socket = await connect({ host, port, source: values.source, timeout: timeout === undefined ? undefined : timeout * 1000, proxy });
  } catch (err) {
    if (err instanceof InvalidOptionError) {
      // The library's `proxy` option is what --proxy-source (and --proxy-protocol) gave it.
      const flag = err.option === 'proxy' ? 'proxy-source' : err.option;
      throw new UsageError(`client: --${flag}: ${err.message.slice(err.option.length + 2)}`);
    }
    throw err;
  }
  if (values.verbose) {
    const ends = endpointsOf(socket);
    if (ends) {
      process.stderr.write(`connected ${formatEndpoint(ends.local)} -> ${formatEndpoint(ends.remote)} ${ends.remote.family}\n`);
    }
  }
  if (values.tls) {
    const secure = await startTls(socket, formatAddress(host.replace(/^\[(.*)\]$/, '$1'), port), host.replace(/^\[(.*)\]$/, '$1'), tlsFlags(values));
    if (values.verbose) {
      const c = secure.getPeerX509Certificate();
      process.stderr.write(`tls ${secure.getProtocol()} ${secure.getCipher().name}${c ? ` subject ${c.subject.split('\n').join(',')} sha256 ${c.fingerprint256}` : ''}\n`);
    }
    socket = secure;
  }
  const result = await echoSession(socket, process.stdin, process.stdout);
  if (values.verbose) process.stderr.write(`closed sent ${result.bytesSent} received ${result.bytesReceived}\n`);
  return 0;
}
