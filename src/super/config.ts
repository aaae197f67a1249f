/**
 * The super-server's configuration file: several services at once, as inetd.conf
 * or xinetd.d has them. YAML (JSON is YAML too), read by the `yaml` package and
 * checked by a JSON Schema (ajv), then by the rules a schema cannot say (exactly
 * one of internal/exec/handler, listen addresses, users, access rules). Every
 * error names the file, the field's path and what is wrong:
 *
 *     tcpkit.yaml: services.echo.limits.perSource: must be integer
 *
 *     user: nobody                 # optional: the whole server drops to it after binding
 *     services:
 *       echo:
 *         listen: [127.0.0.1:7, "[::1]:7"]
 *         internal: echo
 *       cat:
 *         listen: 0.0.0.0:2000
 *         exec: [/bin/cat]         # PROGRAM ARGS..., no shell
 *         model: fork
 *         limits: { maxConns: 40, perSource: 4, rate: 10, idleTimeout: 60, timeLimit: 3600 }
 *         proxyProtocol: true      # behind a balancer: v1/v2 header first (or "v1", "v2")
 *         proxyFrom: [192.0.2.0/24]  # only these peers may send it (others refused; proxyUntrusted: direct serves them as themselves)
 *         env: { clear: true, pass: [PATH, LANG] }   # exec: only these of the server's variables
 *         access:
 *           - allow: 127.0.0.0/8
 *             env: { GREETING: hello }
 *           - deny: all
 */
import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { AccessRules, type AccessRuleSpec } from '../admission/access.js';
import { proxyTrust } from '../net/proxy-gate.js';
import { checkHost, isUnixAddress, parseHostPort, UNIX_PREFIX } from '../address.js';
import { ConfigError, InvalidOptionError } from '../errors.js';
import '../models/index.js'; // the model choices of the schema
import { checkNumber, checkUnixPath, parseUnixMode, configOptions, configSchemaProperties, NUMERIC_OPTIONS, numericAtConfigPath, numericRule, OPTIONS, type NumericOptionName } from '../options.js';
import { lookupGroup, lookupUser, resolveIds, unixOwner, type Principal } from './privileges.js';
import type { ServerOptions } from '../server.js';
import { serviceNames, validateServiceSpec } from '../services/index.js';
import type { ServiceSpec } from '../services/types.js';

/** One listen address of a service, as written and as parsed. */
export interface ListenAddress {
  /** As written (`127.0.0.1:7`, `[::1]:7`): the key that keeps a listening socket across reloads. */
  text: string;
  host: string;
  port: number;
  /** `unix:/run/x.sock` (or `unix:@name`): the UNIX-domain socket path instead of host and port. */
  path?: string;
}

/** One service, ready for createServer. */
export interface ServiceConfig {
  name: string;
  listen: ListenAddress[];
  /** Everything but the address: createServer({ ...options, fd }) per listen address. */
  options: ServerOptions;
  /** What defines the service (all but `listen`), to tell on reload whether it changed. */
  fingerprint: string;
}

/** A whole configuration file. */
export interface Config {
  file: string;
  /** Drop the whole server to this user after binding. Default: stay as started. */
  user?: Principal;
  /** Drop the whole server to this group after binding. Default: the user's primary group. */
  group?: Principal;
  services: ServiceConfig[];
}

const principal = { type: ['string', 'integer'], minLength: 1, minimum: 0 };

/** The schema; field names are ServerOptions' own. */
const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['services'],
  properties: {
    user: principal,
    group: principal,
    services: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['listen'],
        properties: {
          listen: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
          internal: { type: 'string', enum: serviceNames().filter((n) => n !== 'exec') },
          exec: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
          handler: { type: 'string', minLength: 1 },
          options: { type: 'object' },
          resolve: { type: 'boolean' },
          // exec: the program's stderr, as --exec-stderr (log: `stderr` lines; inherit: the server's own).
          execStderr: { type: 'string', enum: [...OPTIONS.execStderr.choices] },
          env: {
            type: 'object',
            additionalProperties: false,
            required: ['clear'],
            properties: { clear: { type: 'boolean' }, pass: { type: 'array', items: { type: 'string', minLength: 1 } } },
          },
          // Every option a file may set, typed from the option table (src/options.ts).
          ...configSchemaProperties(),
          user: principal,
          group: principal,
          access: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              properties: {
                allow: { type: 'string', minLength: 1 },
                deny: { type: 'string', minLength: 1 },
                env: { type: 'object', additionalProperties: { type: 'string' } },
                cert: { type: 'string', minLength: 1 },
              },
            },
          },
        },
      },
    },
  },
} as const;

