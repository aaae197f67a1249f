/**
 * The service registry: built-in services by name, loaded lazily so that a child
 * process imports only the one it runs; and user handlers by module path.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidOptionError } from '../errors.js';
import type { ConnectionLimits } from '../admission/limits.js';
import { checkExecOptions } from './exec.js';
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

/** Names of the built-in services. */
export function serviceNames(): string[] {
  return Object.keys(builtins);
}

/** Register a built-in (used by service modules added later and by tests). */
export function registerService(name: string, load: () => Promise<{ default: Service }>): void {
  builtins[name] = load;
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

/**
 * Run a service on one connection and contain whatever it does: a throw or a
 * rejection destroys this socket only. Resolves when the socket is closed.
 * `onError` receives the failure for the log. `limits` (default none), for
 * models that serve in-process: a connection with no traffic for `idleMs` or
 * open longer than `maxMs` is destroyed and reported with ctx.log (code `idle`
 * or `time-limit`).
 */
export async function runService(
  service: Service,
  ctx: ServiceContext,
  onError: (err: unknown) => void,
  limits?: ConnectionLimits,
): Promise<void> {
  const { socket } = ctx;
  let timer: NodeJS.Timeout | undefined;
  if (limits?.idleMs) {
    socket.setTimeout(limits.idleMs, () => {
      ctx.log(`no traffic for ${limits.idleMs} ms`, 'idle');
      socket.destroy();
    });
  }
  if (limits?.maxMs) {
    timer = setTimeout(() => {
      ctx.log(`open longer than ${limits.maxMs} ms`, 'time-limit');
      socket.destroy();
    }, limits.maxMs);
    socket.once('close', () => clearTimeout(timer));
  }
  const closed = new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
  // A reset peer is the peer's business; it must never become an uncaught exception.
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') onError(err);
  });
  try {
    await service(ctx);
    // The service is done: send what is queued, FIN, then close (as a process exit would).
    if (!socket.destroyed) {
      if (socket.writableFinished) socket.destroy();
      else socket.end(() => socket.destroy());
    }
  } catch (err) {
    onError(err);
    socket.destroy();
  }
  await closed;
}
