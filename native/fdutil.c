/*
 * fdutil: the descriptor calls Node does not expose.
 *
 * tcpkit keeps a private duplicate of each listening socket so that it can stop
 * accepting (close the libuv handle, leaving the socket in LISTEN with its backlog)
 * and start again (listen on a fresh duplicate), and so that each worker thread can
 * own its copy: a thread's exit then closes only its own descriptor (see DESIGN.md).
 *
 * recv: a PROXY protocol header must be taken off a connection without taking any of
 * the client's bytes, because the socket itself then goes to a child or an exec'd
 * program. Node's streams read as much as there is; recv(2) with MSG_PEEK looks
 * without consuming, and a recv of exactly the header's length consumes only it.
 *
 * watch / watchArm / watchClose: while a PROXY header is incomplete the reader must learn
 * that more bytes arrived without reading them. A uv_poll on a private duplicate of the
 * descriptor does that inside Node's own event loop (the socket's libuv handle is not
 * reading, and a duplicate keeps the two registrations apart); SO_RCVLOWAT set to one
 * more than the bytes already seen makes the level-triggered poll wake only on progress,
 * so a peer that sends part of a header and stalls costs nothing until it sends more.
 *
 * cloexec / socketInfo: descriptors inherited by socket activation are not
 * close-on-exec, and tcpkit checks they are listening TCP sockets before serving.
 *
 * socketpair: a TLS connection's plaintext goes to a child or an exec'd program through one
 * end of an AF_UNIX stream pair (shutdown(2) on it is a half-close, as on TCP) while the
 * process that holds the TLS session relays the other end; Node has no call that makes one.
 *
 * onExit / launch / kill: the per-connection process launcher, in launch.c.
 * shmCreate / shmMap: memory shared with pool workers, in shm.c.
 * unixListen / unixProbe / unixPeer: UNIX-domain listening and peer credentials, in unix.c.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include "launch.h"
#include "accept.h"
#include "errors.h"
#include "shm.h"
#include "unix.h"

void tcpkit_uncaught(napi_env env, napi_status status) {
  napi_value err;
  if (status == napi_pending_exception && napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
}

napi_value tcpkit_throw_errno(napi_env env, const char *syscall, int err, const char *what) {
  napi_value code, msg, error, sys, errnum;
  /* glibc names every errno (strerrorname_np, 2.32+); EIO only for a number it does not know. */
  const char *name = strerrorname_np(err);
  if (name == NULL) name = "EIO";
  char text[512];
  snprintf(text, sizeof text, "%s %s%s%s: %s", syscall, name, what ? " " : "", what ? what : "", strerror(err));
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
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
  if (copy < 0) return tcpkit_throw_errno(env, "dup", errno, NULL);
  napi_value result;
  napi_create_int32(env, copy, &result);
  return result;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  int ok;
  int32_t fd = fd_arg(env, info, &ok);
  if (!ok) return NULL;
  if (close(fd) < 0 && errno != EINTR) return tcpkit_throw_errno(env, "close", errno, NULL);
  return NULL;
}

/* The largest recv tcpkit asks for: a PROXY v2 header is at most 16 + 65535 bytes. */
#define RECV_MAX (16 + 65535)

/*
 * recv(fd, length, peek) -> Buffer | null, never blocking (MSG_DONTWAIT):
 * the bytes received (at most `length`; with peek they stay in the socket's queue),
 * an empty Buffer at end of stream (the peer sent FIN), or null when nothing has
 * arrived yet (EAGAIN). Other failures (ECONNRESET, ...) throw with the code.
 */
static napi_value Recv(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1, length = 0;
  bool peek = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_value_int32(env, argv[1], &length) != napi_ok || length < 1 || length > RECV_MAX ||
      napi_get_value_bool(env, argv[2], &peek) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "recv(fd, length 1..65551, peek boolean)");
    return NULL;
  }
  char buf[RECV_MAX];
  ssize_t n;
  do {
    n = recv(fd, buf, (size_t)length, MSG_DONTWAIT | (peek ? MSG_PEEK : 0));
  } while (n < 0 && errno == EINTR);
  napi_value result;
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_get_null(env, &result);
      return result;
    }
    return tcpkit_throw_errno(env, "recv", errno, NULL);
  }
  void *data;
  napi_create_buffer_copy(env, (size_t)n, buf, &data, &result);
  return result;
}

