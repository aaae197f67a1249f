/*
 * launch: start a process per connection without forking Node, and reap it
 * without touching libuv's children.
 *
 * Why not child_process.spawn: libuv forks the whole Node parent (plain clone, no
 * CLONE_VFORK) and blocks the event loop until the child has exec'd; the cost grows
 * with the parent's size (see DESIGN.md, "Facts"). glibc's posix_spawn uses
 * CLONE_VM|CLONE_VFORK: no page tables copied, and the exec's failure (ENOENT,
 * EACCES, ENOMEM, ...) comes back as posix_spawn's return code.
 *
 * Why a thread of our own for reaping: libuv reaps its children by pid (never
 * waitpid(-1)), so a child it did not start is never reaped by it; and a SIGCHLD
 * handler of ours would race with libuv's. Each child gets a pidfd (pidfd_open);
 * one thread per Node environment waits on all of them with epoll and reaps each
 * with waitid(P_PIDFD), which only ever reaps that child. Results reach JavaScript
 * through a napi_threadsafe_function, referenced only while children live, so an
 * idle server can still exit.
 *
 * Why spawn on that thread too (spawn(), the queued form of launch()): posix_spawn's vfork
 * suspends the calling thread until the child has exec'd, and under load that was 72% of
 * the event loop's busy time; on the reaper thread the loop goes on accepting and admitting
 * while children exec. Requests go through a queue under the lock and the wake eventfd; the
 * result ("spawned" or "failed") comes back through the same threadsafe function as the
 * exits, from the same thread, so a child's "spawned" always reaches JavaScript before its
 * exit.
 *
 * Ownership: each environment's `struct launcher` (its instance data) owns the
 * epoll fd, the wake eventfd, the thread (started by a launch, ending itself after
 * REAPER_LINGER_MS with no child), the threadsafe function and the list of live children; each `struct child` owns its pidfd. The reaper thread closes a
 * child's pidfd when it reaps it; the environment's cleanup hook stops and joins
 * the thread and releases everything still held. Signals are sent through the
 * pidfd under the list's lock, so a kill never reaches a recycled pid.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "errors.h"
#include "launch.h"

enum { THREAD_NONE, THREAD_RUNNING, THREAD_DONE };

/*
 * How long the reaper thread waits with no child before it ends. It is started again
 * by the next launch; a server that has gone idle holds no extra thread, while one
 * serving connections back to back does not pay a thread start for each.
 */
#define REAPER_LINGER_MS 1000

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Raw syscalls: glibc has wrappers only from 2.36, and the helper builds on older ones. */
static int sys_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
static int sys_pidfd_send_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }

/* What the thread reports to JavaScript, first member of every record it queues. */
enum { REPORT_EXIT = 0, REPORT_SPAWNED = 1, REPORT_FAILED = 2, REPORT_LINES = 3, REPORT_STDERR_END = 4 };
struct report {
  int kind;
  int32_t a, b, c; /* EXIT: pid, code, signo; SPAWNED: token, pid, stderr fd (-2: read here); FAILED: token, errno, syscall
                      (index); LINES: pid (text: complete lines, each ending in \n); STDERR_END: pid */
  char *text;      /* LINES only; freed with the record */
  size_t len;
};

/*
 * Why the thread reads programs' stderr too (spawn with stderr "lines"): a net.Socket per
 * child pipe cost the event loop a handle, a stream and a close per connection. Here the
 * read end joins the same epoll; whatever a read brings is cut into lines (a line longer
 * than STDERR_LINE_MAX bytes is cut into pieces, so a program cannot make us buffer without
 * end) and sent as one LINES record per read, with the pid; EOF sends STDERR_END. A pipe's
 * records follow its child's SPAWNED in the one queue, so JavaScript knows the pid first.
 */
