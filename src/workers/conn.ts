/**
 * Entry point of a child process that serves exactly one connection (the fork
 * model), as the seed's child does: the connected socket is this process's
 * descriptors 0 and 1 (inetd's convention); it holds no listening socket and no
 * other client's socket, because every descriptor tcpkit opens is close-on-exec.
 *
 * argv: SERVICE PEER, for ps. The spec comes in TCPKIT_CHILD (JSON).
 *
 * Its descriptor 2 is a pipe the server reads: the service's ctx.log and its
 * failure go there as records (./child-report.ts), anything else it writes there is
 * logged as its stderr text. Nothing of it reaches the server's stderr raw.
 */
import net from 'node:net';
import { runService } from '../connection/run.js';
import { loadService } from '../services/index.js';
import { reportOnStderr } from './child-report.js';
import { specFromEnv } from './messages.js';

const report = reportOnStderr();
process.on('uncaughtException', report.fatal);
const spec = specFromEnv('child', 'tcpkit child');

// A ^C in the terminal signals the whole process group; the parent decides when a
// child stops (it drains first, then sends SIGTERM after --grace).
process.on('SIGINT', () => {});

// Load the service before opening the socket: a socket on a descriptor starts reading at
// once, and a peer's reset while the service loads would be an 'error' nobody listens to.
// A service that cannot load is the connection's failure, like a throw of the service, not a raw stack on stderr.
const service = await loadService(spec.service).catch(report.fatal);
const socket = new net.Socket({ fd: 0, readable: true, writable: true, allowHalfOpen: true });
await runService(service, { socket, info: spec.info, options: spec.service.options ?? {}, log: report.log }, report.failed);
process.exit(report.hasFailed ? 1 : 0);