/*
 * rdhup(fd) -> boolean: has the peer shut down its sending side (or the connection
 * failed)? A peek cannot tell while bytes are still queued before the FIN; poll's
 * POLLRDHUP can, without reading anything.
 */
static napi_value Rdhup(napi_env env, napi_callback_info info) {
  int ok;
  int32_t fd = fd_arg(env, info, &ok);
  if (!ok) return NULL;
  struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0 };
  int n;
  do {
    n = poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return tcpkit_throw_errno(env, "poll", errno, NULL);
  napi_value result;
  napi_get_boolean(env, (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0, &result);
  return result;
}

/* Set close-on-exec on a descriptor tcpkit inherited, so no child inherits it in turn. */
static napi_value Cloexec(napi_env env, napi_callback_info info) {
  int ok;
  int32_t fd = fd_arg(env, info, &ok);
  if (!ok) return NULL;
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return tcpkit_throw_errno(env, "fcntl", errno, NULL);
  return NULL;
}

/*
 * socketInfo(fd) -> { type: 'stream' | 'dgram' | 'other', listening: boolean,
 * family: 'IPv4' | 'IPv6' | 'unix' | 'other' }: what an inherited descriptor is
 * (sd_is_socket's checks). Throws ENOTSOCK for a descriptor that is not a socket.
 */
static napi_value SocketInfo(napi_env env, napi_callback_info info) {
  int ok;
  int32_t fd = fd_arg(env, info, &ok);
  if (!ok) return NULL;
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return tcpkit_throw_errno(env, "getsockopt", errno, NULL);
  len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) return tcpkit_throw_errno(env, "getsockopt", errno, NULL);
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) return tcpkit_throw_errno(env, "getsockname", errno, NULL);
  const char *family = ss.ss_family == AF_INET ? "IPv4" : ss.ss_family == AF_INET6 ? "IPv6" : ss.ss_family == AF_UNIX ? "unix" : "other";
  const char *kind = type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : "other";
  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, result, "type", v);
  napi_get_boolean(env, listening != 0, &v);
  napi_set_named_property(env, result, "listening", v);
  napi_create_string_utf8(env, family, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, result, "family", v);
  return result;
}

/* One readiness watcher: a uv_poll on our own duplicate of a connection's descriptor. */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int fd;
  int closing;
} Watch;

static void watch_closed(uv_handle_t *handle) {
  Watch *w = handle->data;
  close(w->fd);
  free(w);
}

/* One-shot: the poll stops at the first wake-up; JavaScript looks, then re-arms or closes. */
static void watch_event(uv_poll_t *handle, int status, int events) {
  (void)events;
  Watch *w = handle->data;
  uv_poll_stop(handle);
  if (w->closing) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg;
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_global(env, &recv); /* napi_make_callback wants an object as `this` */
  napi_create_int32(env, status, &arg);
  tcpkit_uncaught(env, napi_make_callback(env, w->context, recv, cb, 1, &arg, NULL));
  napi_close_handle_scope(env, scope);
}

static Watch *watch_arg(napi_env env, napi_value value) {
  Watch *w = NULL;
  if (napi_get_value_external(env, value, (void **)&w) != napi_ok || w == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a watch handle");
    return NULL;
  }
  return w;
}

