/* Internal interface between the core's files. Each file registers its Lua
 * functions into the module table on top of the stack. */
#ifndef SPOTIFY_H
#define SPOTIFY_H

#include <stddef.h>

#include "compat.h"

#define SPOTIFY_ERROR_MT "spotify.error"
#define SPOTIFY_CLIENT_MT "spotify.client"

void spotify_open_errors(lua_State *L);
void spotify_open_backoff(lua_State *L);
void spotify_open_ids(lua_State *L);
void spotify_open_json(lua_State *L);
void spotify_open_token(lua_State *L);
void spotify_open_filecache(lua_State *L);
void spotify_open_clock(lua_State *L);
void spotify_open_http(lua_State *L);

/* Retry-After header value -> seconds (>= 0), or -1 when absent/unusable. */
double spotify_parse_retry_after(const char *value, size_t len, double now_epoch);
double spotify_wall_time(void);
double spotify_monotonic_time(void);

/* Push a decoded JSON value (object nulls dropped), or nil + message. */
int spotify_json_decode(lua_State *L, const char *s, size_t len);

#endif
