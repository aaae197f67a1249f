#ifndef TCPKIT_UNIX_H
#define TCPKIT_UNIX_H
#include <node_api.h>
/* Adds unixListen, unixProbe and unixPeer (native/unix.c) to the addon's exports. */
void unix_init(napi_env env, napi_value exports);
#endif