#define STDERR_LINE_MAX 4096
struct errpipe {
  int fd;
  pid_t pid;
  size_t len;                      /* bytes of an unfinished line in buf */
  char buf[STDERR_LINE_MAX];
  struct errpipe *prev, *next;
};
/* epoll's data for a pipe is its pointer with the low bit set (a child's is its plain pointer). */
#define PIPE_TAG ((uintptr_t)1)
/* The system call a FAILED report names (its `c`). */
static const char *const failed_calls[] = { "posix_spawn", "pipe2", "pidfd_open", "epoll_ctl" };

/* A queued spawn() request; the strings are its own; fd0 is the caller's unless `owned`. */
struct job {
  char *file;
  char **argv, **envp;
  int fd0, fd2;   /* fd2 -1: a new pipe */
  bool setsid, owned, lines;  /* lines: stderr read by the thread (errpipe) instead of handed to JS */
  int32_t token;
  struct job *next;
};

/* One live child; once reaped, the same record carries its status to JavaScript (no allocation in the thread). */
struct child {
  struct report rep; /* first: call_js frees records by this pointer */
  pid_t pid;
  int pidfd;
  int code;   /* exit code, or -1 when ended by a signal (or the status was lost) */
  int signo;  /* the signal that ended it, else 0 */
  struct child *prev, *next;
};

struct launcher {
  napi_env env;
  napi_threadsafe_function tsfn; /* calls the JS onExit(pid, code, signo) */
  int epfd, wakefd;
  pthread_t thread;
  int thread_state;              /* THREAD_NONE, THREAD_RUNNING, or THREAD_DONE (exited, not yet joined) */
  pthread_mutex_t lock;          /* guards `children` and `thread_state` (JS thread and reaper thread) */
  struct child *children;
  struct errpipe *pipes;         /* stderr pipes the thread reads (the thread's own; freed by it at EOF, or by cleanup) */
  struct job *jobs, *last_job;   /* spawn() requests not yet taken by the thread (under `lock`) */
  bool stopping;                 /* set by the cleanup hook before it wakes the thread */
  uint32_t live;                 /* launched or queued and not yet reported ended/failed to JS; JS thread only */
  sigset_t sigdef;               /* signals the child resets to SIG_DFL (see ignored_signals) */
};

/*
 * The signals this process ignores (Node: SIGPIPE), read once, plus SIGPIPE and SIGXFSZ
 * always: an exec keeps SIG_IGN, so these are the ones a program would otherwise inherit.
 * Signals with handlers need nothing: glibc's posix_spawn resets them itself (an exec would
 * too). Asking for every signal instead costs the child ~60 extra sigaction calls, during
 * which the parent's event loop waits (vfork).
 */
static void ignored_signals(sigset_t *set) {
  sigemptyset(set);
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction sa;
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0) continue;
    if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) sigaddset(set, sig);
  }
  sigaddset(set, SIGPIPE);
  sigaddset(set, SIGXFSZ);
}


static bool run_jobs(struct launcher *l);
static void post(struct launcher *l, struct report *rep);

/* Queue a LINES record of `len` bytes of `text` for pid (copied); nothing when empty. */
static void post_lines(struct launcher *l, pid_t pid, const char *text, size_t len) {
  if (len == 0) return;
  struct report *rep = malloc(sizeof *rep);
  char *copy = malloc(len);
  if (!rep || !copy) {
    free(rep);
    free(copy);
    return; /* out of memory: these lines are lost, the rest goes on */
  }
  memcpy(copy, text, len);
  *rep = (struct report){ REPORT_LINES, pid, 0, 0, copy, len };
  post(l, rep);
}

