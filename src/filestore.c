/* The native file cache: one JSON object {key: {value, expires} |
 * {count, expires}} in a file, read and written whole under its flock
 * (the file primitives: filecache.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_native.h"
#include "filecache.h"
#include "spotify.h"

typedef struct held_lock {
  char *key;
  int fd;
} held_lock;

typedef struct file_cache {
  char *path;
  held_lock *held;
  size_t nheld;
  int untrusted;                      /* an untrusted file or lock file was met */
  int told;                           /* ... and said so (once) */
  char why[SPOTIFY_FILE_ERRLEN + 16]; /* what was met */
} file_cache;

/* An untrusted file is a miss, never an error: remembered, to be said once. */
static void met_untrusted(file_cache *f, const char *why) {
  if (f->untrusted) return;
  f->untrusted = 1;
  snprintf(f->why, sizeof f->why, "file cache: %s", why);
}

/* Hand the note to the first answer after an untrusted file was met. */
static void tell(file_cache *f, spotify_cache_result *out) {
  if (!f->untrusted || f->told) return;
  out->note = strdup(f->why);
  f->told = out->note != NULL;
}

/* The file's object at the top of the stack ({} when missing, corrupt or
 * untrusted). */
static void push_file_object(lua_State *L, file_cache *f) {
  char err[SPOTIFY_FILE_ERRLEN];
  void **slot = spotify_scratch(L);
  size_t len;
  int top = lua_gettop(L);
  int r = spotify_file_read(f->path, (char **)slot, &len, err);
  if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  if (r == 0 && spotify_json_decode(L, *slot, len) == 1 && lua_istable(L, -1)) {
    lua_replace(L, top);
    return;
  }
  lua_settop(L, top - 1);
  lua_newtable(L);
}

/* A field of the entry table at the top of the stack. */
static int entry_field(lua_State *L, const char *name, int type) {
  lua_pushstring(L, name);
  lua_rawget(L, -2);
  if (lua_type(L, -1) == type) return 1;
  lua_pop(L, 1);
  return 0;
}

/* file_merge(cache, key, value|nil, ttl, delta) -> encoded file, count:
 * the file's object without what has expired, plus the new entry. Runs
 * under pcall while the caller holds the file's flock. */
static int file_merge(lua_State *L) {
  file_cache *f = lua_touserdata(L, 1);
  double now = spotify_wall_time(), ttl = lua_tonumber(L, 4);
  push_file_object(L, f);
  int t = lua_gettop(L);
  double count = lua_tonumber(L, 5);
  lua_pushnil(L);
  while (lua_next(L, t)) { /* drop what has expired, and anything malformed */
    int keep = lua_istable(L, -1) && entry_field(L, "expires", LUA_TNUMBER);
    if (keep) {
      keep = lua_tonumber(L, -1) > now;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!keep) {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, t);
    }
  }
  if (lua_isnil(L, 3)) { /* incr: a live counter keeps its expiry */
    lua_pushvalue(L, 2);
    lua_rawget(L, t);
    double expires = spotify_cache_expiry(now, ttl);
    if (lua_istable(L, -1) && entry_field(L, "count", LUA_TNUMBER)) {
      count += lua_tonumber(L, -1);
      lua_pop(L, 1);
      if (entry_field(L, "expires", LUA_TNUMBER)) expires = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    lua_settop(L, t);
    lua_pushvalue(L, 2);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, count);
    lua_setfield(L, -2, "count");
    lua_pushnumber(L, isinf(expires) ? 1e300 : expires);
    lua_setfield(L, -2, "expires");
  } else {
    lua_pushvalue(L, 2);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "value");
    lua_pushnumber(L, ttl > 0 ? now + ttl : 1e300);
    lua_setfield(L, -2, "expires");
  }
  lua_rawset(L, t);
  spotify_json_push_encoder(L);
  lua_pushvalue(L, t);
  lua_call(L, 1, 1);
  lua_pushnumber(L, count);
  return 2;
}

/* set and incr: read, merge and write the file under its flock. */
static void file_update(lua_State *L, file_cache *f, const spotify_cache_req *rq,
                        spotify_cache_result *out) {
  char err[SPOTIFY_FILE_ERRLEN];
  int top = lua_gettop(L);
  const char *lock_path = lua_pushfstring(L, "%s.lock", f->path);
  lua_pushcfunction(L, file_merge);
  lua_pushlightuserdata(L, f);
  lua_pushstring(L, rq->key);
  if (rq->op == SPOTIFY_CACHE_SET)
    lua_pushlstring(L, rq->value, rq->len);
  else
    lua_pushnil(L);
  lua_pushnumber(L, rq->ttl);
  lua_pushnumber(L, rq->delta);
  /* Everything that can raise before the lock is pushed: the fd is never
   * held across a raise. */
  int fd, r = spotify_file_lock(lock_path, 1, 0, &fd, err);
  if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  if (r != 1) {
    lua_settop(L, top);
    if (r == SPOTIFY_FILE_UNTRUSTED)
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0); /* not stored: a miss later */
    else
      spotify_cache_answer_failed(out, err);
    return;
  }
  if (lua_pcall(L, 5, 2, 0) != 0) {
    spotify_file_unlock(fd);
    spotify_cache_answer_failed(
        out, lua_isstring(L, -1) ? lua_tostring(L, -1) : "file cache: cannot encode");
    lua_settop(L, top);
    return;
  }
  size_t len;
  const char *text = lua_tolstring(L, -2, &len);
  r = spotify_file_write(f->path, text, len, err);
  spotify_file_unlock(fd);
  if (r == SPOTIFY_FILE_UNTRUSTED) {
    met_untrusted(f, err);
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  } else if (r != 0)
    spotify_cache_answer_failed(out, err);
  else if (rq->op == SPOTIFY_CACHE_INCR)
    spotify_cache_answer_number(out, lua_tonumber(L, -1));
  else
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  lua_settop(L, top);
}

