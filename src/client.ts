/**
 * The echo client (UNP's str_cli, batch-safe as UNP ch. 6 fixes it): input to the
 * server, the server's bytes to output. At input EOF the client half-closes (FIN)
 * and keeps reading until the server closes, so nothing in flight is lost. A server
 * that closes or resets before input ends is reported as `server terminated prematurely`.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Readable, Writable } from 'node:stream';
import { endpointsOf, formatAddress, SERV_PORT, type Endpoint } from './address.js';
import { ConnectTimeoutError, InvalidOptionError, PrematureCloseError, SystemCallError, TcpkitError } from './errors.js';
import { encodeProxyHeader } from './net/proxy-protocol.js';

/** Options of connect(). */
export interface ConnectOptions {
  /** Server host: IPv4/IPv6 literal or name. Default `127.0.0.1`. */
  host?: string;
  /** Server port. Default 9877. */
  port?: number;
  /** A UNIX-domain socket path to connect to instead of host and port (`source` and `proxy` do not apply). Default none. */
  path?: string;
  /** Local address to bind before connecting (the client's source address). Default: the kernel chooses. */
  source?: string;
  /** Milliseconds to wait for the handshake. Default 10000; 0 means no limit. */
  timeout?: number;
  /**
   * Send a PROXY protocol header first, as a balancer would (for testing servers
   * behind one): `version` 1 or 2; `source` the client to claim. Default: no header;
   * `source` defaults to this connection's own local end, the destination is the server.
   */
  proxy?: { version: 1 | 2; source?: { address: string; port: number } };
}

/**
 * Resolve with `socket` once connected (its error listener removed: the caller takes over), or destroy it and
 * reject with `errorOf(err)` on an error, or with ConnectTimeoutError naming `where` after `timeout` ms (0: none).
 */
function connected(socket: net.Socket, where: string, timeout: number, errorOf: (err: NodeJS.ErrnoException) => Error): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const fail = (err: Error) => {
      if (timer) clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    if (timeout > 0) timer = setTimeout(() => fail(new ConnectTimeoutError(where, timeout)), timeout);
    socket.once('error', (err: NodeJS.ErrnoException) => fail(errorOf(err)));
    socket.once('connect', () => {
      if (timer) clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/**
 * Connect to a UNIX-domain socket at `path`. Node 20 connects by a NUL-terminated path, so an abstract
 * name (`@name`) cannot be reached: refused with a message saying so (socat's ABSTRACT-CONNECT can).
 */
function connectUnix(path: string, timeout: number): Promise<net.Socket> {
  if (path === '' || path.startsWith('@')) {
    throw new InvalidOptionError('path', `${JSON.stringify(path)}: give a socket file's path (an abstract @name cannot be reached from Node 20; use socat - ABSTRACT-CONNECT:NAME)`);
  }
  const where = `unix:${path}`;
  return connected(net.connect({ path, allowHalfOpen: true }), where, timeout, (err) => new SystemCallError('connect', where, err));
}

/**
 * Connect to a TCP server. Resolves with the connected socket (half-open allowed);
 * rejects with `connect ECONNREFUSED 127.0.0.1:9877` (SystemCallError) or ConnectTimeoutError.
 */
export function connect(options: ConnectOptions = {}): Promise<net.Socket> {
  // `[::1]` as a URL or `serve --host` writes it: the brackets are not part of the address.
  const host = (options.host ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
  const port = options.port ?? SERV_PORT;
  const timeout = options.timeout ?? 10_000;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidOptionError('port', `must be an integer from 1 to 65535, got ${JSON.stringify(options.port)}`);
  }
  if (typeof timeout !== 'number' || timeout < 0 || !Number.isFinite(timeout)) {
    throw new InvalidOptionError('timeout', `must be milliseconds >= 0, got ${JSON.stringify(options.timeout)}`);
  }
  if (options.path !== undefined) return connectUnix(options.path, timeout);
  const claimed = options.proxy?.source?.address;
  if (options.proxy && (![1, 2].includes(options.proxy.version) || (claimed !== undefined && net.isIP(claimed) === 0))) {
    throw new InvalidOptionError('proxy', `must be { version: 1 | 2, source?: { address: IP, port } }, got ${JSON.stringify(options.proxy)}`);
  }
  if (options.source !== undefined && net.isIP(options.source) === 0) {
    throw new InvalidOptionError('source', `must be an IP address, got ${JSON.stringify(options.source)}`);
  }
  const where = formatAddress(host, port);
  const connecting = connected(net.connect({ host, port, localAddress: options.source, allowHalfOpen: true }), where, timeout, (err) => {
    // A bind failure on --source names the source; everything else names the server.
    const addr = err.syscall === 'bind' && options.source ? formatAddress(options.source, 0) : where;
    return new SystemCallError(err.syscall === 'bind' ? 'bind' : 'connect', addr, err);
  });
  const { proxy } = options;
  if (!proxy) return connecting;
  return connecting.then((socket) => {
    const fail = (err: Error): never => {
      socket.destroy();
      throw err;
    };
    const ends = endpointsOf(socket) ?? fail(new PrematureCloseError('reset before the PROXY header was sent'));
    const source = proxy.source ?? ends.local;
    // A header names two addresses of one family; the server's family is known only now.
    if (net.isIP(source.address) !== net.isIP(ends.remote.address)) {
      fail(
        new InvalidOptionError(
          'proxy',
          `source ${source.address} is ${ends.remote.family === 'IPv4' ? 'IPv6' : 'IPv4'} but the server ${where} is ${ends.remote.family}: a PROXY header names two addresses of one family`,
        ),
      );
    }
    // Written before anything else, in one write, as the specification asks of senders.
    socket.write(encodeProxyHeader({ version: proxy.version, source, destination: ends.remote }));
    return socket;
  });
}

/** What an echo session moved. */
export interface SessionResult {
  bytesSent: number;
  bytesReceived: number;
  local: Endpoint | undefined;
  remote: Endpoint | undefined;
}

/**
 * Run str_cli on a connected socket: `input` → socket, socket → `output`, with
 * backpressure both ways. Resolves when the server has closed after our input ended;
 * rejects with PrematureCloseError if it closed (or reset) first.
 */
export function echoSession(socket: net.Socket, input: Readable, output: Writable): Promise<SessionResult> {
  const ends = endpointsOf(socket);
  let bytesSent = 0;
  let bytesReceived = 0;
  let inputEnded = false;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      input.unpipe(socket);
      socket.unpipe(output);
      if (err) {
        socket.destroy();
        reject(err);
        return;
      }
      resolve({ bytesSent, bytesReceived, local: ends?.local, remote: ends?.remote });
    };
    input.on('data', (chunk: Buffer) => {
      bytesSent += chunk.length;
    });
    socket.on('data', (chunk: Buffer) => {
      bytesReceived += chunk.length;
    });
    input.once('end', () => {
      inputEnded = true;
      // Half-close: our FIN tells the server we are done sending; its echo keeps coming.
      socket.end();
    });
    input.once('error', (err) => finish(err));
    socket.once('end', () => {
      if (!inputEnded) {
        finish(new PrematureCloseError());
        return;
      }
      // Everything the server sent is in `output`'s queue; wait until it is flushed.
      if (output.writableNeedDrain) output.once('drain', () => finish());
      else finish();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      finish(new PrematureCloseError(err.code === 'ECONNRESET' ? 'connection reset' : err.code ?? err.message, err));
    });
    output.once('error', (err: NodeJS.ErrnoException) => {
      // A closed stdout (`| head`) ends the session quietly from our side.
      if (err.code === 'EPIPE') finish();
      else finish(err);
    });
    input.pipe(socket, { end: false });
    socket.pipe(output, { end: false });
  });
}

