/*
 * accept: accept connections that only a program will read, without a net.Socket each.
 *
 * Why: for `--exec` the server never reads the connection; it only identifies it, admits
 * it and hands the descriptor to a child. Under Node's net.Server each connection still
 * costs libuv's accept, a Socket object built and torn down, a getpeername, and the
 * descriptor's O_NONBLOCK flag cleared again before the spawn. Here one uv_poll on the
 * listening socket wakes once per readiness; accept4 returns the peer's address in the
 * same call (no getpeername), the descriptor blocking (as a program wants it) and
 * close-on-exec; and JavaScript gets one array of plain records per wake-up.
 *
 * Ownership: a watch (struct accept_watch) owns a private duplicate of the listening
 * descriptor (closed by acceptClose, after the poll handle is closed) and its uv_poll
 * handle. Every accepted descriptor is handed to JavaScript in the batch and is its to
 * close or hand on (launcher spawn with `owned`). A watch lives on the loop of the
 * environment that made it, the main thread's or a worker thread's. An environment that
 * ends with a watch still open (a worker thread terminated or crashed: no JavaScript runs
 * then) closes it from an async cleanup hook: a poll handle left on a worker's loop
 * aborts the process at the loop's close, and the duplicate would leak.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "accept.h"
#include "errors.h"
#include "unix.h"

/* Connections taken per wake-up at most: the rest wait for the next turn of the loop, so one busy listener cannot starve timers and exits. */
#define ACCEPT_BATCH 64

struct accept_watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int fd;          /* our duplicate of the listening socket */
  int want_local;  /* also getsockname each connection (a listener bound to a wildcard) */
  int stop_at;     /* end the batch once a descriptor this high is accepted (the owner's headroom; see acceptStart) */
  int per_conn;    /* descriptors each accepted connection will open soon after (a program's pidfd and stderr pipe) */
  int batch;       /* accepts per wake-up at most: ACCEPT_BATCH unless acceptBatch set another */
  int closing;
  int is_unix;     /* a UNIX-domain listener: each record carries the peer's credentials instead of an address */
  char unix_name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1]; /* its path or @abstract name, every connection's local end */
  size_t unix_name_len;
  napi_async_cleanup_hook_handle cleanup; /* the environment's teardown closes the watch if JavaScript has not */
  napi_async_cleanup_hook_handle removing; /* set while that teardown waits for the handle to close */
};

static napi_value throw_code(napi_env env, const char *what, int err) {
  const char *name = strerrorname_np(err);
  napi_throw_error(env, name ? name : "EIO", what);
  return NULL;
}

static void endpoint(napi_env env, napi_value obj, const struct sockaddr_storage *ss, const char *addr_key, const char *port_key,
                     const char *family_key) {
  char text[INET6_ADDRSTRLEN] = "";
  int port = 0;
  const char *family = "IPv4";
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
    family = "IPv6";
  } else if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  }
  napi_value v;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, addr_key, v);
  napi_create_int32(env, port, &v);
  napi_set_named_property(env, obj, port_key, v);
  napi_create_string_utf8(env, family, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, family_key, v);
}

/* A UNIX-domain end: `name` (`len` bytes: a path, '@abstract' or ''), port 0, family "unix". */
static void unix_endpoint(napi_env env, napi_value obj, const char *name, size_t len, const char *addr_key, const char *port_key, const char *family_key) {
  napi_value v;
  napi_create_string_utf8(env, name, len, &v);
  napi_set_named_property(env, obj, addr_key, v);
  napi_create_int32(env, 0, &v);
  napi_set_named_property(env, obj, port_key, v);
  napi_create_string_utf8(env, "unix", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, family_key, v);
}

/*
 * One wake-up: accept up to ACCEPT_BATCH connections, then callback(records, errno):
 * records [{ fd, address, port, family, localAddress?, localPort?, localFamily? }] (on a UNIX
 * listener: family "unix", address "", port 0, and the peer's pid, uid, gid), errno 0,
 * or the accept error that stopped the batch (EMFILE, ENFILE, ENOBUFS, ENOMEM: the
 * owner backs off). Errors that concern one connection only (ECONNABORTED, EPERM by a
 * firewall, a protocol error) skip it, as libuv does.
 */
