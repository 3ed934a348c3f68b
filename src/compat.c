#include "compat.h"

#include <stdlib.h>

#define SCRATCH_MT "spotify.scratch"

static int scratch_gc(lua_State *L) {
  void **slot = lua_touserdata(L, 1);
  free(*slot);
  *slot = NULL;
  return 0;
}

void **spotify_scratch(lua_State *L) {
  void **slot = lua_newuserdata(L, sizeof *slot);
  *slot = NULL;
  if (luaL_newmetatable(L, SCRATCH_MT)) {
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return slot;
}

#if LUA_VERSION_NUM == 501
void spotify_setfuncs(lua_State *L, const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushcfunction(L, l->func);
    lua_setfield(L, -2, l->name);
  }
}

void *spotify_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, tname);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}
#endif
