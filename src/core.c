/* luaopen_spotify_core: registration only. */
#include "spotify.h"

#define SPOTIFY_EXPORT __attribute__((visibility("default")))

SPOTIFY_EXPORT int luaopen_spotify_core(lua_State *L);

int luaopen_spotify_core(lua_State *L) {
  lua_newtable(L);
  spotify_open_errors(L);
  spotify_open_backoff(L);
  spotify_open_ids(L);
  spotify_open_json(L);
  spotify_open_token(L);
  spotify_open_filecache(L);
  spotify_open_clock(L);
  spotify_open_http(L);
  return 1;
}