static void accept_event(uv_poll_t *handle, int status, int events) {
  (void)events;
  struct accept_watch *w = handle->data;
  if (w->closing) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value records;
  napi_create_array(env, &records);
  uint32_t n = 0;
  int err = status < 0 ? -status : 0;
  while (err == 0 && n < (uint32_t)w->batch) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = accept4(w->fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM || errno == ENETDOWN || errno == ENOPROTOOPT ||
          errno == EHOSTDOWN || errno == ENONET || errno == EHOSTUNREACH || errno == EOPNOTSUPP || errno == ENETUNREACH)
        continue;
      err = errno;
      break;
    }
    napi_value rec, v;
    if (w->is_unix) {
      /*
       * A UNIX peer has no address worth naming: who it is, is the credentials the kernel recorded at
       * connect (SO_PEERCRED), which access rules and UNIXREMOTE* use. One getsockopt here, in the batch.
       */
      struct ucred cred;
      socklen_t clen = sizeof cred;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
        close(fd); /* not a connected UNIX socket after all: nothing to serve, as a failed accept */
        continue;
      }
      napi_create_object(env, &rec);
      napi_create_int32(env, fd, &v);
      napi_set_named_property(env, rec, "fd", v);
      unix_endpoint(env, rec, "", 0, "address", "port", "family");
      tcpkit_set_cred(env, rec, &cred);
      if (w->want_local) unix_endpoint(env, rec, w->unix_name, w->unix_name_len, "localAddress", "localPort", "localFamily");
      napi_set_element(env, records, n++, rec);
      if (fd + w->per_conn * (int)n >= w->stop_at) break;
      continue;
    }
    napi_create_object(env, &rec);
    napi_create_int32(env, fd, &v);
    napi_set_named_property(env, rec, "fd", v);
    endpoint(env, rec, &peer, "address", "port", "family");
    if (w->want_local) {
      struct sockaddr_storage local;
      socklen_t llen = sizeof local;
      if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) endpoint(env, rec, &local, "localAddress", "localPort", "localFamily");
    }
    napi_set_element(env, records, n++, rec);
    /* Near the descriptor limit: let JavaScript count and back off before the next accept meets EMFILE. */
    if (fd + w->per_conn * (int)n >= w->stop_at) break;
  }
  if (n > 0 || err != 0) {
    napi_value cb, recv, argv[2];
    argv[0] = records;
    napi_create_int32(env, err, &argv[1]);
    napi_get_reference_value(env, w->callback, &cb);
    napi_get_global(env, &recv);
    /* make_callback, not call_function: promise jobs the batch starts run before the loop goes on. */
    tcpkit_uncaught(env, napi_make_callback(env, w->context, recv, cb, 2, argv, NULL));
  }
  napi_close_handle_scope(env, scope);
}

static struct accept_watch *watch_arg(napi_env env, napi_value value) {
  struct accept_watch *w = NULL;
  if (napi_get_value_external(env, value, (void **)&w) != napi_ok || w == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an accept watch");
    return NULL;
  }
  return w;
}

static void accept_teardown(napi_async_cleanup_hook_handle handle, void *arg);

/* acceptWatch(fd, wantLocal, perConnection, callback) -> handle: stopped; acceptStart arms it. */
static napi_value AcceptWatch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t fd = -1, per_conn = 0;
  bool want_local = false;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      fd < 0 || napi_get_value_bool(env, argv[1], &want_local) != napi_ok || napi_get_value_int32(env, argv[2], &per_conn) != napi_ok ||
      per_conn < 0 || napi_typeof(env, argv[3], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "acceptWatch(fd, wantLocal, perConnection, callback)");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, "EIO", "acceptWatch: no event loop");
    return NULL;
  }
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return throw_code(env, "acceptWatch: dup", errno);
  /* accept4 must not block the loop: O_NONBLOCK on the listening socket's open file (libuv sets the same when it listens). */
  int fl = fcntl(copy, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(copy, F_SETFL, fl | O_NONBLOCK);
  struct accept_watch *w = calloc(1, sizeof *w);
  if (w == NULL) {
    close(copy);
    return throw_code(env, "acceptWatch", ENOMEM);
  }
  w->env = env;
  w->fd = copy;
  /* A UNIX listener: its name once, here (every connection it accepts has it as its local end). */
  struct sockaddr_un sa;
  socklen_t salen = sizeof sa;
  memset(&sa, 0, sizeof sa);
  if (getsockname(copy, (struct sockaddr *)&sa, &salen) == 0 && sa.sun_family == AF_UNIX) {
    w->is_unix = 1;
    w->unix_name_len = tcpkit_unix_name(&sa, salen, w->unix_name);
  }
  w->want_local = want_local;
  w->per_conn = per_conn;
  w->batch = ACCEPT_BATCH;
  int rc = uv_poll_init_socket(loop, &w->poll, copy);
  if (rc != 0) {
    close(copy);
    free(w);
    return throw_code(env, "acceptWatch: uv_poll_init", -rc);
  }
  w->poll.data = w;
  napi_value name, result;
  napi_create_string_utf8(env, "tcpkit:accept", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->context);
  napi_create_reference(env, argv[3], 1, &w->callback);
  napi_add_async_cleanup_hook(env, accept_teardown, w, &w->cleanup);
  napi_create_external(env, w, NULL, NULL, &result);
  return result;
}

