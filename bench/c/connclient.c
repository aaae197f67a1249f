/* connclient HOST PORT NPROC NCONN NBYTES [requests|echo]: the short-connection load of `npm run bench`'s
 * CPU-per-connection table, in C so the client costs as little CPU as it can on cores it shares with the server.
 * NPROC processes, each making NCONN connections one after another. requests (default; UNP ch. 30's client.c):
 * send "NBYTES\n", read exactly NBYTES, close. echo: send NBYTES, read them back, check them, close.
 * Prints one line: "conns seconds conns_per_second errors". Exit 0 when no connection failed.
 * Compiled by bench/run.js at run time (cc -O2). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static double now(void) {
  struct timeval t;
  gettimeofday(&t, 0);
  return t.tv_sec + t.tv_usec / 1e6;
}

/* One connection; 0 when it went as the protocol says. */
static int one(const struct sockaddr_in *a, int echo, const char *out, int outlen, char *in, int want) {
  int s = socket(AF_INET, SOCK_STREAM, 0), on = 1;
  if (s < 0) return 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  if (connect(s, (const void *)a, sizeof *a) < 0) { close(s); return 1; }
  int w = 0;
  while (w < outlen) { int n = write(s, out + w, outlen - w); if (n <= 0) break; w += n; }
  int r = 0;
  while (r < want) { int n = read(s, in + r, want - r); if (n <= 0) break; r += n; }
  close(s);
  return w != outlen || r != want || (echo && memcmp(out, in, want) != 0);
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: connclient HOST PORT NPROC NCONN NBYTES [requests|echo]\n"); return 100; }
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) { fprintf(stderr, "connclient: bad IPv4 address %s\n", argv[1]); return 100; }
  int np = atoi(argv[3]), nc = atoi(argv[4]), nb = atoi(argv[5]);
  int echo = argc > 6 && strcmp(argv[6], "echo") == 0;
  if (np < 1 || nc < 1 || nb < 1) { fprintf(stderr, "connclient: NPROC, NCONN, NBYTES must be positive\n"); return 100; }
  char *in = malloc(nb), *out;
  int outlen;
  if (echo) { out = malloc(nb); memset(out, 'x', nb); outlen = nb; }
  else { out = malloc(32); outlen = snprintf(out, 32, "%d\n", nb); }
  int pfd[2];
  if (pipe(pfd) < 0) return 111;
  double t0 = now();
  for (int p = 0; p < np; p++) {
    if (fork() == 0) {
      int errs = 0;
      for (int i = 0; i < nc; i++) errs += one(&a, echo, out, outlen, in, nb);
      if (write(pfd[1], &errs, sizeof errs) != sizeof errs) _exit(1);
      _exit(0);
    }
  }
  int total = 0;
  for (int p = 0; p < np; p++) { int e = 0; if (read(pfd[0], &e, sizeof e) == sizeof e) total += e; else total += nc; wait(0); }
  double dt = now() - t0;
  printf("%d %.3f %.1f %d\n", np * nc, dt, np * nc / dt, total);
  return total ? 1 : 0;
}