// coerceTypes 'array': `listen: 127.0.0.1:7` and `exec: /bin/cat` mean one-element lists.
// verbose: a type error carries the value, which the option table's message quotes.
// allErrors: every problem of the file is reported, not only the first.
const validate = new Ajv({ allErrors: true, coerceTypes: 'array', strict: false, verbose: true }).compile(schema);

/** `/services/echo/access/0/allow` → `services.echo.access[0].allow`. */
function fieldPath(pointer: string, extra?: string): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function schemaError(file: string, e: ErrorObject): ConfigError {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return new ConfigError(file, fieldPath(e.instancePath, String(params.additionalProperty)), 'unknown field');
    case 'required':
      return new ConfigError(file, fieldPath(e.instancePath, String(params.missingProperty)), 'is required');
    case 'enum':
      return new ConfigError(file, fieldPath(e.instancePath), `must be one of ${(params.allowedValues as string[]).join(', ')}`);
    case 'type': {
      // A numeric option of the wrong type: the option table's message, as for a value out of range.
      const pointer = e.instancePath.split('/');
      const field = pointer[1] === 'services' ? numericAtConfigPath(pointer.slice(3).join('.')) : undefined;
      if (field) return new ConfigError(file, fieldPath(e.instancePath), `${numericRule(field)}, got ${JSON.stringify(e.data)}`);
      return new ConfigError(file, fieldPath(e.instancePath), e.message ?? 'is invalid');
    }
    case 'propertyNames':
      return new ConfigError(file, fieldPath(e.instancePath, String(params.propertyName)), 'service names are letters, digits, _ . -');
    default:
      return new ConfigError(file, fieldPath(e.instancePath), e.message ?? 'is invalid');
  }
}

interface RawService {
  listen: string[];
  internal?: string;
  exec?: string[];
  handler?: string;
  options?: Record<string, unknown>;
  resolve?: boolean;
  execStderr?: 'log' | 'inherit';
  env?: { clear: boolean; pass?: string[] };
  model?: ServerOptions['model'];
  workers?: number;
  spare?: number;
  backlog?: number;
  grace?: number;
  proxyProtocol?: boolean | 'v1' | 'v2';
  proxyTimeout?: number;
  proxyFrom?: string[];
  proxyUntrusted?: 'refuse' | 'direct';
  unixMode?: string;
  unixOwner?: string;
  user?: Principal;
  group?: Principal;
  limits?: { maxConns?: number; perSource?: number; rate?: number; idleTimeout?: number; timeLimit?: number };
  access?: Array<{ allow?: string; deny?: string; env?: Record<string, string>; cert?: string }>;
}

interface RawConfig {
  user?: Principal;
  group?: Principal;
  services: Record<string, RawService>;
}

/** Run `fn`; an InvalidOptionError becomes a ConfigError at `at` (or at `at.option` when `sub`). */
function at<T>(file: string, where: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InvalidOptionError) {
      const message = err.message.startsWith(`${err.option}: `) ? err.message.slice(err.option.length + 2) : err.message;
      // Access rules already name their own path (services.x.access[0].allow).
      const where2 = err.option.startsWith('services.') ? err.option : where;
      throw new ConfigError(file, where2, message, err);
    }
    throw err;
  }
}