/*
 * acceptStart(handle, stopAt) / acceptStop(handle): watch for connections, or leave them in
 * the backlog. `stopAt`: a batch ends after a descriptor numbered this high or higher
 * (descriptors are handed out lowest-first, so that number tells how many are open); the
 * owner sets it again after every batch. Call acceptStart again to change it.
 */
static napi_value AcceptStartStop(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *start = NULL;
  int32_t stop_at = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, &start) != napi_ok || argc < 1 ||
      (start && (argc != 2 || napi_get_value_int32(env, argv[1], &stop_at) != napi_ok))) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "acceptStart(handle, stopAt) / acceptStop(handle)");
    return NULL;
  }
  struct accept_watch *w = watch_arg(env, argv[0]);
  if (w == NULL || w->closing) return NULL;
  if (start) {
    w->stop_at = stop_at;
    int rc = uv_poll_start(&w->poll, UV_READABLE, accept_event);
    if (rc != 0) return throw_code(env, "acceptStart: uv_poll_start", -rc);
  } else {
    uv_poll_stop(&w->poll);
  }
  return NULL;
}

/*
 * acceptLimit(handle, stopAt): only set `stopAt` (see acceptStart) on a watch that may be polling.
 * Why not acceptStart again: uv_poll_start on a started handle stops it first, and on Linux that
 * removes the descriptor from epoll at once (epoll_ctl DEL) and adds it back at the next poll
 * (epoll_ctl ADD): two system calls per batch for a number that changed, where this is a store.
 */
static napi_value AcceptLimit(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t stop_at = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || napi_get_value_int32(env, argv[1], &stop_at) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "acceptLimit(handle, stopAt)");
    return NULL;
  }
  struct accept_watch *w = watch_arg(env, argv[0]);
  if (w == NULL || w->closing) return NULL;
  w->stop_at = stop_at;
  return NULL;
}

/*
 * acceptBatch(handle, max): accept at most `max` (1..ACCEPT_BATCH) connections per wake-up from now on.
 * Why 1 can be right: a batch ends only when accept4 says EAGAIN, one failing system call per wake-up;
 * with one connection per wake-up (as libuv's own accept loop has it in Node), the listening socket
 * stays readable while more wait and the next turn of the loop takes the next, with no EAGAIN.
 */
static napi_value AcceptBatch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t max = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || napi_get_value_int32(env, argv[1], &max) != napi_ok ||
      max < 1 || max > ACCEPT_BATCH) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "acceptBatch(handle, max): max from 1 to 64");
    return NULL;
  }
  struct accept_watch *w = watch_arg(env, argv[0]);
  if (w == NULL || w->closing) return NULL;
  w->batch = max;
  return NULL;
}

static void accept_closed(uv_handle_t *handle) {
  struct accept_watch *w = handle->data;
  napi_async_cleanup_hook_handle removing = w->removing;
  close(w->fd);
  free(w);
  /* The environment's teardown waited for this close: it may go on. */
  if (removing != NULL) napi_remove_async_cleanup_hook(removing);
}

/* The environment ends with the watch open (JavaScript no longer runs): close the handle and the duplicate. */
static void accept_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  struct accept_watch *w = arg;
  w->closing = 1;
  w->removing = handle;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, accept_closed);
}

/* acceptClose(handle): stop and release the duplicate (once libuv has let go of the handle). Idempotent. */
static napi_value AcceptClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "acceptClose(handle)");
    return NULL;
  }
  struct accept_watch *w = watch_arg(env, argv[0]);
  if (w == NULL || w->closing) return NULL;
  w->closing = 1;
  napi_remove_async_cleanup_hook(w->cleanup);
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->context);
  uv_close((uv_handle_t *)&w->poll, accept_closed);
  return NULL;
}

void accept_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "acceptWatch", NAPI_AUTO_LENGTH, AcceptWatch, NULL, &fn);
  napi_set_named_property(env, exports, "acceptWatch", fn);
  napi_create_function(env, "acceptStart", NAPI_AUTO_LENGTH, AcceptStartStop, (void *)1, &fn);
  napi_set_named_property(env, exports, "acceptStart", fn);
  napi_create_function(env, "acceptStop", NAPI_AUTO_LENGTH, AcceptStartStop, NULL, &fn);
  napi_set_named_property(env, exports, "acceptStop", fn);
  napi_create_function(env, "acceptClose", NAPI_AUTO_LENGTH, AcceptClose, NULL, &fn);
  napi_set_named_property(env, exports, "acceptClose", fn);
  napi_create_function(env, "acceptBatch", NAPI_AUTO_LENGTH, AcceptBatch, NULL, &fn);
  napi_set_named_property(env, exports, "acceptBatch", fn);
  napi_create_function(env, "acceptLimit", NAPI_AUTO_LENGTH, AcceptLimit, NULL, &fn);
  napi_set_named_property(env, exports, "acceptLimit", fn);
}
