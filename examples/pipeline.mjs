// stream/promises pipeline through a Transform: every byte back upper-cased (ASCII only,
// other bytes unchanged). pipeline() handles backpressure, ends our side after the peer's
// FIN, and rejects on a failure, which the server logs as one service error.
//
//   node bin/tcpkit.js serve --handler examples/pipeline.mjs --port 9877

import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** ASCII a-z to A-Z, byte for byte: never decodes, so a chunk may split anywhere. */
function upperCase() {
  return new Transform({
    transform(chunk, _encoding, done) {
      const out = Buffer.from(chunk);
      for (let i = 0; i < out.length; i++) if (out[i] >= 0x61 && out[i] <= 0x7a) out[i] -= 0x20;
      done(null, out);
    },
  });
}

/** @type {import('tcpkit').Handler} */
export default async function upper({ socket }) {
  await pipeline(socket, upperCase(), socket);
}
