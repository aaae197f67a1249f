/**
 * Watches the server under load, given its pid: CPU before and after the run (the
 * whole process tree, reaped children included), memory before, after, at its peak
 * (sampled while the run goes on) and, in idle mode, while the connections are held.
 */
import { InvalidOptionError } from '../errors.js';
import { cpuOf, memoryOf, type CpuSnapshot, type MemorySnapshot } from './procfs.js';

/** What the server spent during a run. */
export interface ServerCost {
  pid: number;
  /** False when the server was gone by the end of the run (figures are then up to the last sample). */
  alive: boolean;
  cpu: {
    userSeconds: number;
    systemSeconds: number;
    totalSeconds: number;
    /** totalSeconds per completed connection, in milliseconds; null without completed connections. */
    perConnectionMs: number | null;
  };
  memory: {
    before: MemorySnapshot;
    /** idle mode: with every connection open, just before they are closed; null otherwise. */
    held: MemorySnapshot | null;
    after: MemorySnapshot;
    /** The sample with the largest resident size. */
    peak: MemorySnapshot;
  };
}

const round = (n: number) => Number(n.toFixed(3));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Samples one server process tree. */
export class ServerProbe {
  readonly pid: number;
  private readonly cpuBefore: CpuSnapshot;
  private readonly memBefore: MemorySnapshot;
  private peak: MemorySnapshot;
  private held: MemorySnapshot | null = null;
  private last: MemorySnapshot;

  /** Take the "before" snapshot; throws InvalidOptionError when there is no such process. */
  constructor(pid: number) {
    const cpu = cpuOf(pid);
    const mem = memoryOf(pid);
    if (!cpu || !mem) throw new InvalidOptionError('serverPid', `no process ${pid} (is the server running here?)`);
    this.pid = pid;
    this.cpuBefore = cpu;
    this.memBefore = mem;
    this.peak = mem;
    this.last = mem;
  }

  /** Sample memory now (called on a timer during the run); returns the sample. */
  sample(): MemorySnapshot | undefined {
    const m = memoryOf(this.pid);
    if (!m) return undefined;
    this.last = m;
    if (m.rssBytes > this.peak.rssBytes) this.peak = m;
    return m;
  }

  /** Sample memory as the "held" figure (idle mode). */
  markHeld(): void {
    this.held = this.sample() ?? null;
  }

  /**
   * Let the server finish what the run started (children still exiting after the last
   * close), for at most `maxMs`, then take the "after" snapshot.
   */
  async finish(completed: number, maxMs = 3000): Promise<ServerCost> {
    const deadline = Date.now() + maxMs;
    let cpu = cpuOf(this.pid);
    while (cpu && cpu.processes > this.cpuBefore.processes && Date.now() < deadline) {
      await sleep(50);
      cpu = cpuOf(this.pid);
    }
    const after = this.sample();
    const end = cpu ?? this.cpuBefore;
    const user = round(end.userSeconds - this.cpuBefore.userSeconds);
    const system = round(end.systemSeconds - this.cpuBefore.systemSeconds);
    const total = round(user + system);
    return {
      pid: this.pid,
      alive: cpu !== undefined && after !== undefined,
      cpu: {
        userSeconds: user,
        systemSeconds: system,
        totalSeconds: total,
        perConnectionMs: completed > 0 ? round((total * 1000) / completed) : null,
      },
      memory: { before: this.memBefore, held: this.held, after: after ?? this.last, peak: this.peak },
    };
  }
}
