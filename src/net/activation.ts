/**
 * Socket activation: listening sockets handed to tcpkit already bound, by a
 * service manager (systemd's `LISTEN_FDS` protocol, `systemd-socket-activate`) or
 * by a tcpkit that is restarting (src/net/restart.ts uses the same protocol).
 *
 * The protocol (sd_listen_fds(3)): descriptors 3, 4, ... 3+LISTEN_FDS-1 are
 * listening sockets; LISTEN_PID names the process they are meant for (a child
 * that inherited the environment must not take them); LISTEN_FDNAMES optionally
 * names them, colon-separated. As sd_listen_fds(unset=1) does, tcpkit removes the
 * three variables from its environment whatever they said, so no child process
 * sees them, and makes the descriptors close-on-exec.
 */
import { InvalidOptionError } from '../errors.js';
import { fdutil } from './fdutil.js';

/** The first descriptor passed by socket activation (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** Most descriptors tcpkit takes from LISTEN_FDS; a larger count is an error. */
const MAX_LISTEN_FDS = 1024;

/** A listening socket tcpkit inherited. */
export interface InheritedSocket {
  fd: number;
  /** Its name from LISTEN_FDNAMES; `unknown` when none was given (systemd's default). */
  name: string;
}

/**
 * The sockets passed to this process by socket activation, or [] when none were
 * (no LISTEN_FDS, or LISTEN_PID names another process). Always removes
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from `env` (default `process.env`).
 * Throws InvalidOptionError for a LISTEN_FDS that is not a count.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): InheritedSocket[] {
  const { LISTEN_PID: forPid, LISTEN_FDS: count, LISTEN_FDNAMES: names } = env;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (forPid === undefined || count === undefined) return [];
  if (!/^\d+$/.test(forPid) || Number(forPid) !== pid) return [];
  if (!/^\d+$/.test(count) || Number(count) > MAX_LISTEN_FDS) {
    throw new InvalidOptionError('LISTEN_FDS', `must be a count of descriptors up to ${MAX_LISTEN_FDS}, got ${JSON.stringify(count)}`);
  }
  const nameList = names === undefined ? [] : names.split(':');
  const sockets: InheritedSocket[] = [];
  for (let i = 0; i < Number(count); i++) {
    const fd = LISTEN_FDS_START + i;
    fdutil.cloexec(fd);
    sockets.push({ fd, name: nameList[i] || 'unknown' });
  }
  return sockets;
}

/**
 * Pick the one socket to serve on: by `name` when given, else the only one.
 * Throws InvalidOptionError naming the choices when that is ambiguous or absent.
 */
export function chooseSocket(sockets: readonly InheritedSocket[], name?: string): InheritedSocket | undefined {
  if (sockets.length === 0) {
    if (name !== undefined) throw new InvalidOptionError('fdName', `no socket named ${JSON.stringify(name)}: nothing was passed by socket activation`);
    return undefined;
  }
  const list = sockets.map((s) => `${s.name} (fd ${s.fd})`).join(', ');
  if (name !== undefined) {
    const found = sockets.find((s) => s.name === name);
    if (!found) throw new InvalidOptionError('fdName', `no socket named ${JSON.stringify(name)} among ${list}`);
    return found;
  }
  if (sockets.length > 1) throw new InvalidOptionError('fdName', `socket activation passed ${sockets.length} sockets (${list}); choose one by name`);
  return sockets[0];
}
