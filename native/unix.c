/*
 * UNIX-domain sockets: what Node cannot do on a path (issue 22).
 *
 * unixListen: Node's listen({ path }) binds and listens in one step, then the caller chmods: between the two
 * the socket accepts anyone the umask let in. Here the socket is bound, its file given its owner and mode,
 * and only then put in LISTEN: before listen(2) a connect(2) is refused (ECONNREFUSED), so nobody reaches
 * the socket under looser permissions. The descriptor then goes to Node by listen({ fd }).
 *
 * unixProbe: whether a socket file at a path is live (someone accepts) or stale (nobody listens), without
 * blocking: a stale file may be replaced, a live one never.
 *
 * unixPeer: SO_PEERCRED (pid, uid, gid of the process that connected) and the socket's own path.
 *
 * A name starting with '@' is in Linux's abstract namespace: no file, the '@' stands for the leading NUL.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "errors.h"
#include "unix.h"

/* A path or @abstract name (UTF-8 string argument) as a sockaddr_un; 0 on success, else an errno. */
static int make_address(napi_env env, napi_value arg, struct sockaddr_un *sa, socklen_t *len, int *abstract) {
  char buf[sizeof sa->sun_path + 2];
  size_t n = 0;
  if (napi_get_value_string_utf8(env, arg, buf, sizeof buf, &n) != napi_ok) return EINVAL;
  if (n == 0) return EINVAL;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  *abstract = buf[0] == '@';
  /* A path needs its terminating NUL inside sun_path; an abstract name uses every byte after the NUL. */
  if (*abstract ? n > sizeof sa->sun_path : n >= sizeof sa->sun_path) return ENAMETOOLONG;
  if (memchr(buf, 0, n) != NULL) return EINVAL;
  memcpy(sa->sun_path, buf, n);
  if (*abstract) sa->sun_path[0] = '\0';
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (*abstract ? 0 : 1));
  return 0;
}

static int int_arg(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/*
 * unixListen(path, backlog, mode, uid, gid) -> { fd, dev, ino }: a close-on-exec listening socket on path.
 * mode < 0: the umask's; uid/gid < 0: unchanged. dev/ino: the file's (0 for an abstract name), so that the
 * server removes it at shutdown only if it is still the one it made. On failure nothing is left behind.
 */
static napi_value UnixListen(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t backlog = 0, mode = -1, uid = -1, gid = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 || !int_arg(env, argv[1], &backlog) ||
      !int_arg(env, argv[2], &mode) || !int_arg(env, argv[3], &uid) || !int_arg(env, argv[4], &gid)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "unixListen(path, backlog, mode, uid, gid)");
    return NULL;
  }
  struct sockaddr_un sa;
  socklen_t salen;
  int abstract;
  int err = make_address(env, argv[0], &sa, &salen, &abstract);
  if (err) return tcpkit_throw_errno(env, "bind", err, NULL);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return tcpkit_throw_errno(env, "socket", errno, NULL);
  const char *step = "bind";
  struct stat st;
  memset(&st, 0, sizeof st);
  if (bind(fd, (struct sockaddr *)&sa, salen) < 0) goto fail;
  if (!abstract) {
    /* Owner first: chown by root may clear set-id bits, never the permission bits set next. */
    step = "chown";
    if ((uid >= 0 || gid >= 0) && lchown(sa.sun_path, (uid_t)uid, (gid_t)gid) < 0) goto unlink_fail;
    /* Never through a symbolic link: in a directory others may write, the socket file could be swapped for a
     * link to a file of their choosing between bind and chmod (lchown and AT_SYMLINK_NOFOLLOW refuse it). */
    step = "chmod";
    if (mode >= 0 && fchmodat(AT_FDCWD, sa.sun_path, (mode_t)mode, AT_SYMLINK_NOFOLLOW) < 0) goto unlink_fail;
    step = "stat";
    if (lstat(sa.sun_path, &st) < 0) goto unlink_fail;
    if (!S_ISSOCK(st.st_mode)) {
      close(fd);
      return tcpkit_throw_errno(env, "bind", EEXIST, NULL);
    }
  }
  step = "listen";
  if (listen(fd, backlog) < 0) goto unlink_fail;
  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, result, "fd", v);
  napi_create_double(env, (double)st.st_dev, &v);
  napi_set_named_property(env, result, "dev", v);
  napi_create_double(env, (double)st.st_ino, &v);
  napi_set_named_property(env, result, "ino", v);
  return result;
unlink_fail:
  err = errno;
  if (!abstract) unlink(sa.sun_path);
  close(fd);
  return tcpkit_throw_errno(env, step, err, NULL);
