/* What the cache's files share: the answers every cache gives, and the two
 * native caches (memcache.c: a hash table; filestore.c: one JSON file),
 * which cache.c binds and cache_lua.c makes Lua objects of. */
#ifndef SPOTIFY_CACHE_NATIVE_H
#define SPOTIFY_CACHE_NATIVE_H

#include "cache.h"

#define SPOTIFY_MEMORY_MT "spotify.cache.memory"
#define SPOTIFY_FILE_MT "spotify.cache.file"

/* out becomes answer a with a copy of s (when not NULL); out of memory
 * makes it a message-less failure. */
void spotify_cache_answer_as(spotify_cache_result *out, spotify_cache_answer a, const char *s,
                             size_t len);
void spotify_cache_answer_failed(spotify_cache_result *out, const char *message);
void spotify_cache_answer_number(spotify_cache_result *out, double n);
/* When an entry set now with ttl seconds expires (never for ttl <= 0). */
double spotify_cache_expiry(double now, double ttl);

extern const spotify_cache_vtable spotify_memory_vt, spotify_file_vt;
/* core.memory_cache() -> cache; its __gc */
int spotify_memory_cache_new(lua_State *L);
int spotify_memory_cache_gc(lua_State *L);
/* core.file_cache(path) -> cache; its __gc */
int spotify_file_cache_new(lua_State *L);
int spotify_file_cache_gc(lua_State *L);

#endif
