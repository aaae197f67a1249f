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
#endif
