/* launch.c: the per-connection process launcher, registered on the fdutil addon's exports. */
#ifndef TCPKIT_LAUNCH_H
#define TCPKIT_LAUNCH_H
#include <node_api.h>
void launch_init(napi_env env, napi_value exports);
#endif
