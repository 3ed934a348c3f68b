/* File primitives for the file cache: bounded reads, atomic 0600 writes
 * (temporary file + rename), flock locks and trusted directories. Every
 * file is named relative to a directory fd (AT_FDCWD: a path as given).
 * No Lua. */
#ifndef SPOTIFY_FILECACHE_H
#define SPOTIFY_FILECACHE_H

#include <stddef.h>

#define SPOTIFY_FILE_ERRLEN 256
/* The largest file read: a file over it is not a cache file. */
#define SPOTIFY_FILE_MAX (16 * 1024 * 1024)
/* A file, directory or lock file that is a symbolic link, not of its kind,
 * not owned by this user or open to group or others: never read, written
 * through or locked, as another user could have planted it. */
#define SPOTIFY_FILE_UNTRUSTED (-2)

/* An fd of the directory at path (mode 0700, made when missing and create
 * is set), or -1 (errno ENOENT when it is missing) or SPOTIFY_FILE_UNTRUSTED
 * with a message. */
int spotify_file_dir(const char *path, int create, char *err);
/* An fd open for reading on a trusted regular file, or -1 (errno set) or
 * SPOTIFY_FILE_UNTRUSTED with a message. */
int spotify_file_open(int dir, const char *name, char *err);
/* 0 and a malloc'd buffer (NUL-terminated), or -1 or
 * SPOTIFY_FILE_UNTRUSTED with a message. */
int spotify_file_read(int dir, const char *name, char **buf, size_t *len, char *err);
/* head then data as the file's content. Readers see the old file or the
 * new one, never a partial write; with sync it is on disk before it
 * replaces the old one. 0, -1 or SPOTIFY_FILE_UNTRUSTED (an untrusted file
 * is there: left alone). */
int spotify_file_write(int dir, const char *name, const char *head, size_t hlen, const char *data,
                       size_t len, int sync, char *err);
/* Unlink name if it is still the file fd is open on (1), else leave it. */
int spotify_file_remove(int dir, const char *name, int fd);
/* 1 and *fd when taken, 0 when another holds it (only without wait), -1 or
 * SPOTIFY_FILE_UNTRUSTED on failure. The kernel drops the lock if the
 * holder dies; with ttl > 0 a holder that hangs loses it after ttl seconds
 * too, as with Redis's PX. */
int spotify_file_lock(int dir, const char *name, int wait, double ttl, int *fd, char *err);
/* Let go of a lock; the lock file stays (for a lock of a fixed name). */
void spotify_file_unlock(int fd);
/* The lock file at name, made when missing, open for reading and writing:
 * an fd, -1 or SPOTIFY_FILE_UNTRUSTED with a message. */
int spotify_file_open_lock(int dir, const char *name, char *err);
/* Locks by key in one lock file (fd: spotify_file_open_lock's; each open
 * of it is a holder of its own). 1 and *held (to let go of) when the lock
 * of hash was taken, 0 when another holds it, -1 on failure. With ttl > 0
 * a holder that hangs loses it after ttl seconds; the kernel drops it if
 * the holder dies. */
int spotify_file_key_lock(int fd, unsigned long long hash, double ttl, long long *held, char *err);
void spotify_file_key_unlock(int fd, long long held);

#endif