/* A pipe is readable: read what is there, send the complete lines (and over-long pieces); at EOF the rest and STDERR_END. */
static void read_pipe(struct launcher *l, struct errpipe *p) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(p->fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      /* EOF (every writer gone: the program and its descendants) or an error: the last piece, then the end. */
      if (p->len > 0) {
        p->buf[p->len] = '\n';
        post_lines(l, p->pid, p->buf, p->len + 1);
      }
      pthread_mutex_lock(&l->lock);
      epoll_ctl(l->epfd, EPOLL_CTL_DEL, p->fd, NULL);
      if (p->prev) p->prev->next = p->next;
      else l->pipes = p->next;
      if (p->next) p->next->prev = p->prev;
      pthread_mutex_unlock(&l->lock);
      close(p->fd);
      struct report *rep = malloc(sizeof *rep);
      if (rep) {
        *rep = (struct report){ REPORT_STDERR_END, p->pid, 0, 0, NULL, 0 };
        post(l, rep);
      }
      free(p);
      return;
    }
    /* Lines: the unfinished one from before, then this chunk; one record for all complete ones. */
    char *out = malloc(p->len + (size_t)n + (size_t)n / STDERR_LINE_MAX + 2);
    if (!out) continue;
    size_t o = 0;
    for (ssize_t i = 0; i < n; i++) {
      char ch = chunk[i];
      if (ch == '\n') {
        memcpy(out + o, p->buf, p->len);
        o += p->len;
        out[o++] = '\n';
        p->len = 0;
      } else {
        /* sizeof buf - 1: room for the newline added at EOF */
        if (p->len == STDERR_LINE_MAX - 1) {
          memcpy(out + o, p->buf, p->len);
          o += p->len;
          out[o++] = '\n';
          p->len = 0;
        }
        p->buf[p->len++] = ch;
      }
    }
    post_lines(l, p->pid, out, o);
    free(out);
  }
}
static void free_job(struct job *j);

/* The reaper: wait for any pidfd to become readable (the child exited), reap it, report it. */
static void *reaper(void *arg) {
  struct launcher *l = arg;
  struct epoll_event events[32];
  for (;;) {
    pthread_mutex_lock(&l->lock);
    int timeout = l->children || l->jobs || l->pipes ? -1 : REAPER_LINGER_MS;
    pthread_mutex_unlock(&l->lock);
    int n = epoll_wait(l->epfd, events, 32, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      /* Idle for the linger time (or epoll failed): end, unless a child arrived meanwhile. */
      pthread_mutex_lock(&l->lock);
      int done = (l->children == NULL && l->jobs == NULL && l->pipes == NULL) || n < 0;
      if (done) {
        /* The thread's descriptors go with it: an idle server holds nothing of the launcher's. */
        close(l->epfd);
        close(l->wakefd);
        l->epfd = l->wakefd = -1;
        l->thread_state = THREAD_DONE;
      }
      pthread_mutex_unlock(&l->lock);
      if (done) return NULL;
      continue;
    }
    for (int i = 0; i < n; i++) {
      if ((uintptr_t)events[i].data.ptr & PIPE_TAG) {
        read_pipe(l, (struct errpipe *)((uintptr_t)events[i].data.ptr & ~PIPE_TAG));
        continue;
      }
      struct child *c = events[i].data.ptr;
      if (c == NULL) {
        /* The wake eventfd: spawn requests, or the environment going away. */
        uint64_t count;
        ssize_t r = read(l->wakefd, &count, sizeof count);
        (void)r;
        if (run_jobs(l)) return NULL;
        continue;
      }
      siginfo_t si;
      memset(&si, 0, sizeof si);
      int r;
      do {
        r = waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
      } while (r < 0 && errno == EINTR);
      pthread_mutex_lock(&l->lock);
      if (c->prev) c->prev->next = c->next;
      else l->children = c->next;
      if (c->next) c->next->prev = c->prev;
      epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
      close(c->pidfd);
      pthread_mutex_unlock(&l->lock);
      c->code = -1;
      c->signo = 0;
      if (r == 0 && si.si_code == CLD_EXITED) c->code = si.si_status;
      else if (r == 0) c->signo = si.si_status;
      c->rep = (struct report){ REPORT_EXIT, c->pid, c->code, c->signo, NULL, 0 };
      /* Unbounded queue: never blocks. If the function is closing, JS is gone: drop the record. */
      if (napi_call_threadsafe_function(l->tsfn, c, napi_tsfn_nonblocking) != napi_ok) free(c);
    }
  }
}

