/* Lua 5.1 / LuaJIT / 5.2-5.4 differences, kept to what the core uses, and
 * the scratch slot every file may use (compat.c). */
#ifndef SPOTIFY_COMPAT_H
#define SPOTIFY_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM == 501
#define spotify_rawlen(L, i) lua_objlen((L), (i))
#define spotify_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#define spotify_setuservalue(L, i) lua_setfenv((L), (i))
#define spotify_getuservalue(L, i) lua_getfenv((L), (i))
void spotify_setfuncs(lua_State *L, const luaL_Reg *l);
void *spotify_testudata(lua_State *L, int i, const char *tname);
#else
#define spotify_setuservalue(L, i) lua_setuservalue((L), (i))
#define spotify_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define spotify_rawlen(L, i) lua_rawlen((L), (i))
#define spotify_absindex(L, i) lua_absindex((L), (i))
#define spotify_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#define spotify_testudata(L, i, t) luaL_testudata((L), (i), (t))
#endif

/* A userdata slot (NULL at first) whose malloc'd pointer is freed when the
 * slot is collected: memory that must outlive a call that can raise. */
void **spotify_scratch(lua_State *L);

#endif
