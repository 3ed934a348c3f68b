/* The native caches as Lua objects (get, set, lock, unlock, incr that
 * raise on failure, as the cache contract says), and core.digest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_native.h"
#include "digest.h"
#include "spotify.h"

/* A request from Lua arguments (self, key, ...) for op. */
static spotify_cache_req request_from_args(lua_State *L, spotify_cache_op op) {
  spotify_cache_req rq;
  memset(&rq, 0, sizeof rq);
  rq.op = op;
  rq.key = luaL_checkstring(L, 2);
  if (op == SPOTIFY_CACHE_SET) {
    rq.value = luaL_checklstring(L, 3, &rq.len);
    rq.ttl = luaL_optnumber(L, 4, 0);
  } else if (op == SPOTIFY_CACHE_LOCK) {
    rq.ttl = luaL_optnumber(L, 3, 10);
  } else if (op == SPOTIFY_CACHE_INCR) {
    rq.delta = luaL_optnumber(L, 3, 1);
    rq.ttl = luaL_optnumber(L, 4, 0);
  }
  return rq;
}

/* Run op on the native cache at index 1 and push its answer; raises when
 * it failed, as the cache contract says. */
static int native_method(lua_State *L, spotify_cache_op op) {
  spotify_cache c;
  memset(&c, 0, sizeof c);
  c.self = spotify_testudata(L, 1, SPOTIFY_MEMORY_MT);
  c.vt = &spotify_memory_vt;
  if (c.self == NULL) {
    c.self = luaL_checkudata(L, 1, SPOTIFY_FILE_MT);
    c.vt = &spotify_file_vt;
  }
  spotify_cache_req rq = request_from_args(L, op);
  spotify_cache_result r;
  memset(&r, 0, sizeof r);
  spotify_cache_run(L, &c, &rq, &r);
  /* Move the answer into Lua before anything can raise. */
  int n = 1;
  switch (r.answer) {
    case SPOTIFY_ANSWER_STRING:
    case SPOTIFY_ANSWER_FAILED:
      if (r.str)
        lua_pushlstring(L, r.str, r.len);
      else
        lua_pushliteral(L, "cache: out of memory");
      break;
    case SPOTIFY_ANSWER_TRUE:
    case SPOTIFY_ANSWER_FALSE:
      lua_pushboolean(L, r.answer == SPOTIFY_ANSWER_TRUE);
      break;
    case SPOTIFY_ANSWER_NUMBER: /* a counter: an integer where Lua has them */
      if (r.number == floor(r.number) && fabs(r.number) < 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)r.number);
      else
        lua_pushnumber(L, r.number);
      break;
    default:
      n = 0;
  }
  if (r.note && r.answer != SPOTIFY_ANSWER_FAILED) { /* nil or the answer, then the note */
    if (n == 0) lua_pushnil(L);
    lua_pushstring(L, r.note);
    n = 2;
  }
  spotify_cache_answer a = r.answer;
  spotify_cache_result_clear(&r);
  if (a == SPOTIFY_ANSWER_FAILED) return lua_error(L);
  return n;
}

static int l_get(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_GET);
}
static int l_set(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_SET);
}
static int l_lock(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_LOCK);
}
static int l_unlock(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_UNLOCK);
}
static int l_incr(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_INCR);
}

static void new_cache_mt(lua_State *L, const char *name, lua_CFunction gc) {
  static const luaL_Reg methods[] = {{"get", l_get},       {"set", l_set},   {"lock", l_lock},
                                     {"unlock", l_unlock}, {"incr", l_incr}, {NULL, NULL}};
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_newtable(L);
  spotify_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* core.digest(s) -> SHA-256 of s, hex: how the cache keys name credentials. */
static int l_digest(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[SPOTIFY_DIGEST_HEX];
  spotify_sha256 d;
  spotify_sha256_init(&d);
  spotify_sha256_update(&d, s, len);
  spotify_sha256_hex(&d, hex);
  lua_pushstring(L, hex);
  return 1;
}

void spotify_open_cache(lua_State *L) {
  lua_pushcfunction(L, l_digest);
  lua_setfield(L, -2, "digest");
  new_cache_mt(L, SPOTIFY_MEMORY_MT, spotify_memory_cache_gc);
  new_cache_mt(L, SPOTIFY_FILE_MT, spotify_file_cache_gc);
  lua_pushcfunction(L, spotify_memory_cache_new);
  lua_setfield(L, -2, "memory_cache");
  lua_pushcfunction(L, spotify_file_cache_new);
  lua_setfield(L, -2, "file_cache");
}
