/*
 * shm: memory shared by the server and its pool workers, for the counts that admission
 * keeps across every worker of a service (connections per source, rate buckets) and for
 * each worker's count of what it accepted (read by the server once the worker is dead).
 *
 * Why native: Node cannot share memory between processes. A SharedArrayBuffer is shared
 * only between threads of one process (postMessage to a child process copies it), and
 * fs.mmap does not exist: there is no way from JavaScript to map a file MAP_SHARED. So
 * the server creates an anonymous file (memfd_create), sizes it, and maps it; a prefork
 * worker inherits the descriptor in a stdio slot and maps the same pages; a worker thread
 * maps it again from the same descriptor. Both get an ArrayBuffer over the mapping, on
 * which the counting code (src/admission/source-table.ts, src/net/shared-counts.ts) uses Atomics: V8 compiles
 * Atomics.compareExchange/add/store to the same locked instructions on any integer
 * typed array, so the operations are atomic across processes on these pages.
 *
 * shmCreate(bytes) -> fd       a close-on-exec memfd of `bytes` bytes, zero-filled
 * shmMap(fd, bytes) -> buffer  an ArrayBuffer over MAP_SHARED pages of fd; unmapped
 *                              when the buffer is collected (the descriptor is not
 *                              needed after this call: close it when nothing else
 *                              will map it)
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/mman.h>
#include "errors.h"
#include "shm.h"

/* A limit on what may be asked for: the counts of one service fit in a few MiB. */
#define SHM_MAX_BYTES (256u * 1024u * 1024u)

static int bytes_arg(napi_env env, napi_value v, uint32_t *bytes) {
  return napi_get_value_uint32(env, v, bytes) == napi_ok && *bytes > 0 && *bytes <= SHM_MAX_BYTES;
}

static napi_value ShmCreate(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t bytes;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || !bytes_arg(env, argv[0], &bytes)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "shmCreate(bytes 1..268435456)");
    return NULL;
  }
  int fd = memfd_create("tcpkit-counts", MFD_CLOEXEC);
  if (fd < 0) return tcpkit_throw_errno(env, "memfd_create", errno, NULL);
  if (ftruncate(fd, (off_t)bytes) < 0) {
    int err = errno;
    close(fd);
    return tcpkit_throw_errno(env, "ftruncate", err, NULL);
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

typedef struct {
  void *base;
  size_t bytes;
} Mapping;

static void shm_unmap(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  Mapping *m = hint;
  munmap(m->base, m->bytes);
  free(m);
}

static napi_value ShmMap(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  uint32_t bytes;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || !bytes_arg(env, argv[1], &bytes)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "shmMap(fd, bytes 1..268435456)");
    return NULL;
  }
  void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return tcpkit_throw_errno(env, "mmap", errno, NULL);
  Mapping *m = malloc(sizeof *m);
  if (m == NULL) {
    munmap(base, bytes);
    return tcpkit_throw_errno(env, "malloc", ENOMEM, NULL);
  }
  m->base = base;
  m->bytes = bytes;
  napi_value result;
  if (napi_create_external_arraybuffer(env, base, bytes, shm_unmap, m, &result) != napi_ok) {
    munmap(base, bytes);
    free(m);
    napi_throw_error(env, "EIO", "shmMap: the runtime refused an external ArrayBuffer");
    return NULL;
  }
  return result;
}

void shm_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "shmCreate", NAPI_AUTO_LENGTH, ShmCreate, NULL, &fn);
  napi_set_named_property(env, exports, "shmCreate", fn);
  napi_create_function(env, "shmMap", NAPI_AUTO_LENGTH, ShmMap, NULL, &fn);
  napi_set_named_property(env, exports, "shmMap", fn);
}
