/**
 * The body of a pool worker, the same in a prefork process and in a thread: load
 * the service, then serve connections that it accepts itself on its own duplicate
 * of the listening socket (shared mode) or that the server passes it (pass mode),
 * reporting each to the server with the messages of ./messages.ts: in shared mode
 * with admission `local`, in batches (./reports.ts), with no message per connection;
 * with admission `server`, by asking the server for each one.
 */
import net from 'node:net';
import { loadService } from '../services/index.js';
import type { ConnectionInfo } from '../address.js';
import { LocalConnections } from '../connection/local.js';
import { identify } from '../connection/pipeline.js';
import { AccessRules, unmapIPv4 } from '../admission/access.js';
import { describeError } from '../errors.js';
import { Acceptor, DESCRIPTOR_HEADROOM, descriptorLimit, openDescriptors } from '../net/acceptor.js';
import { ProxyRefusals } from '../net/proxy-gate.js';
import { DEFAULT_BACKLOG } from '../options.js';
import type { FromWorker, ToWorker, WorkerSpec } from './messages.js';
import { IdBlocks, ReportBatch } from './reports.js';

/** How a worker talks to the server: an IPC channel or a MessagePort. */
export interface WorkerChannel {
  send(msg: FromWorker, done?: () => void): void;
  /** Called once, before the worker is known to be alive: flush what waits before the process exits (prefork). */
  onExit?(flush: () => void): void;
  /** Threads: shared counters the server reads after the thread is gone (slot 0: connections accepted). */
  counters?: Int32Array;
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

/** What an empty rule list decides for every peer (AccessRules.check's default-allow). */
const ALLOW_ALL = { ok: true, env: {}, rule: 'default-allow' } as const;

/** Run a worker until it is drained (or killed). */
export async function runWorker(spec: WorkerSpec, channel: WorkerChannel): Promise<void> {
  let service;
  try {
    service = await loadService(spec.service);
  } catch (err) {
    channel.send({ type: 'fatal', ...describeError(err, 'TCPKIT_WORKER') }, () => channel.exit(1));
    return;
  }
  const local = spec.mode === 'shared' && spec.admission === 'local';
  let accepted = 0;
  let held = false;
  let draining = false;
  /** Accepted (shared mode, admission server), held unread until the server admits or refuses them. */
  const waiting = new Map<number, { socket: net.Socket; info: ConnectionInfo }>();
  /** Admission local: accepts, ends and denials on their way to the server, in order. */
  const batch = new ReportBatch((entries) => channel.send({ type: 'batch', entries }));
  /** Everything else goes after what the batch holds, so the server sees one order. */
  const send = (msg: FromWorker, done?: () => void) => {
    batch.flush();
    channel.send(msg, done);
  };
  channel.onExit?.(() => batch.flush());
  const ids = local && spec.ids ? new IdBlocks(spec.ids, () => send({ type: 'need-ids' })) : undefined;
  const access = local ? new AccessRules(spec.access ?? []) : undefined;
  /** Admission local: this worker's connections per source address, for TCPCONNNUM. */
  const perSource = new Map<string, number>();
  /** PROXY refusals with no peer to name are folded into one line a second (sent as events to the server). */
  const refusals = new ProxyRefusals((event) => send({ type: 'event', event }));
  /**
   * Admission local: accepted when no id was left (adjust() stops accepting before that;
   * this only catches a burst libuv had already accepted), served when a block arrives.
   */
  const unnumbered: Array<{ socket: net.Socket; info: ConnectionInfo }> = [];
  const idle = () => conns.size === 0 && waiting.size === 0 && unnumbered.length === 0 && (acceptor?.pending ?? 0) === 0;
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
  /** Ended, reported at once (the server admitted it, or passed it): its per-source place is freed now. */
  const closedNow = (id: number) => () => send({ type: 'closed', id });

  /** A connection left (or was refused): accept more, or leave if draining. */
  function settled(): void {
    adjust();
    if (draining && idle()) {
      // The count of peerless PROXY refusals not yet reported goes out before the worker does.
      refusals.close();
      batch.close();
      send({ type: 'drained' }, () => channel.exit(0));
    }
  }

  const retiring = () => spec.maxConns > 0 && accepted >= spec.maxConns;

  /** Admission local: the access rules decide here; the connection is served and reported in the next batch. */
  const admitHere = (socket: net.Socket, info: ConnectionInfo) => {
    const { remote, local: ours } = info;
    // No rules (the common case): nothing to parse per connection.
    const decision = access!.empty ? ALLOW_ALL : access!.check(remote.address);
    if (!decision.ok) {
      socket.destroy();
      batch.add({ k: 'deny', remote, local: ours, rule: decision.rule });
      settled();
      return;
    }
    const id = ids!.take();
    if (id === undefined) {
      unnumbered.push({ socket, info });
      return;
    }
    accepted++;
    if (channel.counters) Atomics.add(channel.counters, 0, 1);
    const source = unmapIPv4(remote.address);
    const count = (perSource.get(source) ?? 0) + 1;
    perSource.set(source, count);
    const admitted = { ...info, id };
    batch.add({ k: 'open', info: admitted });
    // Recycling starts as soon as the server knows: the replacement takes over the backlog.
    if (retiring()) batch.flush();
    serve(socket, admitted, { TCPCONNNUM: String(count), ...decision.env }, () => {
      const left = (perSource.get(source) ?? 1) - 1;
      if (left > 0) perSource.set(source, left);
      else perSource.delete(source);
      batch.add({ k: 'end', id, at: Date.now() });
    });
    adjust();
  };

  /** A connection this worker accepted (its PROXY header already taken, if one is expected). */
  const take = (socket: net.Socket) => {
    const info = identify(socket, local ? 0 : ++accepted);
    if (!info) {
      socket.destroy();
      settled();
      return;
    }
    if (local) {
      admitHere(socket, info);
      return;
    }
    // Admission server: ask, and hold the socket unread until the answer.
    waiting.set(info.id, { socket, info });
    send({ type: 'accepted', ref: info.id, info });
    adjust();
  };
  // Shared mode: the same accept loop as the server's (descriptor headroom, EMFILE backoff, PROXY gate).
  const acceptor =
    spec.mode === 'shared' && spec.fd !== undefined ? new Acceptor(spec.fd, { backlog: spec.backlog ?? DEFAULT_BACKLOG, ownsFd: spec.ownsFd ?? false }) : undefined;
  if (acceptor) {
    acceptor.onConnection(take);
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
   * draining, and (admission local) with an id for every connection that may be
   * accepted before more arrive (those still in the PROXY gate included).
   */
  function adjust(): void {
    if (!acceptor) return;
    const inFlight = conns.size + waiting.size + unnumbered.length + acceptor.pending;
    const numbered = !ids || ids.available > acceptor.pending;
    const want = !held && !draining && !retiring() && numbered && inFlight < spec.limit;
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
        serve(socket, msg.info, msg.env, closedNow(msg.info.id));
        return;
      case 'admit': {
        const w = waiting.get(msg.ref);
        if (!w) return;
        waiting.delete(msg.ref);
        serve(w.socket, { ...w.info, id: msg.id }, msg.env, closedNow(msg.id));
        return;
      }
      case 'refuse': {
        const w = waiting.get(msg.ref);
        if (!w) return;
        waiting.delete(msg.ref);
        w.socket.destroy();
        settled();
        return;
      }
      case 'ids':
        ids?.add(msg.from, msg.count);
        for (const u of unnumbered.splice(0)) admitHere(u.socket, u.info);
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
        if (spec.ownsFd) acceptor?.close();
        settled();
        return;
    }
  });
  adjust();
  send({ type: 'ready', room: room() });
}
