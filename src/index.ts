/**
 * tcpkit: concurrent TCP servers and clients.
 *
 *     import { createServer, connect, services } from 'tcpkit';
 *     const server = createServer({ port: 0, model: 'fork', service: 'echo' });
 *     const { port } = await server.listen();
 */
export { createServer, Server } from './server.js';
export type { ServerOptions, ServerState, ServerStats } from './server.js';
export { connect, echoSession } from './client.js';
export type { ConnectOptions, SessionResult } from './client.js';
export { Listener } from './net/listener.js';
export { closeOnExecInherited } from './net/fdutil.js';
export { Acceptor } from './net/acceptor.js';
export type { AcceptError, AcceptorOptions, AcceptorState } from './net/acceptor.js';
export type { ListenOptions, ListenerState } from './net/listener.js';
export * from './errors.js';
export * from './address.js';
export { eventChannel, formatEvent, formatEventJson } from './events.js';
export { parseLogLine, unescapeLogValue } from './log-parse.js';
export type { LogLine } from './log-parse.js';
export type { ServerEvent, ServerEventType } from './events.js';
export { modelNames } from './models/index.js';
export type { Model, ModelHost, ModelName, ModelOptions, ModelProcess, ModelStats } from './models/types.js';
import * as servicesModule from './services/index.js';
/** The service registry: `services.serviceNames()`, `services.loadService(spec)`, `services.registerService(...)`. */
export const services = servicesModule;
export type { Handler, Service, ServiceContext, ServiceSpec } from './services/types.js';
export { startAdmin } from './status/admin.js';
export type { AdminEndpoint, AdminOptions } from './status/admin.js';
export { collectStatus } from './status/snapshot.js';
export type { CollectOptions, ProcessView, SocketView, StatusSnapshot } from './status/snapshot.js';
export { formatStatus } from './status/format.js';
export { createMetrics } from './status/metrics.js';
export { AccessRules } from './admission/access.js';
export type { AccessDecision, AccessRuleSpec } from './admission/access.js';
export { SourceLimits } from './admission/limits.js';
export { ServiceBudget, type BudgetOptions } from './admission/budget.js';
export { NUMERIC_OPTIONS, OPTIONS, MAX_SECONDS, MAX_TIMER_MS } from './options.js';
export type { OptionName, OptionSpec } from './options.js';
export type { ConnectionLimits, LimitStats, RefuseReason, SourceLimitOptions } from './admission/limits.js';
export { loadConfig, parseConfig } from './super/config.js';
export type { Config, ListenAddress, ServiceConfig } from './super/config.js';
export { Supervisor } from './super/supervisor.js';
export type { Binding, ReloadResult, SupervisorState } from './super/supervisor.js';
export { dropPrivileges } from './super/privileges.js';
export { ConnectionPipeline } from './connection/pipeline.js';
export type { Connection, IncomingConnection, PipelineStats } from './connection/pipeline.js';
export { encodeProxyHeader, parseProxyHeader, crc32c, DEFAULT_V2_LIMIT, V1_MAX_LENGTH, V2_MAX_LENGTH, V2_SIGNATURE } from './net/proxy-protocol.js';
export type { ProxyHeader, ProxyHeaderSpec, ProxyParse, ProxyParseOptions, ProxyTlv } from './net/proxy-protocol.js';
export { ProxyGate, readProxyHeader } from './net/proxy-gate.js';
export type { ProxyGateHandlers, ProxyGateOptions, ProxyReadOptions } from './net/proxy-gate.js';
export { chooseSocket, listenFds, LISTEN_FDS_START } from './net/activation.js';
export type { InheritedSocket } from './net/activation.js';
export { notifyReady, startSuccessor, takeNotifyFd } from './net/restart.js';
export type { SuccessorOptions } from './net/restart.js';
/** The load generator: `runBench({ port, clients, conns, bytes, serverPid })` resolves a BenchReport. */
export { runBench, formatReport, parseSize } from './bench/index.js';
export type { BenchMode, BenchOptions, BenchReport, BenchProgress } from './bench/index.js';
