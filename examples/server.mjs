// A small library program: register a handler by URL (relative to this file, not to the
// working directory), serve it under a model, print the port, close cleanly on ^C.
//
//   node examples/server.mjs [MODEL] [PORT]      (default: event, port 0 = any free port)

import { createServer, formatEvent, services } from 'tcpkit';

const model = process.argv[2] ?? 'event';
const port = Number(process.argv[3] ?? 0);

// Awaited: a module that does not load, or exports no function, is reported here, naming its file.
await services.registerService('upper', new URL('./pipeline.mjs', import.meta.url));

const server = createServer({ host: '127.0.0.1', port, model, service: 'upper', workers: 2 });
server.on('event', (event) => process.stderr.write(`${formatEvent(event)}\n`));
const address = await server.listen();
console.log(address.port);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    // Graceful: no new connections, the open ones get 5 s to finish.
    void server.close({ grace: 5 });
  });
}
