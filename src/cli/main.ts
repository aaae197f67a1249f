/**
 * The tcpkit command: picks a subcommand, runs it, maps errors to one line on
 * stderr and a documented exit code (100 usage, 111 system failure).
 */
import fs from 'node:fs';
import { exitCodeOf, TcpkitError, UsageError } from '../errors.js';
import { DEFAULT_PORT } from '../options.js';

/** The package's version, from its package.json (two folders up from src/cli and dist/cli alike). */
function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const usage = `usage: tcpkit COMMAND [options]

Commands:
  serve [SERVICE]     run a concurrent TCP server (default: echo on port ${DEFAULT_PORT})
  client [HOST] [PORT]  the echo client: stdin to the server, its reply to stdout
  status [--pid PID | --port PORT]  sockets and processes of a server (netstat + ps)
  bench [HOST] [PORT]   load generator: connections/s, latency, throughput, server CPU
  check [--config FILE | serve options]  what serve would refuse, without binding anything

Run tcpkit COMMAND --help for a command's options; tcpkit --version (-V) prints the version.`;

/**
 * Each command's module, loaded when that command runs: a server process then holds only
 * the server's code (not the status view's HTTP and metrics, nor the load generator), and
 * every garbage collection of a busy server walks a smaller heap.
 */
const commands: Record<string, () => Promise<{ run: (argv: string[]) => Promise<number>; help: string }>> = {
  serve: async () => import('./serve.js').then((m) => ({ run: m.serve, help: m.serveHelp })),
  client: async () => import('./client.js').then((m) => ({ run: m.client, help: m.clientHelp })),
  status: async () => import('./status.js').then((m) => ({ run: m.status, help: m.statusHelp })),
  bench: async () => import('./bench.js').then((m) => ({ run: m.bench, help: m.benchHelp })),
  check: async () => import('./check.js').then((m) => ({ run: m.check, help: m.checkHelp })),
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined;
    const load = topic === undefined ? undefined : commands[topic];
    process.stdout.write(`${load ? (await load()).help : usage}\n`);
    return command === undefined ? 100 : 0;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    process.stdout.write(`tcpkit ${version()}\n`);
    return 0;
  }
  const load = commands[command];
  try {
    if (!load) throw new UsageError(`unknown command ${JSON.stringify(command)} (commands: ${Object.keys(commands).join(', ')})`);
    return await (await load()).run(rest);
  } catch (err) {
    const message = err instanceof TcpkitError ? err.message : (err as Error)?.stack ?? String(err);
    // One `tcpkit:` line per line of the message (a configuration check lists every problem).
    process.stderr.write(message.split('\n').map((line) => `tcpkit: ${line}\n`).join(''));
    return exitCodeOf(err);
  }
}
