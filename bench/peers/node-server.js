// The floor: a plain single-process Node `net` server, no tcpkit, answering either
// echo or the bench protocol ("K\n" -> K bytes, repeat until EOF).
// usage: node node-server.js echo|bench [PORT]  (prints the bound port on stdout)
import net from 'node:net';

const [kind = 'echo', portArg = '0'] = process.argv.slice(2);
const FILL = Buffer.alloc(65536, 0x61);

function echo(socket) {
  socket.pipe(socket);
}

function benchService(socket) {
  let pending = '';
  socket.on('data', (chunk) => {
    pending += chunk.toString('latin1');
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      let n = Number(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      while (n > 0) {
        const k = Math.min(n, FILL.length);
        socket.write(k === FILL.length ? FILL : FILL.subarray(0, k));
        n -= k;
      }
    }
  });
  socket.on('end', () => socket.end());
}

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', () => {});
  (kind === 'bench' ? benchService : echo)(socket);
});
server.listen({ port: Number(portArg), host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