/*
 * On the JS thread: fn(kind, a, b, c) for one report (struct report). `env` is NULL when
 * the function is torn down: then only the record is freed (a spawned child's stderr pipe,
 * which nobody will read, is closed).
 */
static void call_js(napi_env env, napi_value fn, void *context, void *data) {
  struct launcher *l = context;
  struct report *rec = data;
  if (env != NULL && fn != NULL) {
    napi_value argv[5], undefined;
    napi_create_int32(env, rec->kind, &argv[0]);
    napi_create_int32(env, rec->a, &argv[1]);
    if (rec->kind == REPORT_EXIT && rec->b < 0) napi_get_null(env, &argv[2]);
    else napi_create_int32(env, rec->b, &argv[2]);
    napi_create_int32(env, rec->c, &argv[3]);
    if (rec->text) napi_create_string_utf8(env, rec->text, rec->len, &argv[4]);
    else napi_get_undefined(env, &argv[4]);
    napi_get_undefined(env, &undefined);
    /* An exit or a failed spawn ends what launch/spawn counted. Dropped before calling out,
       so an exception in the callback cannot keep Node alive. */
    if ((rec->kind == REPORT_EXIT || rec->kind == REPORT_FAILED) && l->live > 0 && --l->live == 0) napi_unref_threadsafe_function(env, l->tsfn);
    napi_call_function(env, undefined, fn, 5, argv, NULL);
  } else if (rec->kind == REPORT_SPAWNED && rec->c >= 0) {
    close(rec->c);
  }
  free(rec->text);
  free(rec);
}

/* Queue a record for JavaScript; if the function is closing, JS is gone: drop it. */
static void post(struct launcher *l, struct report *rep) {
  if (napi_call_threadsafe_function(l->tsfn, rep, napi_tsfn_nonblocking) != napi_ok) {
    if (rep->kind == REPORT_SPAWNED && rep->c >= 0) close(rep->c);
    free(rep->text);
    free(rep);
  }
}

/* Environment teardown: stop the thread, then release every descriptor and child record. */
static void cleanup(void *arg) {
  struct launcher *l = arg;
  pthread_mutex_lock(&l->lock);
  int state = l->thread_state;
  l->stopping = true;
  if (state == THREAD_RUNNING) {
    uint64_t one = 1;
    ssize_t w = write(l->wakefd, &one, sizeof one);
    (void)w;
  }
  pthread_mutex_unlock(&l->lock);
  if (state != THREAD_NONE) pthread_join(l->thread, NULL);
  /* Requests the thread never took: their owned sockets are closed here (nobody else holds them). */
  for (struct job *j = l->jobs, *next; j; j = next) {
    next = j->next;
    free_job(j);
  }
  l->jobs = l->last_job = NULL;
  for (struct child *c = l->children, *next; c; c = next) {
    next = c->next;
    close(c->pidfd);
    free(c);
  }
  l->children = NULL;
  for (struct errpipe *p = l->pipes, *next; p; p = next) {
    next = p->next;
    close(p->fd);
    free(p);
  }
  l->pipes = NULL;
  if (l->tsfn) napi_release_threadsafe_function(l->tsfn, napi_tsfn_abort);
  if (l->epfd >= 0) close(l->epfd);
  if (l->wakefd >= 0) close(l->wakefd);
  pthread_mutex_destroy(&l->lock);
  free(l);
}