function serviceConfig(file: string, name: string, s: RawService, top: RawConfig): ServiceConfig {
  const base = `services.${name}`;
  const runs = (['internal', 'exec', 'handler'] as const).filter((k) => s[k] !== undefined);
  if (runs.length !== 1) {
    throw new ConfigError(file, base, `needs exactly one of internal, exec, handler (got ${runs.length ? runs.join(', ') : 'none'})`);
  }
  const listen = s.listen.map((text, i) =>
    at(file, `${base}.listen[${i}]`, () => {
      const where = `${base}.listen[${i}]`;
      if (isUnixAddress(text)) return { text, host: OPTIONS.host.default, port: 0, path: checkUnixPath(text.slice(UNIX_PREFIX.length), where) };
      const { host, port } = parseHostPort(text, OPTIONS.host.default, where);
      return { text, host: checkHost(host, where), port };
    }),
  );
  if (s.user !== undefined) at(file, `${base}.user`, () => lookupUser(s.user!, `${base}.user`));
  if (s.group !== undefined) at(file, `${base}.group`, () => lookupGroup(s.group!, `${base}.group`));
  if (s.env !== undefined && !s.exec) throw new ConfigError(file, `${base}.env`, 'applies to exec services');
  if (s.execStderr !== undefined && !s.exec) throw new ConfigError(file, `${base}.execStderr`, 'applies to exec services');
  if ((s.user !== undefined || s.group !== undefined) && !s.exec) {
    throw new ConfigError(file, `${base}.user`, 'a per-service user or group applies to exec services; use the top-level user to run the whole server as another user');
  }
  if ((s.user !== undefined || s.group !== undefined) && (top.user !== undefined || top.group !== undefined)) {
    const mine = resolveIds(s.user ?? top.user, s.group ?? top.group);
    const server = resolveIds(top.user, top.group);
    if (mine.uid !== server.uid || mine.gid !== server.gid) {
      throw new ConfigError(file, `${base}.user`, 'differs from the top-level user, which the whole server drops to (it then cannot start programs as another user)');
    }
  }
  (s.access ?? []).forEach((r, i) => {
    if ((r.allow === undefined) === (r.deny === undefined)) {
      throw new ConfigError(file, `${base}.access[${i}]`, 'needs exactly one of allow, deny');
    }
  });
  const access: AccessRuleSpec[] = (s.access ?? []).map((r) =>
    r.allow !== undefined
      ? { action: 'allow', from: r.allow, env: r.env, ...(r.cert !== undefined && { cert: r.cert }) }
      : { action: 'deny', from: r.deny!, env: r.env, ...(r.cert !== undefined && { cert: r.cert }) },
  );
  at(file, `${base}.access`, () => new AccessRules(access, `${base}.access`));
  if (s.proxyFrom !== undefined) at(file, `${base}.proxyFrom`, () => proxyTrust(s.proxyFrom!));

  let service: ServiceSpec;
  if (s.exec) {
    const ids = s.user !== undefined || s.group !== undefined ? resolveIds(s.user, s.group) : {};
    const env = s.env === undefined ? {} : { env: s.env };
    const stderr = s.execStderr !== undefined && s.execStderr !== OPTIONS.execStderr.default ? { stderr: s.execStderr } : {};
    service = { name: 'exec', options: { ...s.options, argv: s.exec, resolve: s.resolve ?? false, ...ids, ...env, ...stderr } };
  } else if (s.handler) {
    // Relative to the configuration file, wherever the server was started.
    service = { name: name, handler: path.resolve(path.dirname(file), s.handler), options: s.options };
  } else {
    service = { name: s.internal!, options: s.options };
  }
  service = at(file, `${base}.${runs[0]}`, () => validateServiceSpec(service));
  // Every option of the table a file may set, where its path says; numbers checked by the table.
  const fromTable: Record<string, unknown> = {};
  for (const [key, p] of configOptions()) {
    const value = p.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], s);
    if (key in NUMERIC_OPTIONS) at(file, `${base}.${p}`, () => checkNumber(key as NumericOptionName, value, `${base}.${p}`));
    if (value !== undefined) fromTable[key] = value;
  }
  if (s.unixMode !== undefined) at(file, `${base}.unixMode`, () => parseUnixMode(s.unixMode, `${base}.unixMode`));
  if (s.unixOwner !== undefined) at(file, `${base}.unixOwner`, () => unixOwner(s.unixOwner, `${base}.unixOwner`));
  const options: ServerOptions = { ...(fromTable as Partial<ServerOptions>), service, access };
  const { listen: _listen, ...rest } = s;
  return { name, listen, options, fingerprint: JSON.stringify([rest, service]) };
}

/**
 * One problem: that ConfigError; several: one ConfigError (the first's file and path)
 * whose message has one line per problem (`tcpkit check` and a refused reload show each).
 */
function configErrors(problems: ConfigError[]): ConfigError {
  const [first, ...rest] = problems as [ConfigError, ...ConfigError[]];
  if (rest.length === 0) return first;
  const head = `${first.file}: ${first.path ? `${first.path}: ` : ''}`;
  const text = [first.message.slice(head.length), ...rest.map((p) => p.message)].join('\n');
  return new ConfigError(first.file, first.path, text, first);
}

