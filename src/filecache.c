/* File primitives for the file token cache (lua/spotify/cache/file.lua):
 * bounded reads, atomic 0600 writes (temporary file + rename) and flock
 * locks, so several processes on one machine can share one file. */
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

static int push_errno(lua_State *L, const char *what, const char *path) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(errno));
  return 2;
}

/* core.file_read(path) -> contents | nil, message (missing, unreadable or
 * larger than the cache could ever write) */
static int l_file_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return push_errno(L, "cannot open", path);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_CACHE_FILE) {
    close(fd);
    lua_pushnil(L);
    lua_pushfstring(L, "%s is not a cache file", path);
    return 2;
  }
  /* Userdata scratch: freed by the GC even if a later push raises. */
  char *buf = lua_newuserdata(L, (size_t)st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  lua_pushlstring(L, buf, got);
  return 1;
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

/* core.file_write(path, contents) -> true | nil, message. Readers see the
 * old file or the new one, never a partial write. */
static int l_file_write(lua_State *L) {
  size_t len;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &len);
  const char *tmp = lua_pushfstring(L, "%s.tmp.%d.%p", path, (int)getpid(), (void *)data);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return push_errno(L, "cannot create", tmp);
  int ok = write_all(fd, data, len) == 0 && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    int saved = errno;
    unlink(tmp);
    errno = saved;
    return push_errno(L, "cannot write", path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.file_lock(path, wait) -> fd | false (held elsewhere) | nil, message.
 * Takes an exclusive
 * flock on path (created 0600); with wait false it fails at once when
 * another process holds it. The kernel drops it if the holder dies. */
static int l_file_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int wait = lua_toboolean(L, 2);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return push_errno(L, "cannot open", path);
  int r;
  while ((r = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB))) != 0 && errno == EINTR) {
  }
  if (r != 0 && errno == EWOULDBLOCK) {
    close(fd);
    lua_pushboolean(L, 0);
    return 1;
  }
  if (r != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return push_errno(L, "cannot lock", path);
  }
  lua_pushinteger(L, fd);
  return 1;
}

/* core.file_unlock(fd) */
static int l_file_unlock(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  if (fd >= 0) close(fd);
  return 0;
}

void spotify_open_filecache(lua_State *L) {
  static const luaL_Reg fns[] = {{"file_read", l_file_read},
                                 {"file_write", l_file_write},
                                 {"file_lock", l_file_lock},
                                 {"file_unlock", l_file_unlock},
                                 {NULL, NULL}};
  spotify_setfuncs(L, fns);
}
