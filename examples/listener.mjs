// The net.createServer listener idiom: listen for 'data' and 'end' and return at once.
// The connection lives on after the function returns, until the socket closes.
//
//   node bin/tcpkit.js serve --handler examples/listener.mjs --port 9877

/** @type {import('tcpkit').Handler} */
export default function echo({ socket }) {
  socket.on('data', (chunk) => {
    // Backpressure: stop reading while the peer is not reading what we send.
    if (!socket.write(chunk)) socket.pause();
  });
  socket.on('drain', () => socket.resume());
  // The peer's FIN ends its side only (half-open): send ours once everything is written.
  socket.on('end', () => socket.end());
}