/** Parse and check configuration text; `file` names it in errors. Throws ConfigError (for several problems, one line each). */
export function parseConfig(text: string, file: string): Config {
  const { config, problems } = parseConfigProblems(text, file);
  if (problems.length > 0) throw configErrors(problems);
  return config;
}

/**
 * parseConfig's checks, every problem kept: the services that passed (for the checks
 * that come after, as `tcpkit check` runs them) and one ConfigError per problem.
 * Throws ConfigError only when the file has no services to go on with.
 */
export function parseConfigProblems(text: string, file: string): { config: Config; problems: ConfigError[] } {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, '', `not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  }
  let data: unknown;
  try {
    // An alias to no anchor, or too many aliases (a "billion laughs" file), throws here, not in parseDocument.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(file, '', `not valid YAML: ${(err as Error).message.split('\n')[0]}`, err);
  }
  // Every problem, one line each: the schema's (all of them), then each service's own checks.
  const problems: ConfigError[] = [];
  const badServices = new Set<string>();
  if (!validate(data)) {
    const seenLines = new Set<string>();
    for (const e of validate.errors!) {
      const err = schemaError(file, e);
      if (seenLines.has(err.message)) continue;
      seenLines.add(err.message);
      problems.push(err);
      const pointer = e.instancePath.split('/');
      if (pointer[1] === 'services' && pointer[2] !== undefined) badServices.add(pointer[2].replace(/~1/g, '/').replace(/~0/g, '~'));
      else badServices.add('');
    }
    // A file whose top level is wrong has no services to check further.
    if (badServices.has('')) throw configErrors(problems);
  }
  const raw = data as unknown as RawConfig;
  const collect = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err);
    }
  };
  if (raw.user !== undefined) collect(() => at(file, 'user', () => lookupUser(raw.user!, 'user')));
  if (raw.group !== undefined) collect(() => at(file, 'group', () => lookupGroup(raw.group!, 'group')));
  const services: ServiceConfig[] = [];
  for (const [name, s] of Object.entries(raw.services)) {
    if (!badServices.has(name)) collect(() => void services.push(serviceConfig(file, name, s, raw)));
  }
  const seen = new Map<string, string>();
  for (const s of services) {
    s.listen.forEach((a, i) => {
      const key = a.path !== undefined ? `unix|${a.path}` : `${a.host}|${a.port}`;
      const other = seen.get(key);
      if (other !== undefined && (a.port !== 0 || a.path !== undefined)) {
        problems.push(new ConfigError(file, `services.${s.name}.listen[${i}]`, `${a.text} is also a listen address of ${other}`));
      }
      seen.set(key, `services.${s.name}`);
    });
  }
  return { config: { file, user: raw.user, group: raw.group, services }, problems };
}

/** Largest configuration file read, in bytes: 1 MiB, far more than any real one. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * The text of a configuration file: a regular file of at most MAX_CONFIG_BYTES.
 * Opened non-blocking, so a FIFO (or a device) is refused at once instead of
 * blocking the server (a reload runs on the server's only thread), and read no
 * further than the cap, so `/dev/zero` cannot grow memory. Throws ConfigError.
 */
function readConfigText(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    throw new ConfigError(file, '', `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      const kind = st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isSocket() ? 'a socket' : 'not a file';
      throw new ConfigError(file, '', `cannot read: ${kind}, not a regular file`);
    }
    if (st.size > MAX_CONFIG_BYTES) {
      throw new ConfigError(file, '', `cannot read: ${st.size} bytes, more than the limit of ${MAX_CONFIG_BYTES}`);
    }
    // The file may grow between fstat and read: read at most one byte past the cap to tell.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = fs.readSync(fd, buf, n, buf.length - n, null);
    if (n > MAX_CONFIG_BYTES) throw new ConfigError(file, '', `cannot read: more than the limit of ${MAX_CONFIG_BYTES} bytes`);
    return buf.toString('utf8', 0, n);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(file, '', `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err);
  } finally {
    fs.closeSync(fd);
  }
}

/** Read and check a configuration file. Throws ConfigError (unreadable, not a regular file, or too large, included). */
export function loadConfig(file: string): Config {
  return parseConfig(readConfigText(file), file);
}

/** loadConfig with every problem kept (parseConfigProblems); throws ConfigError when there is nothing to go on with. */
export function loadConfigProblems(file: string): { config: Config; problems: ConfigError[] } {
  return parseConfigProblems(readConfigText(file), file);
}
