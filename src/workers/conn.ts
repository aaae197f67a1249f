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
const spec = specFromEnv('child', 'tcpkit child');

// A ^C in the terminal signals the whole process group; the parent decides when a
// child stops (it drains first, then sends SIGTERM after --grace).
process.on('SIGINT', () => {});

// Load the service before opening the socket: a socket on a descriptor starts reading at
// once, and a peer's reset while the service loads would be an 'error' nobody listens to.
let service: Awaited<ReturnType<typeof loadService>>;
try {
  service = await loadService(spec.service);
} catch (err) {
  // Reported as the connection's failure, like a throw of the service, not as a raw stack on stderr.
  report.failed(err);
  process.exit(1);
}
const socket = new net.Socket({ fd: 0, readable: true, writable: true, allowHalfOpen: true });
await runService(service, { socket, info: spec.info, options: spec.service.options ?? {}, log: report.log }, report.failed);
process.exit(report.hasFailed ? 1 : 0);
