/**
 * chargen (RFC 864, TCP): send lines of 72 characters, each followed by CRLF,
 * until the peer closes the connection. The characters are the 95 printable
 * ASCII characters (32 ' ' to 126 '~') in a rotating pattern: line n starts with
 * the character at offset n mod 95 and continues in order, wrapping after '~'.
 * Input is read and thrown away. As inetd does, a FIN from the peer alone does not
 * stop the stream: the peer closes (and our next write fails) to stop it.
 *
 * The pattern repeats every 95 lines (7,030 bytes), so one precomputed buffer is
 * written again and again; with backpressure: when the socket's buffer is full
 * we wait for 'drain', so a peer that reads slowly costs at most one buffer.
 */
import type { ServiceContext } from './types.js';

/** Characters per line, without CRLF. */
export const LINE_LENGTH = 72;
const FIRST = 32;
const COUNT = 95;

/** One full cycle of the pattern: 95 lines of 72 characters + CRLF. */
export const CYCLE: Buffer = (() => {
  const b = Buffer.alloc(COUNT * (LINE_LENGTH + 2));
  let o = 0;
  for (let line = 0; line < COUNT; line++) {
    for (let i = 0; i < LINE_LENGTH; i++) b[o++] = FIRST + ((line + i) % COUNT);
    b[o++] = 13;
    b[o++] = 10;
  }
  return b;
})();

export default function chargen({ socket }: ServiceContext): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      done = true;
      socket.off('drain', pump);
      resolve();
    };
    const pump = () => {
      while (!done && !socket.destroyed && socket.writable) {
        if (!socket.write(CYCLE)) return; // resumed by 'drain'
      }
      if (!done) finish();
    };
    socket.once('close', finish);
    socket.on('drain', pump);
    socket.on('data', () => {});
    socket.resume();
    pump();
  });
}
