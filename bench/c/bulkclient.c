/* bulkclient HOST PORT BYTES: one connection through an echo server: send BYTES (a pattern that
 * changes with the offset) while reading the echo back, check every byte in order, FIN after the
 * last one sent, and read to the server's FIN. In C, with one reused buffer each way, so that on
 * cores shared with the server the client costs as little as it can and the table measures the server.
 * Prints one line: "bytes seconds MiB_per_second errors" (errors: 1 when the echo differed, was
 * short or the connection failed). Compiled by bench/run.js at run time (cc -O2). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CHUNK (1 << 20)
#define PERIOD 251 /* a prime: no chunk size lines up with the pattern */

static double now(void) {
  struct timeval t;
  gettimeofday(&t, 0);
  return t.tv_sec + t.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: bulkclient HOST PORT BYTES\n"); return 100; }
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) { fprintf(stderr, "bulkclient: bad IPv4 address %s\n", argv[1]); return 100; }
  long long total = atoll(argv[3]);
  if (total < 1) { fprintf(stderr, "bulkclient: BYTES must be positive\n"); return 100; }
  /* The byte at offset i is i % PERIOD: pattern + (offset % PERIOD) is the data at offset for CHUNK bytes. */
  unsigned char *pattern = malloc(CHUNK + PERIOD), *in = malloc(CHUNK);
  for (int i = 0; i < CHUNK + PERIOD; i++) pattern[i] = (unsigned char)(i % PERIOD);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (void *)&a, sizeof a) < 0) { perror("bulkclient: connect"); printf("0 0 0 1\n"); return 1; }
  fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
  long long sent = 0, got = 0;
  int bad = 0, finSent = 0;
  double t0 = now();
  while (got < total && !bad) {
    struct pollfd p = { s, POLLIN | (sent < total ? POLLOUT : 0), 0 };
    if (poll(&p, 1, 60000) <= 0) { fprintf(stderr, "bulkclient: no progress for 60 s\n"); bad = 1; break; }
    if (p.revents & POLLOUT && sent < total) {
      long long left = total - sent;
      ssize_t n = write(s, pattern + sent % PERIOD, left < CHUNK ? left : CHUNK);
      if (n > 0) sent += n;
      else if (n < 0 && errno != EAGAIN && errno != EINTR) { perror("bulkclient: write"); bad = 1; }
      if (sent == total && !finSent) { shutdown(s, SHUT_WR); finSent = 1; }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(s, in, CHUNK);
      if (n > 0) {
        if (got + n > total || memcmp(in, pattern + got % PERIOD, n) != 0) { fprintf(stderr, "bulkclient: echo differs near byte %lld\n", got); bad = 1; }
        got += n;
      } else if (n == 0) { fprintf(stderr, "bulkclient: FIN after %lld of %lld bytes\n", got, total); bad = 1; }
      else if (errno != EAGAIN && errno != EINTR) { perror("bulkclient: read"); bad = 1; }
    }
  }
  /* Everything back: the server's FIN should follow (nothing more may arrive). */
  if (!bad) {
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = { 10, 0 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (read(s, in, 1) != 0) { fprintf(stderr, "bulkclient: no FIN after the echo\n"); bad = 1; }
  }
  double dt = now() - t0;
  close(s);
  printf("%lld %.3f %.1f %d\n", got, dt, dt > 0 ? got / dt / 1048576.0 : 0, bad);
  return bad;
}
