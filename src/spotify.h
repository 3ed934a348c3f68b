/* Internal interface between the core's files. Each spotify_open_* registers
 * its Lua functions into the module table on top of the stack. */
#ifndef SPOTIFY_H
#define SPOTIFY_H

#include <stddef.h>

#include "compat.h"

#define SPOTIFY_ERROR_MT "spotify.error"
#define SPOTIFY_CLIENT_MT "spotify.client"
#define SPOTIFY_EXCHANGE_MT "spotify.exchange"

void spotify_open_errors(lua_State *L);
void spotify_open_policy(lua_State *L);
void spotify_open_ids(lua_State *L);
void spotify_open_json(lua_State *L);
void spotify_open_token(lua_State *L);
void spotify_open_cache(lua_State *L);
void spotify_open_filecache(lua_State *L);
void spotify_open_clock(lua_State *L);
void spotify_open_client(lua_State *L);
void spotify_open_responses(lua_State *L);
void spotify_open_exchange(lua_State *L); /* by spotify_open_client */

double spotify_wall_time(void);
double spotify_monotonic_time(void);
/* Blocks, except under the virtual clock of the specs (clock.c). */
void spotify_sleep(double seconds);

/* Push a decoded JSON value (object nulls dropped, integers on 5.3+), or
 * nil + message. Never raises for bad input. */
int spotify_json_decode(lua_State *L, const char *s, size_t len);
/* Push the private cjson encode function. */
void spotify_json_push_encoder(lua_State *L);

#endif
