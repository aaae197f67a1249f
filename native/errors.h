/* The addon's one error for a failed system call, shared by every C file of native/ (defined in fdutil.c). */
#ifndef TCPKIT_ERRORS_H
#define TCPKIT_ERRORS_H
#include <node_api.h>
/*
 * Throw an Error as Node's own system errors read: `code` the errno's name (EADDRINUSE, EMFILE...), `syscall`,
 * `errno` (negative, as libuv's), message "SYSCALL CODE[ WHAT]: strerror". `what` (may be NULL) names the object
 * (a file, a path). Returns NULL, for `return tcpkit_throw_errno(...)`.
 */
napi_value tcpkit_throw_errno(napi_env env, const char *syscall, int err, const char *what);
/*
 * After napi_make_callback from a libuv callback (a poll handle's): a JavaScript exception it left pending would
 * be dropped there (nothing up the C stack rethrows it), so hand it to Node as uncaught, as any callback's
 * (process 'uncaughtException', else the process ends with it). `status` is napi_make_callback's.
 */
void tcpkit_uncaught(napi_env env, napi_status status);
#endif
