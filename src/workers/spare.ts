/**
 * Entry point of a spare child (the fork model's --spare): a process started ahead
 * of need that loads its service, says `ready` on its IPC channel, and waits. The
 * server sends it one accepted socket (SCM_RIGHTS over the channel); the spare
 * serves that connection alone and exits, as a child started for it would.
 *
 * It holds no listening socket and no other client's socket (tcpkit's descriptors
 * are close-on-exec; the server closes its copy of the socket once sent).
 */
import type net from 'node:net';
import { runService } from '../connection/run.js';
import { loadService } from '../services/index.js';
import { specFromEnv, type SpareMessage } from './messages.js';

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
const service = await loadService(spec.service);

process.on('message', (msg: SpareMessage, socket?: net.Socket) => {
  if (msg.type !== 'connection' || !socket || serving) return;
  serving = true;
  // A socket rebuilt from a passed handle is not half-open by default; a peer's FIN must end only its side.
  socket.allowHalfOpen = true;
  socket.pause();
  // The channel has done its work; it must not keep this process alive.
  process.channel?.unref();
  let failed = false;
  const log = (reason: string, code?: string) => process.stderr.write(`tcpkit child ${process.pid}: ${code ?? 'service'} ${reason}\n`);
  void runService(service, { socket, info: msg.info, options: spec.service.options ?? {}, log }, (err) => {
    failed = true;
    process.stderr.write(`tcpkit child ${process.pid}: ${(err as Error)?.stack ?? String(err)}\n`);
  }).then(() => process.exit(failed ? 1 : 0));
});
process.send({ type: 'ready' } satisfies SpareMessage);