/* watch(fd, callback) -> handle: a disarmed watcher; callback(status) runs once per watchArm. */
static napi_value WatchNew(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_typeof(env, argv[1], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "watch(fd, callback)");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, "EIO", "watch: no event loop");
    return NULL;
  }
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return tcpkit_throw_errno(env, "dup", errno, NULL);
  Watch *w = calloc(1, sizeof *w);
  if (w == NULL) {
    close(copy);
    return tcpkit_throw_errno(env, "watch", ENOMEM, NULL);
  }
  w->env = env;
  w->fd = copy;
  int rc = uv_poll_init_socket(loop, &w->poll, copy);
  if (rc != 0) {
    close(copy);
    free(w);
    return tcpkit_throw_errno(env, "uv_poll_init", -rc, NULL);
  }
  w->poll.data = w;
  napi_value name;
  napi_create_string_utf8(env, "tcpkit:proxy-watch", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->context);
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_value result;
  napi_create_external(env, w, NULL, NULL, &result);
  return result;
}

/* watchArm(handle, lowat): wake once when at least `lowat` bytes are queued, or at EOF/error. */
static napi_value WatchArm(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t lowat = 1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int32(env, argv[1], &lowat) != napi_ok || lowat < 1 || lowat > RECV_MAX) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "watchArm(handle, lowat 1..65551)");
    return NULL;
  }
  Watch *w = watch_arg(env, argv[0]);
  if (w == NULL) return NULL;
  if (w->closing) return NULL;
  if (setsockopt(w->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) < 0) return tcpkit_throw_errno(env, "setsockopt", errno, NULL);
  int rc = uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, watch_event);
  if (rc != 0) return tcpkit_throw_errno(env, "uv_poll_start", -rc, NULL);
  return NULL;
}

/*
 * watchClose(handle): stop, put SO_RCVLOWAT back to 1 (the socket goes on to code that
 * expects the default) and release the duplicate. Idempotent.
 */
static napi_value WatchClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "watchClose(handle)");
    return NULL;
  }
  Watch *w = watch_arg(env, argv[0]);
  if (w == NULL || w->closing) return NULL;
  w->closing = 1;
  int one = 1;
  (void)setsockopt(w->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)&w->poll, watch_closed);
  return NULL;
}

/* socketpair(): [a, b], a connected AF_UNIX stream pair, both close-on-exec and blocking. */
static napi_value Socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return tcpkit_throw_errno(env, "socketpair", errno, NULL);
  napi_value out, a, b;
  napi_create_array_with_length(env, 2, &out);
  napi_create_int32(env, sv[0], &a);
  napi_create_int32(env, sv[1], &b);
  napi_set_element(env, out, 0, a);
  napi_set_element(env, out, 1, b);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "dup", NAPI_AUTO_LENGTH, Dup, NULL, &fn);
  napi_set_named_property(env, exports, "dup", fn);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, Close, NULL, &fn);
  napi_set_named_property(env, exports, "close", fn);
  napi_create_function(env, "recv", NAPI_AUTO_LENGTH, Recv, NULL, &fn);
  napi_set_named_property(env, exports, "recv", fn);
  napi_create_function(env, "rdhup", NAPI_AUTO_LENGTH, Rdhup, NULL, &fn);
  napi_set_named_property(env, exports, "rdhup", fn);
  napi_create_function(env, "cloexec", NAPI_AUTO_LENGTH, Cloexec, NULL, &fn);
  napi_set_named_property(env, exports, "cloexec", fn);
  napi_create_function(env, "socketInfo", NAPI_AUTO_LENGTH, SocketInfo, NULL, &fn);
  napi_set_named_property(env, exports, "socketInfo", fn);
  napi_create_function(env, "watch", NAPI_AUTO_LENGTH, WatchNew, NULL, &fn);
  napi_set_named_property(env, exports, "watch", fn);
  napi_create_function(env, "watchArm", NAPI_AUTO_LENGTH, WatchArm, NULL, &fn);
  napi_set_named_property(env, exports, "watchArm", fn);
  napi_create_function(env, "watchClose", NAPI_AUTO_LENGTH, WatchClose, NULL, &fn);
  napi_set_named_property(env, exports, "watchClose", fn);
  napi_create_function(env, "socketpair", NAPI_AUTO_LENGTH, Socketpair, NULL, &fn);
  napi_set_named_property(env, exports, "socketpair", fn);
  launch_init(env, exports);
  accept_init(env, exports);
  shm_init(env, exports);
  unix_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
