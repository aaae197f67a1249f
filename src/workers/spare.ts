/**
 * Entry point of a spare child (the fork model's --spare): a process started ahead
 * of need that loads its service, says `ready` on its IPC channel, and waits. The
 * server sends it one accepted socket (SCM_RIGHTS over the channel); the spare
 * serves that connection alone and exits, as a child started for it would.
 *
 * It holds no listening socket and no other client's socket (tcpkit's descriptors
 * are close-on-exec; the server closes its copy of the socket once sent).
 *
 * It reports as a fork child does (./conn.ts): ctx.log and failures as records on
 * its descriptor 2, a pipe the server reads (./child-report.ts).
 */
import type net from 'node:net';
import { runService } from '../connection/run.js';
import { loadService } from '../services/index.js';
import { reportOnStderr } from './child-report.js';
import { specFromEnv, type SpareMessage } from './messages.js';

const report = reportOnStderr();
process.on('uncaughtException', report.fatal);
const spec = specFromEnv('spare', 'tcpkit spare');
if (!process.send) {
  process.stderr.write('tcpkit spare: the IPC channel is missing; this program is started by tcpkit serve\n');
  process.exit(100);
}
// The server decides when a child stops (see conn.ts).
process.on('SIGINT', () => {});
// The server went away, or closes idle spares by disconnecting: nothing to serve.
process.once('disconnect', () => {
  if (!serving) process.exit(0);
});

let serving = false;
const service = await loadService(spec.service).catch(report.fatal);

process.on('message', (msg: SpareMessage, socket?: net.Socket) => {
  if (msg.type !== 'connection' || !socket || serving) return;
  serving = true;
  // A socket rebuilt from a passed handle is not half-open by default; a peer's FIN must end only its side.
  socket.allowHalfOpen = true;
  socket.pause();
  // The channel has done its work; it must not keep this process alive.
  process.channel?.unref();
  void runService(service, { socket, info: msg.info, options: spec.service.options ?? {}, log: report.log }, report.failed).then(() =>
    process.exit(report.hasFailed ? 1 : 0),
  );
});
process.send({ type: 'ready' } satisfies SpareMessage);
