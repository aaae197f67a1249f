/**
 * The service registry: built-in services by name, loaded lazily so that a child
 * process imports only the one it runs; and user handlers by module path.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidOptionError } from '../errors.js';
import { checkExecOptions } from './exec-options.js';
import type { ProgramLauncher, Service, ServiceContext, ServiceModule, ServiceSpec } from './types.js';

export type { ProgramLauncher, Service, ServiceContext, ServiceModule, ServiceSpec } from './types.js';

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
 * Add a service by name, served by a module's default export (or `handler`), as
 * with --handler: wherever a connection is served (this process, a prefork worker,
 * a thread, a fork child) the module is loaded by path, so a registered service
 * works under every model. `module`: a path (resolved against the working directory
 * now) or a file: URL. Throws InvalidOptionError for a built-in's name or a bad module.
 * Registration is per process: register before createServer.
 */
export function registerService(name: string, module: string | URL): void {
  if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) throw new InvalidOptionError('service', `a service name is letters, digits, "_", "." or "-", got ${JSON.stringify(name)}`);
  if (Object.hasOwn(builtins, name)) throw new InvalidOptionError('service', `${name} is a built-in service`);
  const href = module instanceof URL ? module.href : typeof module === 'string' && module !== '' ? (module.startsWith('file:') ? module : pathToFileURL(path.resolve(module)).href) : undefined;
  if (href === undefined) throw new InvalidOptionError('handler', 'must be a module path or a file: URL');
  registered.set(name, href);
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
  if (spec.handler) {
    let mod: { default?: unknown; handler?: unknown };
    try {
      mod = (await import(spec.handler)) as typeof mod;
    } catch (err) {
      throw new InvalidOptionError('handler', `cannot load ${spec.handler}: ${(err as Error)?.message ?? String(err)}`);
    }
    const fn = typeof mod.default === 'function' ? mod.default : mod.handler;
    if (typeof fn !== 'function') {
      throw new InvalidOptionError('handler', `${spec.handler} exports no function (default export or "handler")`);
    }
    return fn as Service;
  }
  const load = builtins[spec.name];
  if (!load) throw new InvalidOptionError('service', `unknown service ${JSON.stringify(spec.name)}`);
  return (await load()).default;
}

