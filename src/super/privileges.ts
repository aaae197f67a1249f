/**
 * Running as another user: bind first (a port below 1024 needs root), then drop
 * to `user`/`group` for the rest of the server's life, as tcpserver's -u/-g do.
 * Also the uid/gid an exec service's program runs as.
 *
 * Names are read from /etc/passwd and /etc/group (Node has no getpwnam); numeric
 * ids are taken as they are. Supplementary groups are reduced to the one group,
 * so the server keeps none of root's.
 */
import fs from 'node:fs';
import { InvalidOptionError, SystemCallError } from '../errors.js';

/** A user or group as written: a name or a numeric id. */
export type Principal = string | number;

function table(file: string): string[][] {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

const numeric = (p: Principal): number | undefined =>
  typeof p === 'number' ? p : /^\d+$/.test(p) ? Number(p) : undefined;

/** uid and primary gid of a user; throws InvalidOptionError naming `option`. */
export function lookupUser(user: Principal, option = 'user'): { uid: number; gid: number } {
  const byName = table('/etc/passwd').find((f) => f[0] === String(user) || (numeric(user) !== undefined && Number(f[2]) === numeric(user)));
  if (byName) return { uid: Number(byName[2]), gid: Number(byName[3]) };
  const id = numeric(user);
  if (id !== undefined) return { uid: id, gid: id };
  throw new InvalidOptionError(option, `no such user ${JSON.stringify(user)} in /etc/passwd`);
}

/** gid of a group; throws InvalidOptionError naming `option`. */
export function lookupGroup(group: Principal, option = 'group'): number {
  const id = numeric(group);
  if (id !== undefined) return id;
  const found = table('/etc/group').find((f) => f[0] === group);
  if (!found) throw new InvalidOptionError(option, `no such group ${JSON.stringify(group)} in /etc/group`);
  return Number(found[2]);
}

/** `USER[:GROUP]` of unixOwner as ids (names from /etc/passwd, /etc/group); throws InvalidOptionError naming unixOwner. */
export function unixOwner(owner: string | undefined, label = 'unixOwner'): { uid?: number; gid?: number } {
  if (owner === undefined) return {};
  if (typeof owner !== 'string' || owner === '') throw new InvalidOptionError(label, `must be USER or USER:GROUP, got ${JSON.stringify(owner)}`);
  const [user, group, extra] = owner.split(':');
  if (extra !== undefined) throw new InvalidOptionError(label, `must be USER or USER:GROUP, got ${JSON.stringify(owner)}`);
  const out: { uid?: number; gid?: number } = {};
  if (user) out.uid = lookupUser(user, label).uid;
  if (group) out.gid = lookupGroup(group, label);
  return out;
}

/** The uid/gid to run as: the user's, with `group` (if given) instead of its primary group. */
export function resolveIds(user: Principal | undefined, group: Principal | undefined): { uid?: number; gid?: number } {
  const u = user === undefined ? undefined : lookupUser(user);
  const gid = group === undefined ? u?.gid : lookupGroup(group);
  return { uid: u?.uid, gid };
}

/**
 * Whether this process already runs as `ids` and cannot change (not root): a
 * successor started by a zero-downtime restart of a server that dropped to
 * `--user` inherits its identity and the same command line, and must not fail
 * on the setgroups only root may call.
 */
function alreadyDropped(ids: { uid?: number; gid?: number }): boolean {
  if (typeof process.geteuid !== 'function' || process.geteuid() === 0) return false;
  const uidOk = ids.uid === undefined || (process.getuid?.() === ids.uid && process.geteuid() === ids.uid);
  const gidOk = ids.gid === undefined || (process.getgid?.() === ids.gid && process.getegid?.() === ids.gid);
  return uidOk && gidOk;
}

/**
 * Drop this process to `user`/`group` (either may be omitted): setgroups, setgid,
 * then setuid, in that order (after setuid the others are no longer allowed).
 * Nothing to do when the process already runs as them (a restarted server's
 * successor). Throws SystemCallError (EPERM) when not root.
 */
export function dropPrivileges(user: Principal | undefined, group: Principal | undefined): { uid?: number; gid?: number } {
  const ids = resolveIds(user, group);
  if (ids.uid === undefined && ids.gid === undefined) return ids;
  if (alreadyDropped(ids)) return ids;
  const step = (call: string, fn: () => void, target: string) => {
    try {
      fn();
    } catch (err) {
      throw new SystemCallError(call, target, err);
    }
  };
  if (ids.gid !== undefined) {
    const gid = ids.gid;
    step('setgroups', () => process.setgroups?.([gid]), `gid ${gid}`);
    step('setgid', () => process.setgid?.(gid), `gid ${gid}`);
  }
  if (ids.uid !== undefined) {
    const uid = ids.uid;
    step('setuid', () => process.setuid?.(uid), `uid ${uid}`);
  }
  return ids;
}
