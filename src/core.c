/* luaopen_spotify_core: registration, and the scratch slot every file may
 * use. */
#include <stdlib.h>

#include "gather.h"
#include "spotify.h"

#define SPOTIFY_EXPORT __attribute__((visibility("default")))
#define SCRATCH_MT "spotify.scratch"

SPOTIFY_EXPORT int luaopen_spotify_core(lua_State *L);

static int scratch_gc(lua_State *L) {
  void **slot = lua_touserdata(L, 1);
  free(*slot);
  *slot = NULL;
  return 0;
}

void **spotify_scratch(lua_State *L) {
  void **slot = lua_newuserdata(L, sizeof *slot);
  *slot = NULL;
  luaL_getmetatable(L, SCRATCH_MT);
  lua_setmetatable(L, -2);
  return slot;
}

int luaopen_spotify_core(lua_State *L) {
  luaL_newmetatable(L, SCRATCH_MT);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  spotify_open_errors(L);
  spotify_open_policy(L);
  spotify_open_ids(L);
  spotify_open_json(L);
  spotify_open_token(L);
  spotify_open_cache(L);
  spotify_open_filecache(L);
  spotify_open_clock(L);
  spotify_open_client(L);
  spotify_open_gather(L);
  spotify_open_responses(L);
  return 1;
}
