/* File primitives for the file cache (filestore.c): bounded reads, atomic
 * 0600 writes (temporary file + rename), flock locks and trusted
 * directories, so several processes on one machine can share one cache.
 * Files are named relative to a directory fd, so a directory checked once
 * is the one used, whatever happens to its path meanwhile. */
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

/* Never follow a link, never wait on a FIFO or device someone planted. */
#define OPEN_FLAGS (O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
/* A lock file removed or replaced between our open and our flock is
 * opened again, this many times at most. */
#define LOCK_TRIES 8

static int fail_errno(char *err, const char *what, const char *path) {
  const char *why = strerror(errno);
  if (snprintf(err, SPOTIFY_FILE_ERRLEN, "%s %s: %s", what, path, why) >= SPOTIFY_FILE_ERRLEN)
    snprintf(err, SPOTIFY_FILE_ERRLEN, "%s (a long path): %s", what, why);
  return -1;
}

/* Why st (NULL: a symbolic link) is not trusted, or NULL when it is: only
 * a regular file (or, with dir, a directory) of this user that no one
 * else may read or write. */
static const char *distrust(const struct stat *st, int dir) {
  if (st == NULL || S_ISLNK(st->st_mode)) return "is a symbolic link";
  if (st->st_uid != geteuid()) return "belongs to another user";
  if (dir && !S_ISDIR(st->st_mode)) return "is not a directory";
  if (!dir && !S_ISREG(st->st_mode)) return "is not a regular file";
  if (st->st_mode & 077) return "is open to group or others (not mode 0600)";
  return NULL;
}

static int untrusted(char *err, const char *path, const char *why) {
  if (snprintf(err, SPOTIFY_FILE_ERRLEN, "%s %s; not used", path, why) >= SPOTIFY_FILE_ERRLEN)
    snprintf(err, SPOTIFY_FILE_ERRLEN, "a cache file (a long path) %s; not used", why);
  return SPOTIFY_FILE_UNTRUSTED;
}

/* openat(2) with OPEN_FLAGS, then the trust check: an fd, -1 (errno set)
 * or SPOTIFY_FILE_UNTRUSTED (err set). */
static int open_trusted(int dir, const char *name, int flags, char *err) {
  int fd = openat(dir, name, flags | OPEN_FLAGS, 0600);
  if (fd < 0) return errno == ELOOP ? untrusted(err, name, distrust(NULL, 0)) : -1;
  struct stat st;
  const char *why = fstat(fd, &st) != 0 ? "cannot be examined" : distrust(&st, 0);
  if (why) {
    close(fd);
    return untrusted(err, name, why);
  }
  return fd;
}

int spotify_file_dir(const char *path, int create, char *err) {
  if (create && mkdir(path, 0700) != 0 && errno != EEXIST)
    return fail_errno(err, "cannot create", path);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0) {
    int saved = errno;
    if (saved == ELOOP) return untrusted(err, path, distrust(NULL, 1));
    if (saved == ENOTDIR && lstat(path, &st) == 0) return untrusted(err, path, distrust(&st, 1));
    errno = saved;
    return fail_errno(err, "cannot open", path);
  }
  const char *why = fstat(fd, &st) != 0 ? "cannot be examined" : distrust(&st, 1);
  if (why) {
    close(fd);
    return untrusted(err, path, why);
  }
  return fd;
}

int spotify_file_open(int dir, const char *name, char *err) {
  int fd = open_trusted(dir, name, O_RDONLY, err);
  if (fd == -1) fail_errno(err, "cannot open", name);
  return fd;
}

