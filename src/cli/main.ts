/**
 * The tcpkit command: picks a subcommand, runs it, maps errors to one line on
 * stderr and a documented exit code (100 usage, 111 system failure).
 */
import { exitCodeOf, TcpkitError, UsageError } from '../errors.js';
import { bench, benchHelp } from './bench.js';
import { check, checkHelp } from './check.js';
import { client, clientHelp } from './client.js';
import { serve, serveHelp } from './serve.js';
import { status, statusHelp } from './status.js';

const usage = `usage: tcpkit COMMAND [options]

Commands:
  serve [SERVICE]     run a concurrent TCP server (default: echo on port 9877)
  client [HOST] [PORT]  the echo client: stdin to the server, its reply to stdout
  status [--pid PID | --port PORT]  sockets and processes of a server (netstat + ps)
  bench [HOST] [PORT]   load generator: connections/s, latency, throughput, server CPU
  check [--config FILE | serve options]  what serve would refuse, without binding anything

Run tcpkit COMMAND --help for a command's options.`;

const commands: Record<string, (argv: string[]) => Promise<number>> = { serve, client, status, bench, check };

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined;
    process.stdout.write(`${topic === 'serve' ? serveHelp : topic === 'client' ? clientHelp : topic === 'status' ? statusHelp : topic === 'bench' ? benchHelp : topic === 'check' ? checkHelp : usage}\n`);
    return command === undefined ? 100 : 0;
  }
  const run = commands[command];
  try {
    if (!run) throw new UsageError(`unknown command ${JSON.stringify(command)} (commands: ${Object.keys(commands).join(', ')})`);
    return await run(rest);
  } catch (err) {
    const message = err instanceof TcpkitError ? err.message : (err as Error)?.stack ?? String(err);
    // One `tcpkit:` line per line of the message (a configuration check lists every problem).
    process.stderr.write(message.split('\n').map((line) => `tcpkit: ${line}\n`).join(''));
    return exitCodeOf(err);
  }
}