fail:
  err = errno;
  close(fd);
  return tcpkit_throw_errno(env, step, err, NULL);
}

/*
 * unixProbe(path) -> 'absent' | 'other' | 'stale' | 'live': nothing at the path, something that is not a
 * socket, a socket nobody listens on (connect: ECONNREFUSED), or one a server accepts on (connected, or its
 * backlog is full: EAGAIN). A non-blocking connect, closed at once: a live server sees a connection that ends.
 */
static napi_value UnixProbe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "unixProbe(path)");
    return NULL;
  }
  struct sockaddr_un sa;
  socklen_t salen;
  int abstract;
  int err = make_address(env, argv[0], &sa, &salen, &abstract);
  if (err) return tcpkit_throw_errno(env, "connect", err, NULL);
  const char *answer;
  struct stat st;
  if (!abstract && lstat(sa.sun_path, &st) < 0) {
    if (errno != ENOENT) return tcpkit_throw_errno(env, "lstat", errno, NULL);
    answer = "absent";
  } else if (!abstract && !S_ISSOCK(st.st_mode)) {
    answer = "other";
  } else {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return tcpkit_throw_errno(env, "socket", errno, NULL);
    int rc = connect(fd, (struct sockaddr *)&sa, salen);
    err = rc < 0 ? errno : 0;
    close(fd);
    if (rc == 0 || err == EAGAIN || err == EINPROGRESS) answer = "live";
    else if (err == ECONNREFUSED) answer = "stale";
    else if (err == ENOENT) answer = "absent";
    else return tcpkit_throw_errno(env, "connect", err, NULL);
  }
  napi_value result;
  napi_create_string_utf8(env, answer, NAPI_AUTO_LENGTH, &result);
  return result;
}

void tcpkit_set_cred(napi_env env, napi_value obj, const struct ucred *cred) {
  napi_value v;
  napi_create_int32(env, cred->pid, &v);
  napi_set_named_property(env, obj, "pid", v);
  napi_create_uint32(env, cred->uid, &v);
  napi_set_named_property(env, obj, "uid", v);
  napi_create_uint32(env, cred->gid, &v);
  napi_set_named_property(env, obj, "gid", v);
}

size_t tcpkit_unix_name(const struct sockaddr_un *sa, socklen_t salen, char *out) {
  size_t n = salen > offsetof(struct sockaddr_un, sun_path) ? salen - offsetof(struct sockaddr_un, sun_path) : 0;
  if (n > sizeof sa->sun_path) n = sizeof sa->sun_path;
  if (n > 0 && sa->sun_path[0] == '\0') {
    out[0] = '@';
    memcpy(out + 1, sa->sun_path + 1, n - 1);
    out[n] = '\0';
    return n;
  }
  memcpy(out, sa->sun_path, n);
  out[n] = '\0';
  return strlen(out);
}

/*
 * unixPeer(fd) -> { pid, uid, gid, path }: the credentials of the process that connected (SO_PEERCRED, as
 * the kernel recorded them at connect) and this socket's own address (a path, '@name', or '' unnamed).
 * Throws ENOTSOCK / EINVAL-like errors for a descriptor that is not a connected UNIX socket.
 */
static napi_value UnixPeer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || !int_arg(env, argv[0], &fd) || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "unixPeer(fd)");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return tcpkit_throw_errno(env, "getsockopt", errno, NULL);
  struct sockaddr_un sa;
  socklen_t salen = sizeof sa;
  memset(&sa, 0, sizeof sa);
  if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) return tcpkit_throw_errno(env, "getsockname", errno, NULL);
  if (sa.sun_family != AF_UNIX) return tcpkit_throw_errno(env, "getsockname", EAFNOSUPPORT, NULL);
  char name[sizeof sa.sun_path + 1];
  size_t n = tcpkit_unix_name(&sa, salen, name);
  napi_value result, v;
  napi_create_object(env, &result);
  tcpkit_set_cred(env, result, &cred);
  napi_create_string_utf8(env, name, n, &v);
  napi_set_named_property(env, result, "path", v);
  return result;
}

void unix_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "unixListen", NAPI_AUTO_LENGTH, UnixListen, NULL, &fn);
  napi_set_named_property(env, exports, "unixListen", fn);
  napi_create_function(env, "unixProbe", NAPI_AUTO_LENGTH, UnixProbe, NULL, &fn);
  napi_set_named_property(env, exports, "unixProbe", fn);
  napi_create_function(env, "unixPeer", NAPI_AUTO_LENGTH, UnixPeer, NULL, &fn);
  napi_set_named_property(env, exports, "unixPeer", fn);
}
