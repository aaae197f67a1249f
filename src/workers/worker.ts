/**
 * The body of a pool worker, the same in a prefork process and in a thread: load
 * the service, then serve connections that it accepts itself on its own duplicate
 * of the listening socket (shared mode) or that the server passes it (pass mode),
 * reporting each to the server with the messages of ./messages.ts.
 *
 * Shared mode admits here, with the server's admission unit (../admission/admission.ts):
 * the same access rules, the service's per-source table in shared memory, ids from
 * the blocks the server hands out. Each connection is counted in the pool's ledger
 * (shared memory) before it is served, so the server knows how many it missed should
 * this worker die before its next report; accepts and ends go to the server in
 * batches (./reports.ts). No message per connection.
 */
import type net from 'node:net';
import { loadService } from '../services/index.js';
import type { ConnectionEnds, ConnectionInfo } from '../address.js';
import { LocalConnections } from '../connection/local.js';
import { AccessRules } from '../admission/access.js';
import { Admission, identify } from '../admission/admission.js';
import { SourceLimits } from '../admission/limits.js';
import { describeError } from '../errors.js';
import { Acceptor, DESCRIPTOR_HEADROOM, descriptorLimit, openDescriptors } from '../net/acceptor.js';
import { ProxyRefusals } from '../net/proxy-gate.js';
import { sharedMemory, WorkerLedger } from '../net/shared-counts.js';
import { DEFAULT_BACKLOG } from '../options.js';
import type { FromWorker, ToWorker, WorkerSpec } from './messages.js';
import { IdBlocks, ReportBatch } from './reports.js';
import { programOf } from '../services/index.js';
import { TlsGate } from '../tls/gate.js';
import { relayThroughPair } from '../tls/relay.js';
import type { recordInfo as RecordInfo } from '../net/fast-path.js';
import type { AcceptedRecord } from '../net/acceptor.js';
import { fdutil } from '../net/fdutil.js';
import { STDERR_DRAIN_MS, type Child } from '../net/launcher.js';
import { spawnFailedCode, STDERR_CODE, stderrReason } from '../events.js';

/** How a worker talks to the server: an IPC channel or a MessagePort. */
export interface WorkerChannel {
  send(msg: FromWorker, done?: () => void): void;
  /** Called once, before the worker is known to be alive: flush what waits before the process exits (prefork). */
  onExit?(flush: () => void): void;
  onMessage(handler: (msg: ToWorker, socket: net.Socket | undefined) => void): void;
  /** Leave: the process or thread ends (after what was sent is on its way). */
  exit(code: number): void;
}

/**
 * How many more descriptors this worker can take before it reaches its limit's
 * headroom (pass mode: the server passes no more than that, or the socket would be
 * lost in recvmsg); undefined when unlimited.
 */
function room(): number | undefined {
  const limit = descriptorLimit();
  return limit === Infinity ? undefined : Math.max(1, limit - DESCRIPTOR_HEADROOM - openDescriptors());
}

