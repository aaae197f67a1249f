#ifndef TCPKIT_UNIX_H
#define TCPKIT_UNIX_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* struct ucred */
#endif
#include <node_api.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
/* Adds unixListen, unixProbe and unixPeer (native/unix.c) to the addon's exports. */
void unix_init(napi_env env, napi_value exports);
/*
 * A UNIX socket's name as tcpkit writes it (getsockname's `sa`, `salen` bytes): its path, '@' and
 * the abstract name, or '' unnamed, into `out` (sizeof sa->sun_path + 1 bytes, NUL-terminated).
 * Returns its length (an abstract name may hold NUL bytes: use the length, not strlen).
 */
size_t tcpkit_unix_name(const struct sockaddr_un *sa, socklen_t salen, char *out);
/* Set `obj`'s pid, uid and gid from a peer's credentials (SO_PEERCRED). */
void tcpkit_set_cred(napi_env env, napi_value obj, const struct ucred *cred);
#endif
