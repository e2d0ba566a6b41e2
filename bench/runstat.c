/* runstat: run a command and report its wall time and peak resident set size,
 * for bench/check-speed where /usr/bin/time (Debian package `time`) is
 * missing. check-speed compiles it on the fly into its temporary directory:
 *
 *   cc -O2 -o runstat bench/runstat.c
 *   runstat REPORT COMMAND [ARG...]
 *
 * writes "SECONDS MAXRSS_KIB\n" to the file REPORT (like /usr/bin/time -f
 * '%e %M', but with nanosecond-clock seconds) and exits with the command's
 * status: 128 + the signal if it was killed, 127 if it could not be run. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: runstat REPORT COMMAND [ARG...]\n");
    return 2;
  }
  double start = now();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "runstat: fork: %s\n", strerror(errno));
    return 127;
  }
  if (pid == 0) {
    execvp(argv[2], argv + 2);
    fprintf(stderr, "runstat: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "runstat: wait4: %s\n", strerror(errno));
      return 127;
    }
  }
  double wall = now() - start;
  FILE *f = fopen(argv[1], "w");
  if (!f) {
    fprintf(stderr, "runstat: cannot write %s: %s\n", argv[1], strerror(errno));
    return 127;
  }
  fprintf(f, "%.6f %ld\n", wall, (long)ru.ru_maxrss); /* Linux: KiB */
  fclose(f);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 127;
}
