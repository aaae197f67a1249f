/**
 * Everything `serve --config` would refuse at start, checked without binding or
 * starting anything: the file (size, type, YAML, schema, addresses, access rules,
 * limits within their maxima), the user and group, every exec program (found, and
 * executable by the user it will run as), each service's options as createServer
 * takes them, and what Server.check refuses (a handler that cannot load, spare
 * children for a program). Every problem, one line each. `tcpkit check --config FILE` prints the problems; the super-server's
 * start and its SIGHUP reload go through the same function, so what `check` accepts
 * a reload accepts (and the reverse).
 */
import { ExitCode, TcpkitError } from '../errors.js';
import { Server } from '../server.js';
import { checkRunnableBy } from '../services/exec-options.js';
import { loadConfigProblems, type Config } from './config.js';
import { resolveIds, type Principal } from './privileges.js';
import { checkTls } from '../tls/check.js';

/** A user and group given on the command line, which override the file's. */
export interface CheckOverrides {
  user?: Principal;
  group?: Principal;
}

/** The outcome: the configuration when the file itself could be read, and one line per problem. */
export interface ConfigCheck {
  config: Config | undefined;
  problems: string[];
  /** What would not stop a start but deserves attention (a certificate expiring soon, a key others may read). */
  warnings?: string[];
}

function messageOf(err: unknown): string {
  return err instanceof TcpkitError || err instanceof Error ? err.message : String(err);
}

/** Check a configuration file; never throws for a problem in it (see the file comment). */
export async function checkConfigFile(file: string, overrides: CheckOverrides = {}): Promise<ConfigCheck> {
  let config: Config;
  const problems: string[] = [];
  const warnings: string[] = [];
  try {
    // Size cap, regular file only, YAML, schema, addresses, users, access rules, the option table;
    // one line per problem (every service's), not only the first. The services that pass go on.
    const loaded = loadConfigProblems(file);
    config = loaded.config;
    problems.push(...loaded.problems.map((p) => p.message));
  } catch (err) {
    return { config: undefined, problems: messageOf(err).split('\n') };
  }
  const user = overrides.user ?? config.user;
  const group = overrides.group ?? config.group;
  let ids: { uid?: number; gid?: number } = {};
  // The file's own user and group are checked with the file; a problem there is listed once.
  const fromFile = overrides.user === undefined && overrides.group === undefined;
  const listed = fromFile && problems.some((p) => p.startsWith(`${file}: user: `) || p.startsWith(`${file}: group: `));
  try {
    if (!listed) ids = resolveIds(user, group);
  } catch (err) {
    problems.push(`${file}: ${overrides.user !== undefined || overrides.group !== undefined ? '--user/--group' : 'user, group'}: ${messageOf(err)}`);
  }
  for (const svc of config.services) {
    const spec = svc.options.service;
    const exec = typeof spec === 'object' && spec.name === 'exec' ? (spec.options as { argv: string[]; uid?: number; gid?: number }) : undefined;
    if (exec) {
      // The program runs as the service's own user if it has one, else as the server's.
      try {
        checkRunnableBy(exec.argv[0]!, { uid: exec.uid ?? ids.uid, gid: exec.gid ?? ids.gid }, `services.${svc.name}.exec`);
      } catch (err) {
        problems.push(`${file}: ${messageOf(err)}`);
      }
    }
    // The options as createServer checks them, per listen address (nothing is bound by a constructor),
    // then what listen() refuses before serving: the handler loads, no spare for a program (Server.check).
    try {
      const servers = svc.listen.map((address) => new Server({ ...svc.options, host: address.host, port: address.port }));
      await servers[0]?.check();
      const tls = servers[0]?.options.tls;
      if (tls) {
        const found = checkTls(tls);
        problems.push(...found.errors.map((e) => `${file}: services.${svc.name}.${e.replace(/^tlsCert/, 'tls.cert').replace(/^tlsSni/, 'tls.sni').replace(/^tlsCa/, 'tls.ca')}`));
        warnings.push(...found.warnings.map((w) => `${file}: services.${svc.name}.${w.replace(/^tlsCert/, 'tls.cert').replace(/^tlsSni/, 'tls.sni')}`));
      }
    } catch (err) {
      problems.push(`${file}: services.${svc.name}: ${messageOf(err)}`);
    }
  }
  return { config, problems, warnings };
}

/**
 * The configuration if `checkConfigFile` finds no problem, else a ConfigError with
 * every problem, one per line (TCPKIT_CONFIG, exit 100; start and SIGHUP reload use this).
 */
export async function loadCheckedConfig(file: string, overrides: CheckOverrides = {}): Promise<Config> {
  const { config, problems } = await checkConfigFile(file, overrides);
  if (problems.length > 0 || !config) throw new TcpkitError('TCPKIT_CONFIG', problems.join('\n'), { exitCode: ExitCode.USAGE });
  return config;
}