static struct launcher *get_launcher(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

/*
 * onExit(fn): where exits are reported, fn(pid, code | null, signo), once per child,
 * on this thread. Set once per environment, before the first launch; starts the reaper.
 */
static napi_value OnExit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value fn, name;
  napi_valuetype t = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, &fn, NULL, NULL) != napi_ok || argc != 1 || napi_typeof(env, fn, &t) != napi_ok ||
      t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "onExit(fn)");
    return NULL;
  }
  if (get_launcher(env) != NULL) {
    napi_throw_error(env, "ERR_INVALID_STATE", "onExit was already set in this environment");
    return NULL;
  }
  struct launcher *l = calloc(1, sizeof *l);
  if (!l) return tcpkit_throw_errno(env, "calloc", ENOMEM, "launcher");
  l->env = env;
  l->epfd = l->wakefd = -1;
  ignored_signals(&l->sigdef);
  pthread_mutex_init(&l->lock, NULL);
  napi_create_string_utf8(env, "tcpkit launcher", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, fn, NULL, name, 0, 1, NULL, NULL, l, call_js, &l->tsfn) != napi_ok) {
    pthread_mutex_destroy(&l->lock);
    free(l);
    napi_throw_error(env, "ERR_LAUNCHER", "cannot create the launcher's threadsafe function");
    return NULL;
  }
  /* Unreferenced while no child lives: an idle server must be free to exit. */
  napi_unref_threadsafe_function(env, l->tsfn);
  napi_set_instance_data(env, l, NULL, NULL);
  /* Registered after the threadsafe function, so it runs before Node's own teardown of it. */
  napi_add_env_cleanup_hook(env, cleanup, l);
  return NULL;
}

/* Make sure the reaper thread runs (called with l->lock held); 0 or an errno. */
static int ensure_reaper(struct launcher *l) {
  if (l->thread_state == THREAD_RUNNING) return 0;
  /* It ended after its linger time: join it (it has returned already) before starting anew. */
  if (l->thread_state == THREAD_DONE) pthread_join(l->thread, NULL);
  l->thread_state = THREAD_NONE;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->wakefd = eventfd(0, EFD_CLOEXEC);
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
  int err = l->epfd < 0 || l->wakefd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0 ? errno : 0;
  /* Block every signal in the reaper thread: Node's handlers run on the main thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (err == 0) err = pthread_create(&l->thread, NULL, reaper, l);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err == 0) {
    l->thread_state = THREAD_RUNNING;
    return 0;
  }
  if (l->epfd >= 0) close(l->epfd);
  if (l->wakefd >= 0) close(l->wakefd);
  l->epfd = l->wakefd = -1;
  return err;
}

static char *string_arg(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

/* A JS array of strings as a NULL-terminated C vector; NULL on a bad argument. */
static char **string_vector(napi_env env, napi_value arr) {
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, arr, &is_array) != napi_ok || !is_array || napi_get_array_length(env, arr, &n) != napi_ok) return NULL;
  char **v = calloc((size_t)n + 1, sizeof *v);
  if (!v) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    if (napi_get_element(env, arr, i, &e) != napi_ok || (v[i] = string_arg(env, e)) == NULL) {
      for (uint32_t j = 0; j < i; j++) free(v[j]);
      free(v);
      return NULL;
    }
  }
  return v;
}

