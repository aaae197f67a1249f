/* accept.c: batches of accepted descriptors for connections only a program reads, registered on the fdutil addon's exports. */
#ifndef TCPKIT_ACCEPT_H
#define TCPKIT_ACCEPT_H
#include <node_api.h>
void accept_init(napi_env env, napi_value exports);
#endif
