/* Files written whole or not at all: the bytes go to a temporary file in
 * the same folder, are flushed to the disk, and the temporary file is
 * renamed over the target, so a reader (or a crash) sees the old file or
 * the new one, never a part. */
#ifndef TRAINPIPE_ATOMIC_WRITE_H
#define TRAINPIPE_ATOMIC_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Writes DATA to PATH with MODE (an existing file's mode is kept instead).
 * False with errno set and nothing changed on failure. */
bool atomic_write(const char *path, const char *data, size_t len, mode_t mode);

#endif
