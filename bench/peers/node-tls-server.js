// The TLS floor: a plain single-process Node `tls.createServer` echo, no tcpkit, with Node's
// defaults (session tickets on, as tcpkit's).
// usage: node node-tls-server.js CERT KEY [PORT]  (prints the bound port on stdout)
import fs from 'node:fs';
import tls from 'node:tls';

const [cert, key, portArg = '0'] = process.argv.slice(2);
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), allowHalfOpen: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});
server.on('tlsClientError', () => {});
server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
