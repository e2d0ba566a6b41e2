#include "interp/atomic_write.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grammar/arena.h"

static bool write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= (size_t)n;
  }
  return true;
}

/* The folder's entry for the new name must reach the disk too. */
static void sync_folder(const char *path) {
  char *copy = xmalloc(strlen(path) + 1);
  strcpy(copy, path);
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd); /* some file systems refuse: the rename itself is done */
    close(fd);
  }
  free(copy);
}

bool atomic_write(const char *path, const char *data, size_t len, mode_t mode) {
  struct stat st;
  if (stat(path, &st) == 0) mode = st.st_mode & 07777;
  size_t size = strlen(path) + 16;
  char *tmp = xmalloc(size);
  snprintf(tmp, size, "%s.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    free(tmp);
    return false;
  }
  bool ok = fchmod(fd, mode) == 0 && write_all(fd, data, len) && fsync(fd) == 0;
  int saved = errno;
  if (close(fd) != 0 && ok) ok = false, saved = errno;
  if (ok && rename(tmp, path) != 0) ok = false, saved = errno;
  if (!ok) {
    unlink(tmp);
    errno = saved;
  } else {
    sync_folder(path);
  }
  free(tmp);
  return ok;
}