/** Options of startTls(): how the client checks the server and what it shows of itself. */
export interface ClientTlsOptions {
  /** The name to ask for (SNI) and to check the certificate against. Default: the host connected to, unless it is an IP literal. */
  servername?: string;
  /** CA certificates (PEM text) to trust instead of the system's. Default: the system's (Node's bundle plus NODE_EXTRA_CA_CERTS). */
  ca?: string;
  /** A client certificate and its key (PEM text). Default none. */
  cert?: string;
  key?: string;
  /** Skip verifying the server's certificate. Default false. */
  insecure?: boolean;
  /** Resume this session (a ticket from an earlier connection's 'session' event). Default none. */
  session?: Buffer;
}

/**
 * Start TLS on a connected socket (after any PROXY header was sent, as the server
 * expects it first). Resolves with the TLSSocket once the handshake is done and the
 * server's certificate verified; rejects with a TcpkitError `TCPKIT_TLS` (exit 111)
 * saying why: the verification error's code and what to do about it, or the
 * handshake's failure. `where`: the server as error messages name it.
 */
export function startTls(socket: net.Socket, where: string, host: string, options: ClientTlsOptions = {}): Promise<tls.TLSSocket> {
  const servername = options.servername ?? (net.isIP(host) === 0 ? host : undefined);
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket,
      ...(servername !== undefined && { servername }),
      ...(options.ca !== undefined && { ca: options.ca }),
      ...(options.cert !== undefined && { cert: options.cert }),
      ...(options.key !== undefined && { key: options.key }),
      ...(options.session !== undefined && { session: options.session }),
      rejectUnauthorized: false,
      // A hostname checked by us below, so the message can say which name was expected.
      checkServerIdentity: () => undefined,
    });
    secure.once('error', (err: NodeJS.ErrnoException & { reason?: string }) => {
      secure.destroy();
      reject(new TcpkitError('TCPKIT_TLS', `TLS handshake with ${where} failed: ${err.reason ?? err.code ?? err.message}`, { cause: err }));
    });
    secure.once('secureConnect', () => {
      secure.removeAllListeners('error');
      if (!options.insecure) {
        const why = secure.authorizationError ? String(secure.authorizationError) : undefined;
        // Without a name (an IP literal), the certificate must name that address (an IP SAN).
        const expected = servername ?? host;
        const identity = tls.checkServerIdentity(expected, secure.getPeerCertificate());
        const problem = why
          ? `certificate not verified: ${why}${/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY|SELF-SIGNED/i.test(why) ? ' (give the CA that signed it with --tls-ca FILE, or --insecure to skip the check)' : ''}`
          : identity
            ? `certificate does not name ${expected}: ${identity.message} (--servername NAME to ask for another name)`
            : undefined;
        if (problem) {
          secure.destroy();
          reject(new TcpkitError('TCPKIT_TLS', `TLS with ${where}: ${problem}`));
          return;
        }
      }
      resolve(secure);
    });
  });
}
