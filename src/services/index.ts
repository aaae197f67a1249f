/**
 * The service registry: built-in services by name, loaded lazily so that a child
 * process imports only the one it runs; and user handlers by module path.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InvalidOptionError } from '../errors.js';
import { checkExecOptions } from './exec-options.js';
import type { ProgramLauncher, Service, ServiceContext, ServiceModule, ServiceSpec } from './types.js';

export type { Handler, ProgramLauncher, Service, ServiceContext, ServiceModule, ServiceSpec } from './types.js';

/** Built-in services and the module each lives in (one file per service). */
const builtins: Record<string, () => Promise<ServiceModule>> = {
  echo: () => import('./echo.js'),
  discard: () => import('./discard.js'),
  daytime: () => import('./daytime.js'),
  chargen: () => import('./chargen.js'),
  time: () => import('./time.js'),
  exec: () => import('./exec.js'),
  bench: () => import('./bench.js'),
};

/** Services added with registerService: name → module URL. */
const registered = new Map<string, string>();

/** Names of the built-in services, then those added with registerService. */
export function serviceNames(): string[] {
  return [...Object.keys(builtins), ...registered.keys()];
}

/**
 * The file: URL of a handler module. `module`: a URL, a file: URL string (what
 * `import.meta.resolve('./upper.js')` gives), an absolute path, or a relative path
 * resolved against `base` (a directory's file: URL). Undefined when it is none of these.
 */
export function moduleHref(module: unknown, base: string): string | undefined {
  if (module instanceof URL) return module.href;
  if (typeof module !== 'string' || module === '') return undefined;
  if (/^[a-z][a-z\d+.-]*:/i.test(module) && !path.isAbsolute(module)) return new URL(module).href;
  if (path.isAbsolute(module)) return pathToFileURL(module).href;
  return new URL(module.split(path.sep).join('/'), base).href;
}

/**
 * The directory of the module that called `fn`, as a file: URL ending in "/", from V8's
 * structured stack; the working directory when the caller has no file (a REPL, eval).
 */
function callerDirectory(fn: (...args: never[]) => unknown): string {
  const original = Error.prepareStackTrace;
  let file: string | undefined;
  try {
    Error.prepareStackTrace = (_err, sites) => sites;
    const holder: { stack?: NodeJS.CallSite[] } = {};
    Error.captureStackTrace(holder, fn);
    file = holder.stack?.find((site) => site.getFileName())?.getFileName() ?? undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
  if (file && file.startsWith('file:')) return new URL('.', file).href;
  if (file && path.isAbsolute(file)) return pathToFileURL(path.dirname(file) + path.sep).href;
  return pathToFileURL(process.cwd() + path.sep).href;
}

/** Import a handler module and check it exports a function; the error names the file. */
async function importHandler(href: string): Promise<Service> {
  let mod: { default?: unknown; handler?: unknown };
  try {
    mod = (await import(href)) as typeof mod;
  } catch (err) {
    throw new InvalidOptionError('handler', `cannot load ${displayPath(href)}: ${(err as Error)?.message ?? String(err)}`);
  }
  const fn = typeof mod.default === 'function' ? mod.default : mod.handler;
  if (typeof fn !== 'function') {
    throw new InvalidOptionError('handler', `${displayPath(href)} exports no function (default export or "handler")`);
  }
  return fn as Service;
}

/** A file: URL as the path a person wrote, for messages. */
function displayPath(href: string): string {
  return href.startsWith('file:') ? fileURLToPath(href) : href;
}

/**
 * Add a service by name, served by a module's default export (or export `handler`),
 * as with --handler: wherever a connection is served (this process, a prefork worker,
 * a thread, a fork child) the module is loaded by its URL, so a registered service
 * works under every model. `module`: a URL (`new URL('./upper.js', import.meta.url)`),
 * a file: URL string (`import.meta.resolve('./upper.js')`), an absolute path, or a
 * relative path, resolved against the directory of the module that calls
 * registerService (not the working directory).
 *
 * Throws InvalidOptionError at once for a bad name, a built-in's name, a module that
 * is none of these, or a file that does not exist. The returned promise resolves once
 * the module has loaded and exports a function, and rejects with an InvalidOptionError
 * naming the file otherwise (await it to learn at registration; listen() fails the same
 * way if you do not). Registration is per process: register before createServer.
 */
export function registerService(name: string, module: string | URL): Promise<void> {
  if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) throw new InvalidOptionError('service', `a service name is letters, digits, "_", "." or "-", got ${JSON.stringify(name)}`);
  if (Object.hasOwn(builtins, name)) throw new InvalidOptionError('service', `${name} is a built-in service`);
  const href = moduleHref(module, callerDirectory(registerService));
  if (href === undefined) throw new InvalidOptionError('handler', `must be a module path or a file: URL, got ${JSON.stringify(String(module))}`);
  if (href.startsWith('file:') && !existsSync(fileURLToPath(href))) {
    throw new InvalidOptionError('handler', `cannot load ${fileURLToPath(href)}: no such file`);
  }
  registered.set(name, href);
  const loaded = importHandler(href).then(() => undefined);
  // Awaiting is the caller's choice: an unawaited failure is reported again by listen(), not as an unhandled rejection.
  loaded.catch(() => {});
  return loaded;
}

/** Check a spec at construction time: unknown names throw at once, naming the service. */
export function validateServiceSpec(spec: ServiceSpec | string): ServiceSpec {
  const s: ServiceSpec = typeof spec === 'string' ? { name: spec } : { ...spec };
  if (s.handler !== undefined) {
    if (typeof s.handler !== 'string' || s.handler === '') {
      throw new InvalidOptionError('handler', 'must be a module path');
    }
    // Resolve now: a child or thread may run with another working directory.
    if (!s.handler.startsWith('file:')) s.handler = pathToFileURL(path.resolve(s.handler)).href;
    s.name = s.name || 'handler';
    return s;
  }
  const module = registered.get(s.name);
  if (module !== undefined) return { ...s, handler: module };
  if (!Object.hasOwn(builtins, s.name)) {
    throw new InvalidOptionError('service', `unknown service ${JSON.stringify(s.name)} (known: ${serviceNames().join(', ')})`);
  }
  if (s.name === 'exec') s.options = { ...checkExecOptions(s.options) };
  return s;
}

/**
 * The program a spec's service runs per connection, if it is that kind of service
 * (its module exports `program`, as exec does); else undefined.
 */
export async function programOf(spec: ServiceSpec): Promise<ProgramLauncher | undefined> {
  let mod: Partial<ServiceModule>;
  if (spec.handler) {
    try {
      mod = (await import(spec.handler)) as Partial<ServiceModule>;
    } catch {
      return undefined; // loadService reports why
    }
  } else {
    const load = builtins[spec.name];
    if (!load) return undefined;
    mod = await load();
  }
  return typeof mod.program === 'function' ? mod.program(spec.options ?? {}) : undefined;
}

/** Load the function a spec names. */
export async function loadService(spec: ServiceSpec): Promise<Service> {
  if (spec.handler) return importHandler(spec.handler);
  const load = builtins[spec.name];
  if (!load) throw new InvalidOptionError('service', `unknown service ${JSON.stringify(spec.name)}`);
  return (await load()).default;
}