int spotify_file_read(int dir, const char *name, char **buf, size_t *len, char *err) {
  int fd = spotify_file_open(dir, name, err);
  if (fd < 0) return fd;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size > SPOTIFY_FILE_MAX) {
    close(fd);
    if (snprintf(err, SPOTIFY_FILE_ERRLEN, "%s is not a cache file", name) >= SPOTIFY_FILE_ERRLEN)
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

int spotify_file_write(int dir, const char *name, const char *head, size_t hlen, const char *data,
                       size_t len, int sync, char *err) {
  static unsigned serial;
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", name, (int)getpid(), ++serial) >= (int)sizeof tmp) {
    snprintf(err, SPOTIFY_FILE_ERRLEN, "cache path too long");
    return -1;
  }
  /* rename() replaces a link rather than following it, and a file of this
   * user's that was open to others is replaced by a 0600 one; another
   * user's file is left alone (in a sticky directory it could not be
   * replaced anyway). */
  struct stat st;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid != geteuid())
    return untrusted(err, name, distrust(&st, 0));
  int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | OPEN_FLAGS, 0600);
  if (fd < 0) return fail_errno(err, "cannot create", tmp);
  int ok =
      write_all(fd, head, hlen) == 0 && write_all(fd, data, len) == 0 && (!sync || fsync(fd) == 0);
  ok = close(fd) == 0 && ok;
  if (!ok || renameat(dir, tmp, dir, name) != 0) {
    int saved = errno;
    unlinkat(dir, tmp, 0);
    errno = saved;
    return fail_errno(err, "cannot write", name);
  }
  return 0;
}

/* Is fd still the file at name? (A holder may have removed it, or a
 * contender replaced an expired lock file, meanwhile.) */
static int still_there(int dir, const char *name, int fd) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && fstatat(dir, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
         a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

int spotify_file_remove(int dir, const char *name, int fd) {
  /* Between the check and the unlink only a writer that replaces the file
   * can come in; what it loses is one entry, a miss later. */
  return still_there(dir, name, fd) && unlinkat(dir, name, 0) == 0;
}

/* Remove the lock file at name when the expiry its holder wrote into it
 * has passed: 1 when removed. The file whose expiry was read is the one
 * removed, never one a contender made meanwhile. */
static int remove_expired(int dir, const char *name) {
  char buf[64];
  int fd = openat(dir, name, O_RDONLY | OPEN_FLAGS);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  double expiry = 0;
  if (n > 0) {
    buf[n] = '\0';
    expiry = strtod(buf, NULL);
  }
  int removed = expiry > 0 && expiry < spotify_wall_time() && spotify_file_remove(dir, name, fd);
  close(fd);
  return removed;
}

/* The lock file at name, made when missing (O_EXCL, so a file made
 * meanwhile is opened and checked as an existing one; one removed
 * meanwhile is made again). */
static int open_lock_file(int dir, const char *name, char *err) {
  int fd = -1;
  for (int tries = 0; fd == -1 && tries < 3; tries++) {
    fd = open_trusted(dir, name, O_RDWR | O_CREAT | O_EXCL, err);
    if (fd == -1 && errno == EEXIST) fd = open_trusted(dir, name, O_RDWR, err);
    if (fd == -1 && errno != ENOENT) break;
  }
  return fd;
}

static int try_lock(int dir, const char *name, int wait, int *fd_out, char *err) {
  for (int tries = 0; tries < LOCK_TRIES; tries++) {
    int fd = open_lock_file(dir, name, err);
    if (fd == SPOTIFY_FILE_UNTRUSTED) return fd;
    if (fd < 0) return fail_errno(err, "cannot open", name);
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
      return fail_errno(err, "cannot lock", name);
    }
    if (still_there(dir, name, fd)) {
      *fd_out = fd;
      return 1;
    }
    close(fd); /* we locked a file its holder removed, or one replaced: the new one */
  }
  return 0;
}

