/* The client: the machine's state (engine.h) and the transport (http.h)
 * side by side; neither includes this file, and the machine never sees the
 * transport. The userdata is this struct; close, __gc and __close share
 * one idempotent release. */
#ifndef SPOTIFY_CLIENT_H
#define SPOTIFY_CLIENT_H

#include "engine.h"
#include "http.h"

typedef struct spotify_client {
  int busy;          /* drivers running now: the handles are freed once they return */
  char *client_id;   /* options (validated and defaulted in Lua, options.lua) */
  spotify_machine m; /* every value the exchange machine decides with */
  spotify_http http; /* the transport: libcurl handles, made on first use, and its jobs */
} spotify_client;

spotify_client *spotify_check_client(lua_State *L, int i);
int spotify_push_result(lua_State *L, spotify_exchange *x);
/* Around a driver's work: a close meanwhile frees the handles on leave. */
void spotify_client_enter(spotify_client *c);
void spotify_client_leave(lua_State *L, spotify_client *c);
/* fn(ud, the nargs values on top) between enter and leave, under pcall:
 * c leaves even when fn raises (out of memory), and the raise goes on.
 * Returns how many values fn left. */
int spotify_client_bracket(lua_State *L, spotify_client *c, lua_CFunction fn, void *ud, int nargs);
/* Raises when called while a driver of c runs: from inside its own hook
 * or Lua cache, a request would drive the same transfers from within. */
void spotify_client_refuse_reentry(lua_State *L, const spotify_client *c);
/* A GET (or any method) for the multi driver, tagged; -1 when out of memory. */
int spotify_client_submit(lua_State *L, spotify_client *c, lua_Integer tag, const char *method,
                          const char *url, const char *name);

#endif
