/* File primitives for the file token cache (cache.c): bounded reads,
 * atomic 0600 writes (temporary file + rename) and flock locks, so several
 * processes on one machine can share one file. */
#include "filecache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spotify.h"

#define MAX_CACHE_FILE (1024 * 1024)

/* Never follow a link, never wait on a FIFO or device someone planted. */
#define OPEN_FLAGS (O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)

static int fail_errno(char *err, const char *what, const char *path) {
  const char *why = strerror(errno);
  if (snprintf(err, SPOTIFY_FILE_ERRLEN, "%s %s: %s", what, path, why) >= SPOTIFY_FILE_ERRLEN)
    snprintf(err, SPOTIFY_FILE_ERRLEN, "%s (a long path): %s", what, why);
  return -1;
}

/* Why st (NULL: a symbolic link) is not trusted, or NULL when it is: only
 * a regular file of this user that no one else may read or write. */
static const char *distrust(const struct stat *st) {
  if (st == NULL || S_ISLNK(st->st_mode)) return "is a symbolic link";
  if (!S_ISREG(st->st_mode)) return "is not a regular file";
  if (st->st_uid != geteuid()) return "belongs to another user";
  if (st->st_mode & 077) return "is open to group or others (not mode 0600)";
  return NULL;
}

static int untrusted(char *err, const char *path, const char *why) {
  if (snprintf(err, SPOTIFY_FILE_ERRLEN, "%s %s; not used", path, why) >= SPOTIFY_FILE_ERRLEN)
    snprintf(err, SPOTIFY_FILE_ERRLEN, "a cache file (a long path) %s; not used", why);
  return SPOTIFY_FILE_UNTRUSTED;
}

/* open(2) with OPEN_FLAGS, then the trust check: an fd, -1 (errno set) or
 * SPOTIFY_FILE_UNTRUSTED (err set). */
static int open_trusted(const char *path, int flags, char *err) {
  int fd = open(path, flags | OPEN_FLAGS, 0600);
  if (fd < 0) return errno == ELOOP ? untrusted(err, path, distrust(NULL)) : -1;
  struct stat st;
  const char *why = fstat(fd, &st) != 0 ? "cannot be examined" : distrust(&st);
  if (why) {
    close(fd);
    return untrusted(err, path, why);
  }
  return fd;
}

int spotify_file_read(const char *path, char **buf, size_t *len, char *err) {
  int fd = open_trusted(path, O_RDONLY, err);
  if (fd == SPOTIFY_FILE_UNTRUSTED) return fd;
  if (fd < 0) return fail_errno(err, "cannot open", path);
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size > MAX_CACHE_FILE) {
    close(fd);
    if (snprintf(err, SPOTIFY_FILE_ERRLEN, "%s is not a cache file", path) >= SPOTIFY_FILE_ERRLEN)
      snprintf(err, SPOTIFY_FILE_ERRLEN, "not a cache file");
    return -1;
  }
  char *b = malloc((size_t)st.st_size + 1);
  if (b == NULL) {
    close(fd);
    snprintf(err, SPOTIFY_FILE_ERRLEN, "out of memory");
    return -1;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  b[got] = '\0';
  *buf = b;
  *len = got;
  return 0;
}

static int write_all(int fd, const char *s, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    s += n;
    len -= (size_t)n;
  }
  return 0;
}

int spotify_file_write(const char *path, const char *data, size_t len, char *err) {
  static unsigned serial;
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int)getpid(), ++serial) >= (int)sizeof tmp) {
    snprintf(err, SPOTIFY_FILE_ERRLEN, "cache path too long");
    return -1;
  }
  /* rename() replaces a link rather than following it, and a file of this
   * user's that was open to others is replaced by a 0600 one; another
   * user's file is left alone (in a sticky directory it could not be
   * replaced anyway). */
  struct stat st;
  if (lstat(path, &st) == 0 && st.st_uid != geteuid()) return untrusted(err, path, distrust(&st));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | OPEN_FLAGS, 0600);
  if (fd < 0) return fail_errno(err, "cannot create", tmp);
  int ok = write_all(fd, data, len) == 0 && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    int saved = errno;
    unlink(tmp);
    errno = saved;
    return fail_errno(err, "cannot write", path);
  }
  return 0;
}

/* The expiry a holder wrote into its lock file, or 0 when none is there. */
static double lock_expiry(const char *path) {
  char buf[64];
  int fd = open(path, O_RDONLY | OPEN_FLAGS);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  return strtod(buf, NULL);
}

/* Is fd still the file at path? (A contender may have replaced an
 * expired lock file meanwhile.) */
static int still_there(int fd, const char *path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static int try_lock(const char *path, int wait, int *fd_out, char *err) {
  /* Created with O_EXCL, so a file made meanwhile is opened (and checked)
   * as an existing one; a lock file removed meanwhile is made again. */
  int fd = -1;
  for (int tries = 0; fd == -1 && tries < 3; tries++) {
    fd = open_trusted(path, O_RDWR | O_CREAT | O_EXCL, err);
    if (fd == -1 && errno == EEXIST) fd = open_trusted(path, O_RDWR, err);
    if (fd == -1 && errno != ENOENT) break;
  }
  if (fd == SPOTIFY_FILE_UNTRUSTED) return fd;
  if (fd < 0) return fail_errno(err, "cannot open", path);
  int r;
  while ((r = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB))) != 0 && errno == EINTR) {
  }
  if (r != 0 && errno == EWOULDBLOCK) {
    close(fd);
    return 0;
  }
  if (r != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return fail_errno(err, "cannot lock", path);
  }
  if (!still_there(fd, path)) { /* we locked a file that was just replaced */
    close(fd);
    return 0;
  }
  *fd_out = fd;
  return 1;
}

int spotify_file_lock(const char *path, int wait, double ttl, int *fd_out, char *err) {
  int r = try_lock(path, wait, fd_out, err);
  if (r == SPOTIFY_FILE_UNTRUSTED) return r;
  if (r == 0 && ttl > 0) {
    double expiry = lock_expiry(path);
    if (expiry > 0 && expiry < spotify_wall_time() && unlink(path) == 0)
      r = try_lock(path, wait, fd_out, err);
  }
  if (r == 1 && ttl > 0) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.17g\n", spotify_wall_time() + ttl); /* <= 25 bytes */
    if (ftruncate(*fd_out, 0) != 0 || pwrite(*fd_out, buf, (size_t)n, 0) != n) {
      /* Without its expiry the lock still works; it only cannot expire. */
    }
  }
  return r;
}

void spotify_file_unlock(int fd) {
  if (fd >= 0) close(fd);
}

/* core.file_read(path) -> contents | nil, message */
static int l_file_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char err[SPOTIFY_FILE_ERRLEN];
  void **slot = spotify_scratch(L); /* frees the buffer even if a push raises */
  size_t len;
  if (spotify_file_read(path, (char **)slot, &len, err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushlstring(L, *slot, len);
  return 1;
}

void spotify_open_filecache(lua_State *L) {
  lua_pushcfunction(L, l_file_read);
  lua_setfield(L, -2, "file_read");
}
