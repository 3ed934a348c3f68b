/* File primitives for the file cache: bounded reads, atomic 0600 writes
 * (temporary file + fsync + rename) and flock locks. No Lua. */
#ifndef SPOTIFY_FILECACHE_H
#define SPOTIFY_FILECACHE_H

#include <stddef.h>

#define SPOTIFY_FILE_ERRLEN 256
/* A file (or lock file) that is a symbolic link, not a regular file, not
 * owned by this user or open to group or others: never read, written
 * through or locked, as another user could have planted it. */
#define SPOTIFY_FILE_UNTRUSTED (-2)

/* 0 and a malloc'd buffer (NUL-terminated), or -1 or
 * SPOTIFY_FILE_UNTRUSTED with a message. */
int spotify_file_read(const char *path, char **buf, size_t *len, char *err);
/* Readers see the old file or the new one, never a partial write. 0, -1
 * or SPOTIFY_FILE_UNTRUSTED (an untrusted file is there: left alone). */
int spotify_file_write(const char *path, const char *data, size_t len, char *err);
/* 1 and *fd when taken, 0 when another holds it (only without wait), -1 or
 * SPOTIFY_FILE_UNTRUSTED on failure. The kernel drops the lock if the
 * holder dies; with ttl > 0 a holder that hangs loses it after ttl seconds
 * too, as with Redis's PX. */
int spotify_file_lock(const char *path, int wait, double ttl, int *fd, char *err);
void spotify_file_unlock(int fd);

#endif
