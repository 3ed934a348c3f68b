/* JSON decoding through lua-cjson, with Spotify's nulls made Lua-shaped:
 * a null object field is simply absent, a null array element stays in place
 * as cjson.null (exported as spotify.null). */
#include "spotify.h"

static const char decode_key = 'j'; /* registry slot: private cjson decode */

static int is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* Depth is bounded by cjson's own nesting limit (1000). */
static void strip_object_nulls(lua_State *L, int t) {
  luaL_checkstack(L, 4, "JSON nesting");
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

static int decode_protected(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&decode_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_type(L, -1) == LUA_TTABLE) strip_object_nulls(L, lua_gettop(L));
  return 1;
}

int spotify_json_decode(lua_State *L, const char *s, size_t len) {
  lua_pushcfunction(L, decode_protected);
  lua_pushlstring(L, s, len);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

/* core.decode(text) -> value | nil, message */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return spotify_json_decode(L, s, len);
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