static void free_vector(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* libuv leaves sockets O_NONBLOCK, on the open file the child shares: a program would see EAGAIN. */
static void make_blocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/*
 * Start one child and register it with the reaper: posix_spawnp `file` (PATH looked up
 * as execvp does) with argv and exactly the environment `envp`; its descriptors 0, 1, 2
 * are dup2'd from fd0, fd1, fd2; fd2 = -1 gives it a new pipe instead, whose read end
 * (close-on-exec, non-blocking, the caller's to close) is stored in *stderr_fd (else -1).
 * fd0 and fd1 are made blocking (shared open file: see make_blocking). Every other
 * descriptor tcpkit and Node hold is close-on-exec already, and the rest are closed
 * (closefrom). The child starts with an empty signal mask and every signal at its default
 * disposition (Node ignores SIGPIPE; exec keeps ignored signals), in its own session if
 * `setsid`. Returns 0 with *pid set, or an errno with *failed naming the call (an index
 * into failed_calls); nothing is left open or running then. Runs on either thread.
 */
static int do_spawn(struct launcher *l, const char *file, char *const *args, char *const *envp, int fd0, int fd1, int fd2, bool setsid,
                    pid_t *pid_out, int *stderr_fd, int *failed) {
  int pipefd[2] = { -1, -1 };
  int err = 0;
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int have_fa = 0, have_attr = 0;
  *failed = 0;
  *stderr_fd = -1;
  if (fd2 < 0) {
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
      *failed = 1;
      return errno;
    }
    /* The read end is read by libuv (net.Socket), which wants it non-blocking. */
    fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) | O_NONBLOCK);
  }
  make_blocking(fd0);
  if (fd1 != fd0) make_blocking(fd1);
  if ((err = posix_spawn_file_actions_init(&fa)) != 0) goto out;
  have_fa = 1;
  if ((err = posix_spawnattr_init(&attr)) != 0) goto out;
  have_attr = 1;
  /* dup2 clears close-on-exec on the target, so 0, 1, 2 are the only descriptors the program keeps. */
  int src[3] = { fd0, fd1, fd2 < 0 ? pipefd[1] : fd2 };
  for (int i = 0; i < 3 && err == 0; i++) err = posix_spawn_file_actions_adddup2(&fa, src[i], i);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  /*
   * And close everything above 2 (close_range): tcpkit's own descriptors are close-on-exec,
   * but one the server inherited without the flag (from a test runner, a shell) must not
   * reach a program either.
   */
  if (err == 0) err = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  if (err) goto out;
  sigset_t none;
  sigemptyset(&none);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (setsid ? POSIX_SPAWN_SETSID : 0);
  if ((err = posix_spawnattr_setsigmask(&attr, &none)) != 0 || (err = posix_spawnattr_setsigdefault(&attr, &l->sigdef)) != 0 ||
      (err = posix_spawnattr_setflags(&attr, flags)) != 0)
    goto out;
  err = posix_spawnp(&pid, file, &fa, &attr, args, envp);
  if (err) goto out;

  /* Started: from here on the child is ours to reap, whatever else fails. */
  struct child *c = calloc(1, sizeof *c);
  int pidfd = sys_pidfd_open(pid);
  if (!c || pidfd < 0) {
    /* Cannot watch it (ENOMEM, EMFILE): do not leave a zombie; kill it and reap it here. */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    err = pidfd < 0 ? errno : ENOMEM;
    *failed = 2;
    if (pidfd >= 0) close(pidfd);
    free(c);
    goto out;
  }
  fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  c->pid = pid;
  c->pidfd = pidfd;
  pthread_mutex_lock(&l->lock);
  int terr = ensure_reaper(l);
  if (terr == 0) {
    c->next = l->children;
    if (c->next) c->next->prev = c;
    l->children = c;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
      terr = errno;
      l->children = c->next;
      if (c->next) c->next->prev = NULL;
    }
  }
  pthread_mutex_unlock(&l->lock);
  if (terr) {
    /* No thread to reap it (EAGAIN, ENOMEM): reap it here rather than leave a zombie nobody waits for. */
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    close(pidfd);
    free(c);
    err = terr;
    *failed = 3;
    goto out;
  }
  *pid_out = pid;
  *stderr_fd = pipefd[0];
  pipefd[0] = -1; /* now the caller's */

out:
  if (have_fa) posix_spawn_file_actions_destroy(&fa);
  if (have_attr) posix_spawnattr_destroy(&attr);
  if (pipefd[1] >= 0) close(pipefd[1]);
  if (pipefd[0] >= 0) close(pipefd[0]);
  return err;
}

/*
 * launch(file, argv, env, fd0, fd1, fd2, setsid) -> { pid, stderr }: do_spawn on the
 * calling thread (the fork model's Node children). Throws with the errno's code (ENOENT,
 * EACCES, ENOMEM, EAGAIN, ...) when the program could not be started.
 */
