/*
 * fdutil: the two descriptor calls Node does not expose.
 *
 * tcpkit keeps a private duplicate of each listening socket so that it can stop
 * accepting (close the libuv handle, leaving the socket in LISTEN with its backlog)
 * and start again (listen on a fresh duplicate), and so that each worker thread can
 * own its copy: a thread's exit then closes only its own descriptor (see DESIGN.md).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  napi_value code, msg, error, sys;
  const char *name = err == EBADF ? "EBADF" : err == EMFILE ? "EMFILE" : err == ENFILE ? "ENFILE" : "EIO";
  char text[128];
  snprintf(text, sizeof text, "%s %s: %s", syscall, name, strerror(err));
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

static int32_t fd_arg(napi_env env, napi_callback_info info, int *ok) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  *ok = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 1 &&
        napi_get_value_int32(env, argv[0], &fd) == napi_ok && fd >= 0;
  if (!*ok) napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a non-negative integer");
  return fd;
}

/* dup(fd) -> new fd, close-on-exec so no child process ever inherits it by accident. */
static napi_value Dup(napi_env env, napi_callback_info info) {
  int ok;
  int32_t fd = fd_arg(env, info, &ok);
  if (!ok) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return throw_errno(env, "dup", errno);
  napi_value result;
  napi_create_int32(env, copy, &result);
  return result;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  int ok;
  int32_t fd = fd_arg(env, info, &ok);
  if (!ok) return NULL;
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

/* Mark fd close-on-exec: a descriptor the server inherited must not leak into the programs it runs. */
static napi_value Cloexec(napi_env env, napi_callback_info info) {
  int ok;
  int32_t fd = fd_arg(env, info, &ok);
  if (!ok) return NULL;
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return throw_errno(env, "fcntl", errno);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "dup", NAPI_AUTO_LENGTH, Dup, NULL, &fn);
  napi_set_named_property(env, exports, "dup", fn);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, Close, NULL, &fn);
  napi_set_named_property(env, exports, "close", fn);
  napi_create_function(env, "cloexec", NAPI_AUTO_LENGTH, Cloexec, NULL, &fn);
  napi_set_named_property(env, exports, "cloexec", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
