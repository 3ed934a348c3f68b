/* The client: one struct owns the options, the token state, the 429
 * penalty, the stats, the cache and the references to the Lua objects it
 * needs. The userdata is this struct; close, __gc and __close share one
 * idempotent release. */
#ifndef SPOTIFY_CLIENT_H
#define SPOTIFY_CLIENT_H

#include "cache.h"
#include "http.h"
#include "policy.h"
#include "token.h"

typedef struct spotify_stats {
  long long requests, retries, token_fetches, cache_hits, cache_errors;
  long long bytes_received, connections_opened;
} spotify_stats;

typedef struct spotify_client {
  int closed;
  int busy; /* drivers running now: the handles are freed once they return */
  /* options (validated and defaulted in Lua, options.lua) */
  char *client_id, *basic_auth, *token_url, *lock_key;
  spotify_limits limits;
  double refresh_buffer;
  double lock_ttl; /* how long a renewal may hold others: the request timeout */
  spotify_token token;
  double blocked_until; /* monotonic: an earlier 429's Retry-After ends then */
  spotify_stats stats;
  spotify_cache cache;
  int on_request_ref; /* LUA_NOREF when none */
  spotify_http http;  /* libcurl handles, made on first use */
  spotify_multi multi;
} spotify_client;

spotify_client *spotify_check_client(lua_State *L, int i);
int spotify_push_result(lua_State *L, const spotify_exchange *x);
/* Make the libcurl handles if they are not there yet; -1 when it fails. */
int spotify_client_http(lua_State *L, spotify_client *c);

#endif