static napi_value Launch(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  int32_t fds[3] = { -1, -1, -1 };
  bool setsid = false;
  struct launcher *l = get_launcher(env);
  if (!l) {
    napi_throw_error(env, "ERR_INVALID_STATE", "launch before onExit");
    return NULL;
  }
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 7 ||
      napi_get_value_int32(env, argv[3], &fds[0]) != napi_ok || napi_get_value_int32(env, argv[4], &fds[1]) != napi_ok ||
      napi_get_value_int32(env, argv[5], &fds[2]) != napi_ok || napi_get_value_bool(env, argv[6], &setsid) != napi_ok ||
      fds[0] < 0 || fds[1] < 0 || fds[2] < -1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "launch(file, argv[], env[], fd0, fd1, fd2 | -1, setsid)");
    return NULL;
  }
  char *file = string_arg(env, argv[0]);
  char **args = string_vector(env, argv[1]);
  char **envp = string_vector(env, argv[2]);
  napi_value result = NULL;
  if (!file || !args || !args[0] || !envp) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "launch: file, argv (non-empty) and env must be strings");
  } else {
    pid_t pid = -1;
    int stderr_fd = -1, failed = 0;
    int err = do_spawn(l, file, args, envp, fds[0], fds[1], fds[2], setsid, &pid, &stderr_fd, &failed);
    if (err) {
      tcpkit_throw_errno(env, failed_calls[failed], err, file);
    } else {
      if (l->live++ == 0) napi_ref_threadsafe_function(env, l->tsfn);
      napi_value v;
      napi_create_object(env, &result);
      napi_create_int32(env, pid, &v);
      napi_set_named_property(env, result, "pid", v);
      napi_create_int32(env, stderr_fd, &v);
      napi_set_named_property(env, result, "stderr", v);
    }
  }
  free(file);
  free_vector(args);
  free_vector(envp);
  return result;
}

static void free_job(struct job *j) {
  if (j->owned && j->fd0 >= 0) close(j->fd0);
  free(j->file);
  free_vector(j->argv);
  free_vector(j->envp);
  free(j);
}

/*
 * On the thread: take every queued request and start it. Each gives one report: SPAWNED
 * (token, pid, stderr read end) or FAILED (token, errno, call). An owned socket is closed
 * here once its child holds it; after a failure it stays open and goes back to the caller
 * with the report (it may retry: a script without `#!` runs again under /bin/sh).
 * Returns true when the environment is going away (the thread must end).
 */
static bool run_jobs(struct launcher *l) {
  for (;;) {
    pthread_mutex_lock(&l->lock);
    bool stopping = l->stopping;
    struct job *j = stopping ? NULL : l->jobs;
    if (j) {
      l->jobs = j->next;
      if (!l->jobs) l->last_job = NULL;
    }
    pthread_mutex_unlock(&l->lock);
    if (stopping) return true;
    if (!j) return false;
    pid_t pid = -1;
    int stderr_fd = -1, failed = 0;
    int err = do_spawn(l, j->file, j->argv, j->envp, j->fd0, j->fd0, j->fd2, j->setsid, &pid, &stderr_fd, &failed);
    if (err == 0 && j->lines && stderr_fd >= 0) {
      /* Read here: the pipe joins the epoll (after SPAWNED is queued below, its lines can only follow it). */
      struct errpipe *p = calloc(1, sizeof *p);
      if (p) {
        p->fd = stderr_fd;
        p->pid = pid;
        pthread_mutex_lock(&l->lock);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = (void *)((uintptr_t)p | PIPE_TAG) };
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, p->fd, &ev) == 0) {
          p->next = l->pipes;
          if (p->next) p->next->prev = p;
          l->pipes = p;
          p = NULL;
          stderr_fd = -2;
        }
        pthread_mutex_unlock(&l->lock);
      }
      if (p) free(p); /* could not watch it: JS gets the descriptor as before */
    }
    struct report *rep = malloc(sizeof *rep);
    if (err == 0 && j->owned) close(j->fd0);
    if (err != 0) j->owned = false; /* back to the caller with the report */
    j->fd0 = -1;
    if (rep) {
      *rep = err ? (struct report){ REPORT_FAILED, j->token, err, failed, NULL, 0 } : (struct report){ REPORT_SPAWNED, j->token, pid, stderr_fd, NULL, 0 };
      post(l, rep);
    } else if (stderr_fd >= 0) {
      close(stderr_fd); /* out of memory: the child runs and is reaped; its report is lost */
    }
    free_job(j);
  }
}

