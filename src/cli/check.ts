/**
 * `tcpkit check [--config FILE | serve options]`: what `serve` would refuse at
 * start, found without binding or starting anything (nginx -t, haproxy -c, sshd -t).
 * One line per problem on stderr and exit 100; `ok` on stdout and exit 0.
 */
import { createServer } from '../server.js';
import { checkConfigFile, unixPathProblems } from '../super/check.js';
import { TcpkitError } from '../errors.js';
import { parseServeArgs } from './serve.js';
import { checkUserFlags } from './superserve.js';
import { checkPidFile } from './pidfile.js';
import { checkTls } from '../tls/check.js';

export const checkHelp = `usage: tcpkit check --config FILE [--user USER] [--group GROUP]
       tcpkit check [SERVICE] [serve options]

Check what \`tcpkit serve\` with the same arguments would refuse at start, without binding
a socket or starting anything: the configuration file (size, YAML, schema, listen addresses,
access rules, every number within its documented maximum), users and groups, every program
(found, and executable by the user it will run as), each service's options, each UNIX socket path
(its directory exists and may be written, no live server or other file there, a mode someone can
connect with, an owner and group that exist), and each --handler
module (loaded, as serve loads it: its top-level code runs). A SIGHUP
reload of a --config server runs the same check on the new file, so a file \`check\`
accepts is a file a reload accepts.

Prints "FILE: ok (N services, M addresses)" or "serve options: ok" and exits 0; otherwise
one line for every problem (not only the first) on stderr and exit 100.
With TLS (--tls-cert, or tls: in a service): certificates and keys parse and match, each
certificate file's chain is in order, SNI names are covered, nothing has expired (errors);
a certificate expiring within 14 days and a key file readable by group or others are
warnings ("tcpkit check: warning: ..."), which leave the exit code 0.`;

function messageOf(err: unknown): string {
  return err instanceof TcpkitError || err instanceof Error ? err.message : String(err);
}

export async function check(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(`${checkHelp}\n`);
    return 0;
  }
  const problems: string[] = [];
  const warnings: string[] = [];
  let ok = 'serve options: ok';
  try {
    const { values, config, options } = await parseServeArgs(argv, 'check');
    if (values['pid-file'] !== undefined) {
      try {
        checkPidFile(values['pid-file']);
      } catch (err) {
        problems.push(messageOf(err));
      }
    }
    if (config !== undefined) {
      const result = await checkConfigFile(config, { user: values.user, group: values.group });
      problems.push(...result.problems);
      warnings.push(...(result.warnings ?? []));
      const services = result.config?.services ?? [];
      const addresses = services.reduce((n, s) => n + s.listen.length, 0);
      ok = `${config}: ok (${services.length} service${services.length === 1 ? '' : 's'}, ${addresses} address${addresses === 1 ? '' : 'es'})`;
    } else if (options) {
      // The user exists and can run the program; then the options as createServer takes them (nothing is bound).
      try {
        checkUserFlags(values, options.service);
      } catch (err) {
        problems.push(messageOf(err));
      }
      if (options.path !== undefined) problems.push(...unixPathProblems(options.path, options.unixMode, '--unix'));
      try {
        // What listen() refuses before serving (the handler loads; no spare for a program), as serve.
        const server = createServer(options);
        await server.check();
        // TLS files: parse, pairs, chain order, SNI names, expiry (errors); expiring soon, key permissions (warnings).
        if (server.options.tls) {
          const tls = checkTls(server.options.tls);
          problems.push(...tls.errors);
          warnings.push(...tls.warnings);
        }
      } catch (err) {
        problems.push(messageOf(err));
      }
    }
  } catch (err) {
    // A usage error lists every problem of the arguments, one per line.
    problems.push(...messageOf(err).split('\n'));
  }
  // Warnings never change the exit code: the server would start.
  process.stderr.write(warnings.map((w) => `tcpkit check: warning: ${w}\n`).join(''));
  if (problems.length > 0) {
    process.stderr.write(problems.map((p) => `tcpkit check: ${p}\n`).join(''));
    return 100;
  }
  process.stdout.write(`${ok}\n`);
  return 0;
}
