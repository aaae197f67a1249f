/* shm.c: shared memory for counts kept across worker processes, registered on the fdutil addon's exports. */
#ifndef TCPKIT_SHM_H
#define TCPKIT_SHM_H
#include <node_api.h>
void shm_init(napi_env env, napi_value exports);
#endif
