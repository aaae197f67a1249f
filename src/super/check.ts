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
import fs from 'node:fs';
import path from 'node:path';
import { ExitCode, TcpkitError } from '../errors.js';
import { fdutil } from '../net/fdutil.js';
import { parseUnixMode } from '../options.js';
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

/**
 * What `serve` would meet at a UNIX socket path, without binding: the directory exists and this process
 * (which binds, before any --user drop) may create the socket there; nothing but a stale socket is at the
 * path (a live server or another kind of file is refused by serve); the mode lets someone connect (a
 * client needs write permission on the socket). The owner and group are checked with the options
 * (unixOwner). An abstract name (@name) has no file: nothing to check. One message per problem.
 */
export function unixPathProblems(socketPath: string, mode: unknown, label: string): string[] {
  if (socketPath.startsWith('@')) return [];
  const problems: string[] = [];
  const dir = path.dirname(path.resolve(socketPath));
  let isDir = false;
  try {
    isDir = fs.statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) problems.push(`${label}: directory ${dir} does not exist`);
  else {
    let writable = true;
    try {
      fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    } catch {
      writable = false;
      problems.push(`${label}: this user (uid ${process.getuid?.()}) cannot create the socket in ${dir} (needs write and search permission)`);
    }
    if (writable) try {
      const found = fdutil.unixProbe(socketPath);
      if (found === 'live') problems.push(`${label}: a server is accepting on ${socketPath}`);
      if (found === 'other') problems.push(`${label}: ${socketPath} exists and is not a socket (serve leaves it as it is and refuses to start)`);
    } catch (err) {
      problems.push(`${label}: ${socketPath}: ${messageOf(err)}`);
    }
  }
  try {
    if ((parseUnixMode(mode) & 0o222) === 0) problems.push(`${label}: mode ${JSON.stringify(mode)} gives nobody write permission: only root could connect`);
  } catch {
    // A bad mode is reported by the option checks.
  }
  return problems;
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
    for (const [i, address] of svc.listen.entries()) {
      if (address.path !== undefined) problems.push(...unixPathProblems(address.path, svc.options.unixMode, `${file}: services.${svc.name}.listen[${i}]`));
    }
    try {
      const servers = svc.listen.map((address) => new Server({ ...svc.options, host: address.host, port: address.port, ...(address.path !== undefined && { path: address.path }) }));
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
