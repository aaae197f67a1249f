/**
 * The server's cost, read from /proc: CPU (utime+stime+cutime+cstime) and memory
 * of a process and every live descendant. Live children count directly and reaped
 * ones through their parent's cutime/cstime, so a difference of two snapshots is
 * the CPU the whole server spent in between, whatever its model.
 */
import fs from 'node:fs';

/** Clock ticks per second of /proc/PID/stat times (USER_HZ: 100 on every Linux we run on). */
export const CLOCK_TICKS = 100;

/** One process's line of /proc/PID/stat, the fields we need. */
interface ProcStat {
  pid: number;
  ppid: number;
  /** Ticks of user time, including reaped children's. */
  user: number;
  /** Ticks of system time, including reaped children's. */
  system: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited meanwhile
  }
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    ppid: Number(f[1]),
    user: Number(f[11]) + Number(f[13]),
    system: Number(f[12]) + Number(f[14]),
  };
}

/** The pid and every live descendant of it (a scan of /proc: there is no children file here). */
export function processTree(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (!s) continue;
    const list = byParent.get(s.ppid);
    if (list) list.push(s.pid);
    else byParent.set(s.ppid, [s.pid]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(byParent.get(p) ?? []));
  }
  return out;
}

/** CPU seconds of a process tree so far: user and system, each including reaped children. */
export interface CpuSnapshot {
  userSeconds: number;
  systemSeconds: number;
  /** Processes in the tree when read. */
  processes: number;
}

/** Read the CPU of `pid` and its live descendants; undefined if `pid` is gone. */
export function cpuOf(pid: number): CpuSnapshot | undefined {
  const root = readStat(pid);
  if (!root) return undefined;
  let user = 0;
  let system = 0;
  const tree = processTree(pid);
  for (const p of tree) {
    const s = p === pid ? root : readStat(p);
    if (!s) continue;
    user += s.user;
    system += s.system;
  }
  return { userSeconds: user / CLOCK_TICKS, systemSeconds: system / CLOCK_TICKS, processes: tree.length };
}

/** Memory of a process tree: resident (VmRSS summed, shared pages counted in each) and proportional (Pss). */
export interface MemorySnapshot {
  rssBytes: number;
  /** Proportional set size: shared pages divided among the processes sharing them; 0 when unreadable. */
  pssBytes: number;
  processes: number;
}

function kbField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Read the memory of `pid` and its live descendants; undefined if `pid` is gone. */
export function memoryOf(pid: number): MemorySnapshot | undefined {
  let rss = 0;
  let pss = 0;
  let processes = 0;
  for (const p of processTree(pid)) {
    try {
      rss += kbField(fs.readFileSync(`/proc/${p}/status`, 'utf8'), 'VmRSS');
      processes++;
    } catch {
      if (p === pid) return undefined;
      continue;
    }
    try {
      pss += kbField(fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'), 'Pss');
    } catch {
      // smaps_rollup needs the same user (or root); Pss is then reported as 0.
    }
  }
  return { rssBytes: rss, pssBytes: pss, processes };
}