/*
 * spawn(file, argv, env, fd, fd2, setsid, owned, token, lines): queue do_spawn(fd as 0 and 1, fd2
 * as 2 or -1 for a pipe) for the thread, which reports SPAWNED or FAILED with `token`
 * through onExit's function. With `owned`, the descriptor is the launcher's from now on
 * (closed once the child holds it; handed back, still open, with a FAILED report).
 * Without, the caller keeps it open until the report. With `lines` (and fd2 -1) the thread
 * reads the stderr pipe itself (LINES, STDERR_END). Throws only for bad arguments or
 * when no thread can be started (then nothing was taken).
 */
static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  struct launcher *l = get_launcher(env);
  if (!l) {
    napi_throw_error(env, "ERR_INVALID_STATE", "spawn before onExit");
    return NULL;
  }
  struct job *j = calloc(1, sizeof *j);
  if (!j) return tcpkit_throw_errno(env, "calloc", ENOMEM, "spawn");
  j->fd0 = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 9 ||
      napi_get_value_bool(env, argv[8], &j->lines) != napi_ok ||
      napi_get_value_int32(env, argv[3], &j->fd0) != napi_ok || napi_get_value_int32(env, argv[4], &j->fd2) != napi_ok ||
      napi_get_value_bool(env, argv[5], &j->setsid) != napi_ok || napi_get_value_bool(env, argv[6], &j->owned) != napi_ok ||
      napi_get_value_int32(env, argv[7], &j->token) != napi_ok || j->fd0 < 0 || j->fd2 < -1 ||
      (j->file = string_arg(env, argv[0])) == NULL || (j->argv = string_vector(env, argv[1])) == NULL || !j->argv[0] ||
      (j->envp = string_vector(env, argv[2])) == NULL) {
    j->owned = false; /* nothing taken */
    free_job(j);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "spawn(file, argv[], env[], fd, fd2 | -1, setsid, owned, token, lines)");
    return NULL;
  }
  pthread_mutex_lock(&l->lock);
  int err = ensure_reaper(l);
  if (err == 0) {
    if (l->last_job) l->last_job->next = j;
    else l->jobs = j;
    l->last_job = j;
    uint64_t one = 1;
    ssize_t w = write(l->wakefd, &one, sizeof one);
    (void)w;
  }
  pthread_mutex_unlock(&l->lock);
  if (err) {
    j->owned = false;
    free_job(j);
    return tcpkit_throw_errno(env, "pthread_create", err, "spawner");
  }
  if (l->live++ == 0) napi_ref_threadsafe_function(env, l->tsfn);
  return NULL;
}

/* kill(pid, signo) -> boolean: signal a live child of this launcher through its pidfd; false if already reaped. */
static napi_value Kill(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  int32_t pid = 0, signo = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int32(env, argv[0], &pid) != napi_ok || napi_get_value_int32(env, argv[1], &signo) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "kill(pid, signo)");
    return NULL;
  }
  struct launcher *l = get_launcher(env);
  bool sent = false;
  if (l) {
    pthread_mutex_lock(&l->lock);
    for (struct child *c = l->children; c; c = c->next) {
      if (c->pid == pid) {
        sent = sys_pidfd_send_signal(c->pidfd, signo) == 0;
        break;
      }
    }
    pthread_mutex_unlock(&l->lock);
  }
  napi_get_boolean(env, sent, &result);
  return result;
}

void launch_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "onExit", NAPI_AUTO_LENGTH, OnExit, NULL, &fn);
  napi_set_named_property(env, exports, "onExit", fn);
  napi_create_function(env, "launch", NAPI_AUTO_LENGTH, Launch, NULL, &fn);
  napi_set_named_property(env, exports, "launch", fn);
  napi_create_function(env, "spawn", NAPI_AUTO_LENGTH, Spawn, NULL, &fn);
  napi_set_named_property(env, exports, "spawn", fn);
  napi_create_function(env, "kill", NAPI_AUTO_LENGTH, Kill, NULL, &fn);
  napi_set_named_property(env, exports, "kill", fn);
}