/** Run a worker until it is drained (or killed). */
export async function runWorker(spec: WorkerSpec, channel: WorkerChannel): Promise<void> {
  let service;
  try {
    service = await loadService(spec.service);
  } catch (err) {
    channel.send({ type: 'fatal', ...describeError(err, 'TCPKIT_WORKER') }, () => channel.exit(1));
    return;
  }
  let accepted = 0;
  let held = false;
  let draining = false;
  /** Accepts, ends and refusals on their way to the server, in order. */
  const batch = new ReportBatch((entries) => channel.send({ type: 'batch', entries }));
  /** Everything else goes after what the batch holds, so the server sees one order. */
  const send = (msg: FromWorker, done?: () => void) => {
    batch.flush();
    channel.send(msg, done);
  };
  channel.onExit?.(() => batch.flush());
  /** Shared mode: admission here, on the counts every worker of the service shares. */
  const shared = spec.mode === 'shared' && spec.counts !== undefined && spec.ids !== undefined ? spec.counts : undefined;
  const ids = shared && spec.ids ? new IdBlocks(spec.ids, () => send({ type: 'need-ids' })) : undefined;
  const admission = shared && ids ? new Admission(new AccessRules(spec.access ?? []), SourceLimits.attached(shared, shared.table, sharedMemory), () => ids.take()!) : undefined;
  const ledger = shared ? WorkerLedger.attach(shared.ledger) : undefined;
  /** Cells of our ledger slot given back; cells from `fresh` on were never used (beyond them: served, not recorded). */
  const freeCells: number[] = [];
  let fresh = 0;
  const takeCell = () => freeCells.pop() ?? (fresh < (ledger?.cells ?? 0) ? fresh++ : undefined);
  /** PROXY refusals with no peer to name are folded into one line a second (sent as events to the server). */
  const refusals = new ProxyRefusals((event) => send({ type: 'event', event }));
  /**
   * Accepted when no id was left (adjust() stops accepting before that; this only
   * catches a burst libuv had already accepted), admitted when a block arrives.
   */
  const unnumbered: Array<{ socket: net.Socket; info: ConnectionInfo }> = [];
  /** The native path's records accepted when no id was left (as `unnumbered`). */
  const unnumberedRecords: AcceptedRecord[] = [];
  /** Programs started on the native path (or starting) and not yet ended. */
  let programs = 0;
  const idle = () => conns.size === 0 && programs === 0 && unnumbered.length === 0 && unnumberedRecords.length === 0 && (acceptor?.pending ?? 0) === 0 && (gate?.pending ?? 0) === 0;
  /**
   * TLS (shared mode): the handshake here, after the PROXY header and before admission,
   * as in the server. The gate exists once the server's `tls` message brought the keys;
   * until then this worker does not accept. A program (--exec) or nothing else gets
   * plaintext through a relay; a service run here gets the TLSSocket.
   */
  let gate: TlsGate | undefined;
  /** The service's program, when it is one (exec): a TLS relay feeds it, or the native path starts it. */
  const program = await programOf(spec.service);
  const relay = spec.tls !== undefined && program !== undefined;
  let tlsStatsTimer: NodeJS.Timeout | undefined;
  const sendTlsStats = () => {
    clearTimeout(tlsStatsTimer);
    tlsStatsTimer = undefined;
    if (gate) send({ type: 'tls-stats', stats: gate.stats() });
  };
  /** Counters go to the server at most once a second, and only when they changed. */
  const tlsChanged = () => {
    tlsStatsTimer ??= setTimeout(sendTlsStats, 1000);
  };
  const conns = new LocalConnections(service, spec.service, spec.limits);
  /** Serve an admitted connection here; what becomes of it goes to the server, which accounts for it. */
  const serve = (socket: net.Socket, info: ConnectionInfo, env: Readonly<Record<string, string>>, ended: () => void) =>
    conns.serve(socket, info, env, {
      closed: () => {
        ended();
        settled();
      },
      log: (reason, code) => send({ type: 'log', id: info.id, reason, code }),
      failed: (code, message) => send({ type: 'failed', id: info.id, code, message }),
    });

  /** A connection left (or was refused): accept more, or leave if draining. */
  function settled(): void {
    adjust();
    if (draining && idle()) {
      // The count of peerless PROXY refusals not yet reported goes out before the worker does.
      refusals.close();
      gate?.destroy();
      sendTlsStats();
      batch.close();
      send({ type: 'drained' }, () => channel.exit(0));
    }
  }

  const retiring = () => spec.maxConns > 0 && accepted >= spec.maxConns;

  /**
   * Shared mode: admitted here (see the file comment), served, reported in the next batch.
   * `serve` gets the admitted connection and calls `ended` once it is over; `drop` closes a refused one.
   */
  const admitAndServe = (
    identified: ConnectionInfo,
    drop: () => void,
    serveIt: (info: ConnectionInfo, env: Readonly<Record<string, string>>, ended: () => void) => void,
  ) => {
    const verdict = admission!.admit(identified);
    if (!verdict.ok) {
      drop();
      batch.add({ k: 'refused', event: verdict.event });
      settled();
      return;
    }
    const { info, place } = verdict;
    accepted++;
    // Counted where the server finds it should this worker die before its next batch.
    ledger!.accepted(shared!.slot);
    const cell = takeCell();
    if (cell !== undefined) ledger!.hold(shared!.slot, cell, place);
    batch.add({ k: 'open', info });
    // Recycling starts as soon as the server knows: the replacement takes over the backlog.
    if (retiring()) batch.flush();
    serveIt(info, verdict.env, () => {
      admission!.release(place);
      if (cell !== undefined) {
        ledger!.unhold(shared!.slot, cell);
        freeCells.push(cell);
      }
      batch.add({ k: 'end', id: info.id, at: Date.now() });
    });
    adjust();
  };
  const admitHere = (socket: net.Socket, identified: ConnectionInfo) =>
    admitAndServe(identified, () => socket.destroy(), (info, env, ended) => serve(socket, info, env, ended));

  /**
   * The native path (../net/fast-path.ts decides): a program started on the bare accepted
   * descriptor, reported as the exec service reports it on the socket path (its stderr
   * lines, a failed start, a non-zero exit as `log` messages; its end after its last lines).
   */
  const runProgram = (fd: number, info: ConnectionInfo, extra: Readonly<Record<string, string>>, ended: () => void): void => {
    programs++;
    const log = (reason: string, code: string) => send({ type: 'log', id: info.id, reason, code });
    const done = () => {
      programs--;
      ended();
      settled();
    };
    void (async () => {
      let child: Child & { stderrDone?: Promise<void> };
      try {
        const env = await program!.environment(info, extra);
        const owned = fd;
        fd = -1; // the launcher's from here: closed there, started or not
        child = await program!.startFd!(owned, env, (line, pid) => log(stderrReason(pid, line), STDERR_CODE));
      } catch (err) {
        if (fd >= 0) fdutil.close(fd);
        const { code, message } = describeError(err, 'EIO');
        log(message, spawnFailedCode(code));
        done();
        return;
      }
      const { code, signal } = await child.exited;
      // Its last stderr lines before the connection's end; a descendant holding the pipe delays it at most STDERR_DRAIN_MS.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([child.stderrDone ?? Promise.resolve(), new Promise<void>((resolve) => (timer = setTimeout(resolve, STDERR_DRAIN_MS)))]);
      clearTimeout(timer);
      if (signal) log(`pid ${child.pid} ended by signal ${signal}`, 'exit');
      else if (code !== 0) log(`pid ${child.pid} exitcode ${code}`, 'exit');
      done();
    })();
  };
  /** The native path's identify (set with it, below). */
  let recordInfo: typeof RecordInfo | undefined;
  /** Connections arrive as native records (../net/fast-path.ts decided so, below). */
  let native = false;
  const admitRecord = (record: AcceptedRecord) =>
    admitAndServe(recordInfo!(record, undefined), () => fdutil.close(record.fd), (info, env, ended) => runProgram(record.fd, info, env, ended));
  /** A record the native watch accepted: admit it now, or once ids arrive. */
  const takeRecord = (record: AcceptedRecord) => {
    if (!admission) {
      fdutil.close(record.fd);
      settled();
    } else if (ids!.available === 0) unnumberedRecords.push(record);
    else admitRecord(record);
  };

  /** An identified connection (after its TLS handshake, if any): admit it now, or once ids arrive. */
  const number = (socket: net.Socket, info: ConnectionInfo) => {
    if (ids!.available === 0) unnumbered.push({ socket, info });
    else admitHere(socket, info);
  };
  /** A connection this worker accepted (its PROXY header already taken, if one is expected). */
  const take = (socket: net.Socket, announced?: ConnectionEnds) => {
    const info = identify(socket, undefined, announced);
    if (!info || !admission) {
      socket.destroy();
      settled();
      return;
    }
    if (gate) gate.take(socket, info);
    else number(socket, info);
  };
  const startTls = (material: Parameters<TlsGate['replace']>[0]) => {
    if (gate) {
      try {
        gate.replace(material);
      } catch (err) {
        send({ type: 'event', event: { type: 'error', where: 'tls', ...describeError(err, 'TCPKIT_TLS') } });
      }
      return;
    }
    gate = new TlsGate(spec.tls!, material, {
      refuse: (event) => {
        send({ type: 'event', event });
        tlsChanged();
      },
      settled: () => settled(),
      pass: (secure, info) => {
        tlsChanged();
        let plain: net.Socket = secure;
        if (relay) {
          try {
            plain = relayThroughPair(secure);
          } catch (err) {
            secure.destroy();
            send({ type: 'event', event: { type: 'error', where: 'tls', ...describeError(err, 'EIO') } });
            return;
          }
        }
        number(plain, info);
      },
    });
  };
  // Shared mode: the same accept loop as the server's (descriptor headroom, EMFILE backoff, PROXY gate).
  const acceptor =
    spec.mode === 'shared' && spec.fd !== undefined ? new Acceptor(spec.fd, { backlog: spec.backlog ?? DEFAULT_BACKLOG, ownsFd: spec.ownsFd ?? false }) : undefined;
  if (acceptor) {
    acceptor.onConnection(take);
    // A program per connection, started from this process as the server's user, on a plain TCP listener:
    // connections arrive as bare descriptors (../net/fast-path.ts, the one place that decides).
    // A process's main thread or a worker thread alike: the watch lives on this thread's loop and closes with it.
    // Loaded only where it can apply (a program service): a worker serving in JavaScript loads no more modules
    // than before, which matters when it starts with the descriptors nearly exhausted.
    const fast = program?.startFd !== undefined ? await import('../net/fast-path.js') : undefined;
    const listener = fdutil.socketInfo(acceptor.fd).family === 'unix' ? 'unix' : 'tcp';
    if (fast && admission && fast.acceptPath({ listener, tls: spec.tls !== undefined, descriptors: true }) === 'native') {
      recordInfo = fast.recordInfo;
      native = true;
      acceptor.onRecords(takeRecord, true, fast.NATIVE_PATH_DESCRIPTORS);
    }
    // A connection still sending its PROXY header counts towards the share too.
    acceptor.onAccept(adjust);
    // Reported as they are; the server folds every worker's reports into one line per burst.
    acceptor.onError((err) => {
      const suppressed = err.suppressed === undefined ? {} : { suppressed: err.suppressed };
      send({ type: 'event', event: { type: 'error', where: 'accept', code: err.code ?? 'EIO', ...suppressed, message: err.message } });
    });
    // Behind a load balancer the header comes first; a bad one closes that connection with a log line.
    acceptor.acceptProxyProtocol(spec.proxy, (err, real) => {
      refusals.refuse(err, real);
      settled();
    });
  }

  /**
   * Accept only while under our share, not held by the server, not retiring or
   * draining, and with an id for every connection that may be
   * accepted before more arrive (those still in the PROXY gate included).
   */
  function adjust(): void {
    if (!acceptor) return;
    const handshaking = gate?.pending ?? 0;
    const inFlight = conns.size + programs + unnumbered.length + unnumberedRecords.length + acceptor.pending + handshaking;
    const numbered = !ids || ids.available > acceptor.pending + handshaking;
    const keyed = spec.tls === undefined || gate !== undefined;
    const want = keyed && !held && !draining && !retiring() && numbered && inFlight < spec.limit;
    if (want) acceptor.resume();
    else acceptor.pause();
  }

  channel.onMessage((msg, socket) => {
    switch (msg.type) {
      case 'connection':
        if (!socket) return;
        // The socket Node rebuilds from a passed handle is not half-open; ours must be
        // (a FIN from the peer ends only its side), before anything is read.
        socket.allowHalfOpen = true;
        socket.pause();
        accepted++;
        // Admitted by the server, which gives its place back: the end goes at once.
        serve(socket, msg.info, msg.env, () => send({ type: 'closed', id: msg.info.id }));
        return;
      case 'ids':
        ids?.add(msg.from, msg.count);
        while (unnumbered.length > 0 && ids!.available > 0) {
          const u = unnumbered.shift()!;
          admitHere(u.socket, u.info);
        }
        while (unnumberedRecords.length > 0 && ids!.available > 0) admitRecord(unnumberedRecords.shift()!);
        adjust();
        return;
      case 'tls':
        if (spec.tls) startTls(msg.material);
        adjust();
        return;
      case 'pause':
        held = true;
        adjust();
        return;
      case 'resume':
        held = false;
        adjust();
        return;
      case 'drain':
        draining = true;
        if (acceptor && (spec.ownsFd || native)) {
          // Accepted natively but still held (paused as a batch came in): served, as a socket accepted just before a pause is.
          // A thread closes its watch here too: nothing accepted is left to its teardown (a record is a bare descriptor).
          for (const record of acceptor.takeHeld()) takeRecord(record);
          acceptor.close();
        }
        settled();
        return;
    }
  });
  adjust();
  send({ type: 'ready', room: room() });
}
