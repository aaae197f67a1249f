/**
 * Entry point of a child process that serves exactly one connection (the fork
 * model), as the seed's child does: the connected socket is this process's
 * descriptors 0 and 1 (inetd's convention); it holds no listening socket and no
 * other client's socket, because every descriptor tcpkit opens is close-on-exec.
 *
 * argv: SERVICE PEER, for ps. The spec comes in TCPKIT_CHILD (JSON).
 */
import net from 'node:net';
import { runService } from '../connection/run.js';
import { loadService } from '../services/index.js';
import { specFromEnv } from './messages.js';

const spec = specFromEnv('child', 'tcpkit child');

// A ^C in the terminal signals the whole process group; the parent decides when a
// child stops (it drains first, then sends SIGTERM after --grace).
process.on('SIGINT', () => {});

// Load the service before opening the socket: a socket on a descriptor starts reading at
// once, and a peer's reset while the service loads would be an 'error' nobody listens to.
const service = await loadService(spec.service);
const socket = new net.Socket({ fd: 0, readable: true, writable: true, allowHalfOpen: true });
let failed = false;
await runService(service, { socket, info: spec.info, options: spec.service.options ?? {}, log: (reason, code) => {
  process.stderr.write(`tcpkit child ${process.pid}: ${code ?? 'service'} ${reason}\n`);
} }, (err) => {
  failed = true;
  process.stderr.write(`tcpkit child ${process.pid}: ${(err as Error)?.stack ?? String(err)}\n`);
});
process.exit(failed ? 1 : 0);
