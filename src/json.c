/* JSON decoding through lua-cjson, with Spotify's nulls made Lua-shaped:
 * a null object field is simply absent, a null array element stays in place
 * as cjson.null (exported as spotify.null). */
#include <string.h>

#include "spotify.h"

static const char decode_key = 'j'; /* registry slot: private cjson decode */

static int is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

static void strip_object_nulls(lua_State *L, int t);

/* cjson arrays hold only the keys 1..n: walk them by index and visit only
 * the tables inside, whose objects may hold nulls. */
static void strip_in_array(lua_State *L, int t, size_t n) {
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, t, (lua_Integer)i);
    if (lua_type(L, -1) == LUA_TTABLE) strip_object_nulls(L, lua_gettop(L));
    lua_pop(L, 1);
  }
}

/* Depth is bounded by cjson's own nesting limit (1000). */
static void strip_object_nulls(lua_State *L, int t) {
  luaL_checkstack(L, 4, "JSON nesting");
  size_t n = spotify_rawlen(L, t);
  if (n > 0) {
    strip_in_array(L, t, n);
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      strip_object_nulls(L, lua_gettop(L));
    } else if (is_null(L, -1) && lua_type(L, -2) == LUA_TSTRING) {
      /* Assigning nil to an existing field is allowed during lua_next. */
      lua_pushvalue(L, -2);
      lua_pushnil(L);
      lua_rawset(L, t);
    }
    lua_pop(L, 1);
  }
}

/* The text at index 1; the null pass runs only when it can find a null. */
static int decode_protected(lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  lua_pushlightuserdata(L, (void *)&decode_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_type(L, -1) == LUA_TTABLE && memmem(s, len, "null", 4) != NULL)
    strip_object_nulls(L, lua_gettop(L));
  return 1;
}

static int decode_value(lua_State *L, int text) {
  lua_pushcfunction(L, decode_protected);
  lua_pushvalue(L, text);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

int spotify_json_decode(lua_State *L, const char *s, size_t len) {
  lua_pushlstring(L, s, len);
  int n = decode_value(L, lua_gettop(L));
  lua_remove(L, -n - 1);
  return n;
}

/* core.decode(text) -> value | nil, message */
static int l_decode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  return decode_value(L, 1);
}

void spotify_open_json(lua_State *L) {
  /* A private cjson instance: settings a program makes on the shared
   * "cjson" module must not change how API answers decode. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "null");
  lua_setfield(L, -3, "null");
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_pushlightuserdata(L, (void *)&decode_key);
  lua_getfield(L, -2, "decode");
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode");
}
