/* JSON decoding through lua-cjson, made Lua-shaped in one pass over the
 * result: a null object field is simply absent, a null array element stays
 * in place as cjson.null (exported as spotify.null), and on Lua 5.3+ an
 * integral number becomes an integer, whatever the cjson build does. */
#include <string.h>

#include "spotify.h"

static const char decode_key = 'j'; /* registry slot: private cjson decode */
static const char strip_key = 's';  /* registry slot: the Lua null walk (LuaJIT) */
static const char encode_key = 'e'; /* registry slot: private cjson encode */

#if LUA_VERSION_NUM >= 503
#define HAS_INTEGERS 1
/* 2^53: beyond it a double no longer tells which integer the text held. */
#define EXACT_LIMIT 9007199254740992.0
#else
#define HAS_INTEGERS 0
#endif

#if HAS_INTEGERS
/* The number on top of the stack as an integer when that loses nothing. */
static int integral_on_top(lua_State *L) {
  if (lua_isinteger(L, -1)) return 0;
  lua_Number v = lua_tonumber(L, -1);
  if (!(v >= -EXACT_LIMIT && v <= EXACT_LIMIT) || v != (lua_Number)(lua_Integer)v) return 0;
  lua_pop(L, 1);
  lua_pushinteger(L, (lua_Integer)v);
  return 1;
}
#endif

typedef struct pass {
  int nulls;    /* the text holds "null": object fields to drop */
  int integers; /* integral floats to turn into integers */
} pass;

static void shape_table(lua_State *L, const pass *p, int t);

/* The type of t[i], pushed (lua_rawgeti returns it from 5.3 on). */
#if LUA_VERSION_NUM >= 503
#define push_element(L, t, i) lua_rawgeti((L), (t), (i))
#else
static int push_element(lua_State *L, int t, lua_Integer i) {
  lua_rawgeti(L, t, (int)i);
  return lua_type(L, -1);
}
#endif

/* Elements looked at per lua_settop: an answer's arrays are mostly strings
 * (available_markets), where a pop per element is a third of the walk. */
#define CHUNK 32

/* cjson arrays hold only the keys 1..n: walk them by index, leaving up to
 * CHUNK elements on the stack before dropping them at once (an element
 * made an integer is stored, which pops it). */
static void shape_array(lua_State *L, const pass *p, int t, size_t n) {
  int top = lua_gettop(L);
  for (size_t first = 1; first <= n; first += CHUNK) {
    size_t last = n - first < CHUNK ? n : first + CHUNK - 1;
    luaL_checkstack(L, CHUNK + 4, "JSON nesting");
    for (size_t i = first; i <= last; i++) {
      int type = push_element(L, t, (lua_Integer)i);
      if (type == LUA_TTABLE) {
        shape_table(L, p, lua_gettop(L));
#if HAS_INTEGERS
      } else if (type == LUA_TNUMBER && p->integers && integral_on_top(L)) {
        lua_rawseti(L, t, (lua_Integer)i);
#endif
      }
    }
    lua_settop(L, top);
  }
}

/* Depth is bounded by cjson's own nesting limit (1000). Assigning to an
 * existing field, nil included, is allowed during lua_next. */
static void shape_table(lua_State *L, const pass *p, int t) {
  luaL_checkstack(L, 4, "JSON nesting");
  size_t n = spotify_rawlen(L, t);
  if (n > 0) {
    shape_array(L, p, t, n);
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int type = lua_type(L, -1);
    if (type == LUA_TTABLE) {
      shape_table(L, p, lua_gettop(L));
    } else if (type == LUA_TLIGHTUSERDATA && p->nulls && lua_touserdata(L, -1) == NULL &&
               lua_type(L, -2) == LUA_TSTRING) {
      lua_pushvalue(L, -2);
      lua_pushnil(L);
      lua_rawset(L, t);
#if HAS_INTEGERS
    } else if (type == LUA_TNUMBER && p->integers && integral_on_top(L)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, t);
      continue;
#endif
    }
    lua_pop(L, 1);
  }
}

/* Does the text hold "null" anywhere? memchr is much faster than memmem. */
static int has_null(const char *s, size_t len) {
  const char *p = s, *end = s + len;
  while (end - p >= 4 && (p = memchr(p, 'n', (size_t)(end - p - 3))) != NULL) {
    if (p[1] == 'u' && p[2] == 'l' && p[3] == 'l') return 1;
    p++;
  }
  return 0;
}

/* The null walk for LuaJIT, in Lua: its compiler turns this loop into
 * machine code that costs a quarter of walking through the C API there.
 * The interpreters (5.1, and 5.3+ with integers to fix too) walk in C. */
static const char strip_chunk[] =
    "local null, next, type = ...\n"
    "local function strip(t)\n"
    "  local n = #t\n"
    "  if n > 0 then\n"
    "    for i = 1, n do local v = t[i]; if type(v) == 'table' then strip(v) end end\n"
    "    return\n"
    "  end\n"
    "  for k, v in next, t do\n"
    "    if v == null then t[k] = nil elseif type(v) == 'table' then strip(v) end\n"
    "  end\n"
    "end\n"
    "return strip\n";

/* The text at index 1; the pass runs only when it has something to do. */
static int decode_protected(lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  lua_pushlightuserdata(L, (void *)&decode_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
#if HAS_INTEGERS
  if (lua_type(L, -1) == LUA_TNUMBER) integral_on_top(L);
#endif
  /* With integers to fix the walk runs anyway and drops nulls on its way:
   * no scan of the text for them. */
  pass p = {lua_type(L, -1) == LUA_TTABLE && (HAS_INTEGERS || has_null(s, len)), HAS_INTEGERS};
  if (lua_type(L, -1) != LUA_TTABLE || !(p.nulls || p.integers)) return 1;
  lua_pushlightuserdata(L, (void *)&strip_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!p.integers && lua_isfunction(L, -1)) {
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
  } else {
    lua_pop(L, 1);
    shape_table(L, &p, lua_gettop(L));
  }
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

void spotify_json_push_encoder(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&encode_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
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
  lua_getglobal(L, "jit");
  int luajit = lua_istable(L, -1);
  lua_pop(L, 1);
  if (luajit) {
    lua_pushlightuserdata(L, (void *)&strip_key);
    if (luaL_loadbuffer(L, strip_chunk, sizeof strip_chunk - 1, "=spotify.core strip") != 0)
      lua_error(L);
    lua_getfield(L, -3, "null");
    lua_getglobal(L, "next");
    lua_getglobal(L, "type");
    lua_call(L, 3, 1);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_pushlightuserdata(L, (void *)&decode_key);
  lua_getfield(L, -2, "decode");
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&encode_key);
  lua_getfield(L, -2, "encode");
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode");
}