static void file_get(lua_State *L, file_cache *f, const char *key, spotify_cache_result *out) {
  int top = lua_gettop(L);
  push_file_object(L, f);
  lua_getfield(L, -1, key);
  spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  if (lua_istable(L, -1) && entry_field(L, "expires", LUA_TNUMBER) &&
      lua_tonumber(L, -1) > spotify_wall_time()) {
    lua_pop(L, 1);
    size_t len;
    if (entry_field(L, "value", LUA_TSTRING)) {
      const char *s = lua_tolstring(L, -1, &len);
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_STRING, s, len);
    }
  }
  lua_settop(L, top);
}

/* path .. ".renew-" .. the key percent-encoded, malloc'd. */
static char *renew_path(const char *path, const char *key) {
  size_t n = strlen(path), k = strlen(key);
  char *p = malloc(n + sizeof ".renew-" + 3 * k);
  if (p == NULL) return NULL;
  char *w = p + sprintf(p, "%s.renew-", path);
  for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
    int plain = (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                *s == '_' || *s == '-';
    w += plain ? sprintf(w, "%c", *s) : sprintf(w, "%%%02X", *s);
  }
  return p;
}

static held_lock *find_held(file_cache *f, const char *key) {
  for (size_t i = 0; i < f->nheld; i++)
    if (strcmp(f->held[i].key, key) == 0) return &f->held[i];
  return NULL;
}

static void file_lock(file_cache *f, const char *key, double ttl, spotify_cache_result *out) {
  char err[SPOTIFY_FILE_ERRLEN];
  if (find_held(f, key)) { /* held by this very cache: another client of it renews */
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_FALSE, NULL, 0);
    return;
  }
  char *path = renew_path(f->path, key), *k = strdup(key);
  held_lock *held = realloc(f->held, (f->nheld + 1) * sizeof *held);
  if (held) f->held = held;
  if (path == NULL || k == NULL || held == NULL) {
    free(path);
    free(k);
    spotify_cache_answer_failed(out, "file cache: out of memory");
    return;
  }
  int fd, r = spotify_file_lock(path, 0, ttl, &fd, err);
  free(path);
  if (r != 1) {
    free(k);
    if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
    if (r == 0)
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_FALSE, NULL, 0);
    else if (r == SPOTIFY_FILE_UNTRUSTED) /* no single flight: fetch without waiting */
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
    else
      spotify_cache_answer_failed(out, err);
    return;
  }
  f->held[f->nheld].key = k;
  f->held[f->nheld].fd = fd;
  f->nheld++;
  spotify_cache_answer_as(out, SPOTIFY_ANSWER_TRUE, NULL, 0);
}

static void file_unlock(file_cache *f, const char *key) {
  held_lock *h = find_held(f, key);
  if (h == NULL) return;
  spotify_file_unlock(h->fd);
  free(h->key);
  *h = f->held[--f->nheld];
}

static void file_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                     spotify_cache_result *out) {
  file_cache *f = c->self;
  switch (rq->op) {
    case SPOTIFY_CACHE_GET:
      file_get(L, f, rq->key, out);
      return;
    case SPOTIFY_CACHE_SET:
    case SPOTIFY_CACHE_INCR:
      file_update(L, f, rq, out);
      return;
    case SPOTIFY_CACHE_LOCK:
      file_lock(f, rq->key, rq->ttl, out);
      return;
    case SPOTIFY_CACHE_UNLOCK:
      file_unlock(f, rq->key);
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
      return;
    default:
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_UNSUPPORTED, NULL, 0);
  }
}

static void file_run_and_tell(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                              spotify_cache_result *out) {
  file_run(L, c, rq, out);
  tell(c->self, out);
}

const spotify_cache_vtable spotify_file_vt = {"file", file_run_and_tell};

int spotify_file_cache_gc(lua_State *L) {
  file_cache *f = luaL_checkudata(L, 1, SPOTIFY_FILE_MT);
  for (size_t i = 0; i < f->nheld; i++) {
    spotify_file_unlock(f->held[i].fd);
    free(f->held[i].key);
  }
  free(f->held);
  free(f->path);
  memset(f, 0, sizeof *f);
  return 0;
}

/* core.file_cache(path) -> cache */
int spotify_file_cache_new(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  file_cache *f = lua_newuserdata(L, sizeof *f);
  memset(f, 0, sizeof *f);
  luaL_getmetatable(L, SPOTIFY_FILE_MT);
  lua_setmetatable(L, -2);
  f->path = strdup(path);
  if (f->path == NULL) return luaL_error(L, "spotify.cache.file: out of memory");
  return 1;
}
