/* Token caches behind one vtable: the answers every cache gives, and the
 * adapter that reaches any object that is not native (shdict, redis, a
 * custom table) through its Lua methods. */
#include "cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_native.h"
#include "spotify.h"

const char *const spotify_cache_op_names[SPOTIFY_CACHE_OPS] = {"get",    "set",  "lock",
                                                               "unlock", "incr", "pace"};

void spotify_cache_result_clear(spotify_cache_result *r) {
  free(r->str);
  free(r->note);
  memset(r, 0, sizeof *r);
}

void spotify_cache_answer_as(spotify_cache_result *out, spotify_cache_answer a, const char *s,
                             size_t len) {
  spotify_cache_result_clear(out);
  out->answer = a;
  if (s == NULL) return;
  out->str = malloc(len + 1);
  if (out->str == NULL) {
    out->answer = SPOTIFY_ANSWER_FAILED; /* message-less: "out of memory" when reported */
    return;
  }
  memcpy(out->str, s, len);
  out->str[len] = '\0';
  out->len = len;
}

void spotify_cache_answer_failed(spotify_cache_result *out, const char *message) {
  spotify_cache_answer_as(out, SPOTIFY_ANSWER_FAILED, message, strlen(message));
}

void spotify_cache_answer_number(spotify_cache_result *out, double n) {
  spotify_cache_answer_as(out, SPOTIFY_ANSWER_NUMBER, NULL, 0);
  out->number = n;
}

double spotify_cache_expiry(double now, double ttl) {
  return ttl > 0 ? now + ttl : HUGE_VAL;
}

/* ---- any other object, through its Lua methods ---- */

static const char unsupported_key = 'u'; /* marks "no such method" */

/* adapter_call(obj, op, args...) -> the method's first result, or the
 * unsupported marker. Runs under pcall: indexing may raise too. */
static int adapter_call(lua_State *L) {
  lua_pushvalue(L, 2);
  lua_gettable(L, 1);
  if (lua_isnil(L, -1)) {
    lua_pushlightuserdata(L, (void *)&unsupported_key);
    return 1;
  }
  lua_replace(L, 2); /* obj, f, args... -> f, obj, args... */
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_replace(L, 1);
  lua_replace(L, 2);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

int spotify_cache_push_args(lua_State *L, const spotify_cache_req *rq) {
  lua_pushstring(L, rq->key);
  switch (rq->op) {
    case SPOTIFY_CACHE_SET:
      lua_pushlstring(L, rq->value, rq->len);
      lua_pushnumber(L, rq->ttl);
      return 3;
    case SPOTIFY_CACHE_LOCK:
      lua_pushnumber(L, rq->ttl);
      return 2;
    case SPOTIFY_CACHE_INCR:
      lua_pushnumber(L, rq->delta);
      lua_pushnumber(L, rq->ttl);
      return 3;
    case SPOTIFY_CACHE_PACE:
      lua_pushstring(L, rq->pace_key);
      lua_createtable(L, 0, 4);
      lua_pushinteger(L, rq->requests);
      lua_setfield(L, -2, "requests");
      lua_pushnumber(L, rq->window);
      lua_setfield(L, -2, "window");
      lua_pushnumber(L, rq->margin);
      lua_setfield(L, -2, "margin");
      lua_pushnumber(L, rq->now);
      lua_setfield(L, -2, "now");
      return 3;
    default:
      return 1;
  }
}

void spotify_cache_result_from_lua(lua_State *L, spotify_cache_op op, int ok, int i,
                                   spotify_cache_result *out) {
  int t = lua_type(L, i);
  if (ok < 0 || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == &unsupported_key)) {
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_UNSUPPORTED, NULL, 0);
  } else if (!ok) {
    spotify_cache_answer_failed(out, t == LUA_TSTRING || t == LUA_TNUMBER
                                         ? lua_tostring(L, i)
                                         : "the cache raised a non-string error");
  } else if (op == SPOTIFY_CACHE_GET) {
    size_t len;
    const char *s = t == LUA_TSTRING ? lua_tolstring(L, i, &len) : NULL;
    spotify_cache_answer_as(out, s ? SPOTIFY_ANSWER_STRING : SPOTIFY_ANSWER_NONE, s, s ? len : 0);
  } else if (op == SPOTIFY_CACHE_LOCK) {
    spotify_cache_answer_as(out,
                            t == LUA_TNIL         ? SPOTIFY_ANSWER_UNSUPPORTED
                            : lua_toboolean(L, i) ? SPOTIFY_ANSWER_TRUE
                                                  : SPOTIFY_ANSWER_FALSE,
                            NULL, 0);
  } else if (op == SPOTIFY_CACHE_INCR) {
    if (t == LUA_TNUMBER)
      spotify_cache_answer_number(out, lua_tonumber(L, i));
    else
      spotify_cache_answer_failed(out, "incr answered something that is not a number");
  } else if (op == SPOTIFY_CACHE_PACE) {
    size_t len = 0;
    const char *s = t == LUA_TSTRING ? lua_tolstring(L, i, &len) : NULL;
    if (t == LUA_TNUMBER)
      spotify_cache_answer_number(out, lua_tonumber(L, i));
    else if (s)
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_STRING, s, len);
    else
      spotify_cache_answer_failed(out, "pace answered neither a start time nor a penalty");
  } else {
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  }
}

static void adapter_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                        spotify_cache_result *out) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, adapter_call);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  lua_pushstring(L, spotify_cache_op_names[rq->op]);
  int n = spotify_cache_push_args(L, rq);
  int ok = lua_pcall(L, 2 + n, 1, 0) == 0;
  spotify_cache_result_from_lua(L, rq->op, ok, -1, out);
  lua_settop(L, top);
}

static const spotify_cache_vtable adapter_vt = {"lua", adapter_run};

void spotify_cache_bind(lua_State *L, spotify_cache *c, int i) {
  i = spotify_absindex(L, i);
  void *m = spotify_testudata(L, i, SPOTIFY_MEMORY_MT),
       *f = spotify_testudata(L, i, SPOTIFY_FILE_MT);
  c->vt = m ? &spotify_memory_vt : f ? &spotify_file_vt : &adapter_vt;
  c->self = m ? m : f;
  c->may_yield = c->self == NULL;
  lua_pushvalue(L, i);
  c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void spotify_cache_unbind(lua_State *L, spotify_cache *c) {
  if (c->vt) luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
  memset(c, 0, sizeof *c);
  c->ref = LUA_NOREF;
}

void spotify_cache_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                       spotify_cache_result *out) {
  c->vt->run(L, c, rq, out);
}
