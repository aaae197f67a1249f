// Async iteration: read with `for await`, write back, end when the peer has half-closed.
// The loop ends at the peer's FIN and leaves the socket open for the last writes and end().
//
//   node bin/tcpkit.js serve --handler examples/iterator.mjs --port 9877

import { once } from 'node:events';

/** @type {import('tcpkit').Handler} */
export default async function echo({ socket }) {
  for await (const chunk of socket) {
    // Backpressure: wait for 'drain' before reading more.
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  socket.end();
}
