// A line protocol over readline: each line is a command.
//   ECHO text   -> text
//   LEN text    -> the length of text in bytes
//   QUIT        -> "bye", then the server closes
//   anything else -> "ERR unknown command", and a log line through ctx.log
// At the peer's FIN the server answers what it has read, then closes.
//
//   node bin/tcpkit.js serve --handler examples/lines.mjs --port 9877

import readline from 'node:readline';

/** @type {import('tcpkit').Handler} */
export default async function lines({ socket, log }) {
  socket.setEncoding('utf8');
  // crlfDelay: a CR followed by LF is one line end, as telnet sends.
  const rl = readline.createInterface({ input: socket, crlfDelay: Infinity });
  for await (const line of rl) {
    const [command, ...rest] = line.split(' ');
    const text = rest.join(' ');
    if (command === 'ECHO') socket.write(`${text}\n`);
    else if (command === 'LEN') socket.write(`${Buffer.byteLength(text)}\n`);
    else if (command === 'QUIT') break;
    else {
      socket.write('ERR unknown command\n');
      log(`unknown command ${JSON.stringify(command.slice(0, 32))}`, 'BAD_COMMAND');
    }
  }
  rl.close();
  socket.end('bye\n');
}