int spotify_file_lock(int dir, const char *name, int wait, double ttl, int *fd_out, char *err) {
  int r = try_lock(dir, name, wait, fd_out, err);
  if (r == 0 && ttl > 0 && remove_expired(dir, name)) r = try_lock(dir, name, wait, fd_out, err);
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

int spotify_file_open_lock(int dir, const char *name, char *err) {
  int fd = open_lock_file(dir, name, err);
  if (fd == -1) fail_errno(err, "cannot open", name);
  return fd;
}

/* ---- locks by key, in one file ---- */

/* A key's lock is an open file description lock (F_OFD_SETLK: held by one
 * cache object, not by the whole process, dropped by the kernel when its
 * holder dies) on one byte past the end of the lock file, at an offset
 * from the key's hash and a generation; no file per key is made or
 * removed. A record in the file, in a slot from the hash, holds the
 * generation and when the holder's ttl ends: a contender that finds the
 * lock held past its expiry takes the next generation, as the holder of a
 * Redis lock loses it after PX. */
#define KEY_SLOTS 4096         /* records: KEY_SLOTS * 32 bytes at the file's start */
#define KEY_GENERATIONS 16     /* lock bytes per key */
#define KEY_BASE (1LL << 40)   /* where the lock bytes start */
#define KEY_SPACE (1ULL << 36) /* hashes told apart by their lock bytes */
#define RECORD_MAGIC 0x53706f746c6f636bULL

typedef struct key_record {
  unsigned long long hash, generation;
  double expires;
  unsigned long long check; /* a torn or foreign record is no record */
} key_record;

static unsigned long long record_check(const key_record *r) {
  unsigned long long e;
  memcpy(&e, &r->expires, sizeof e);
  return r->hash ^ (r->generation * 0x9E3779B97F4A7C15ULL) ^ e ^ RECORD_MAGIC;
}

static off_t record_at(unsigned long long hash) {
  return (off_t)(hash % KEY_SLOTS) * (off_t)sizeof(key_record);
}

/* The record of hash, or 0 when its slot holds none (or another key's). */
static int read_record(int fd, unsigned long long hash, key_record *r) {
  return pread(fd, r, sizeof *r, record_at(hash)) == (ssize_t)sizeof *r && r->hash == hash &&
         r->check == record_check(r) && r->generation < KEY_GENERATIONS;
}

static void write_record(int fd, unsigned long long hash, unsigned long long generation,
                         double expires) {
  key_record r = {hash, generation, expires, 0};
  r.check = record_check(&r);
  if (pwrite(fd, &r, sizeof r, record_at(hash)) != (ssize_t)sizeof r) {
    /* Without its record the lock still works; it only cannot expire. */
  }
}

/* Take (F_WRLCK) or let go of (F_UNLCK) len bytes at, waiting for them
 * with wait: 1, 0 when another holds them, -1 on failure. */
static int lock_range(int fd, short type, long long at, long long len, int wait) {
  struct flock l;
  memset(&l, 0, sizeof l);
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = (off_t)at;
  l.l_len = (off_t)len;
  int r;
  while ((r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &l)) != 0 && errno == EINTR) {
  }
  if (r == 0) return 1;
  return errno == EAGAIN || errno == EACCES ? 0 : -1;
}

static long long byte_of(unsigned long long hash, unsigned long long generation) {
  return KEY_BASE + (long long)((hash % KEY_SPACE) * KEY_GENERATIONS + generation);
}

/* Under the record's own lock (held for a few calls), so a contender
 * always reads the record of the holder it finds: never the expiry of an
 * earlier holder, which would let it take a lock that is not over. */
static int take_key(int fd, unsigned long long hash, double ttl, long long *held) {
  key_record r;
  int known = read_record(fd, hash, &r);
  unsigned long long generation = known ? r.generation : 0;
  double now = spotify_wall_time();
  int took = lock_range(fd, F_WRLCK, byte_of(hash, generation), 1, 0);
  if (took == 0 && known && r.expires < now) { /* the holder's ttl is over: the next generation */
    generation = (generation + 1) % KEY_GENERATIONS;
    took = lock_range(fd, F_WRLCK, byte_of(hash, generation), 1, 0);
  }
  if (took != 1) return took;
  write_record(fd, hash, generation, ttl > 0 ? now + ttl : 1e300);
  *held = byte_of(hash, generation);
  return 1;
}

int spotify_file_key_lock(int fd, unsigned long long hash, double ttl, long long *held, char *err) {
  int took = lock_range(fd, F_WRLCK, record_at(hash), sizeof(key_record), 1);
  if (took == 1) {
    took = take_key(fd, hash, ttl, held);
    int saved = errno;
    lock_range(fd, F_UNLCK, record_at(hash), sizeof(key_record), 0);
    errno = saved;
  }
  if (took < 0) {
    snprintf(err, SPOTIFY_FILE_ERRLEN, "cannot lock: %s", strerror(errno));
    return -1;
  }
  return took;
}

void spotify_file_key_unlock(int fd, long long held) {
  lock_range(fd, F_UNLCK, held, 1, 0);
}

/* core.file_read(path) -> contents | nil, message */
static int l_file_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char err[SPOTIFY_FILE_ERRLEN];
  void **slot = spotify_scratch(L); /* frees the buffer even if a push raises */
  size_t len;
  if (spotify_file_read(AT_FDCWD, path, (char **)slot, &len, err) != 0) {
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
