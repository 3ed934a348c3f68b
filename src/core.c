/* luaopen_spotify_core: registration. */
#include "gather.h"
#include "spotify.h"

#define SPOTIFY_EXPORT __attribute__((visibility("default")))

SPOTIFY_EXPORT int luaopen_spotify_core(lua_State *L);

/* Functions the module's own Lua never calls: specs and fuzz targets reach
 * them through core.testing(), so spotify.core holds only what the module
 * runs on. */
static const char *const testing_names[] = {
    "backoff",       "basic_auth",        "classify",      "digest", "error_message",
    "file_read",     "parse_retry_after", "parse_token",   "time",   "urlencode",
    "virtual_clock", "virtual_reset",     "virtual_waits", NULL};

static int l_testing(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  return 1;
}

/* Moves the testing_names out of the core table (on top) into the table
 * core.testing() returns. */
static void open_testing(lua_State *L) {
  lua_newtable(L);
  for (const char *const *name = testing_names; *name; name++) {
    lua_getfield(L, -2, *name);
    lua_setfield(L, -2, *name);
    lua_pushnil(L);
    lua_setfield(L, -3, *name);
  }
  lua_pushcclosure(L, l_testing, 1);
  lua_setfield(L, -2, "testing");
}

int luaopen_spotify_core(lua_State *L) {
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
  open_testing(L);
  return 1;
}
