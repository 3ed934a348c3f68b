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
  long long rate_limited_waits;
  double rate_limited_wait_s;
  long long response_hits, response_shared_hits, response_stale, coalesced, batched;
} spotify_stats;

/* What Prometheus reads besides the stats: API exchanges by outcome and a
 * histogram of their times (fixed buckets, so counting allocates nothing). */
enum {
  SPOTIFY_OUT_2XX,
  SPOTIFY_OUT_4XX,
  SPOTIFY_OUT_429,
  SPOTIFY_OUT_5XX,
  SPOTIFY_OUT_NETWORK,
  SPOTIFY_OUT_TIMEOUT,
  SPOTIFY_OUT_COUNT
};
#define SPOTIFY_BUCKETS 11

typedef struct spotify_metrics {
  long long outcomes[SPOTIFY_OUT_COUNT];
  long long buckets[SPOTIFY_BUCKETS + 1]; /* per bucket, not cumulative; the last: above all */
  double seconds;                         /* the histogram's sum */
} spotify_metrics;

/* rate_limit = {requests = N, window = seconds}: at most N requests start
 * in any window, across every client sharing the cache (its incr), else
 * within this client (the ring of the last N start times). */
typedef struct spotify_pacing {
  int requests; /* 0: no pacing */
  double window;
  int fallback; /* rate_limit.fallback: the process's own share while it cannot share */
  double *ring; /* wall-clock start times of the last `fallback` requests */
  long long served;
} spotify_pacing;

typedef struct spotify_client {
  int closed;
  int busy; /* drivers running now: the handles are freed once they return */
  /* options (validated and defaulted in Lua, options.lua) */
  char *client_id, *basic_auth, *token_url;
  char *token_body; /* the token request's form: grant type and scopes */
  /* Keys in the cache, one namespace per kind. The token's and the lock's
   * name a digest of the credentials (only the same credentials share a
   * token); the penalty's and the pacing's name budget_key (default the
   * client ID); NULL: nothing to share. */
  char *token_key, *lock_key, *penalty_key, *pace_key;
  spotify_limits limits;
  double refresh_buffer;
  double lock_ttl; /* how long a renewal may hold others: the request timeout */
  spotify_token token;
  double blocked_until;       /* monotonic: an earlier 429's Retry-After ends then */
  const char *blocked_reason; /* static: a quota's reason (never waited for), or NULL */
  int no_pace_op;             /* the cache has no pace method: penalty and pacing one call each */
  spotify_pacing pacing;
  /* A cache that fails is left alone for sharing (penalty, pacing) for a
   * moment, and reported once per outage. */
  int cache_down;
  double cache_retry_at; /* monotonic */
  spotify_stats stats;
  spotify_metrics metrics;
  spotify_cache cache;
  struct spotify_responses *responses; /* NULL: no response cache */
  int responses_ref;                   /* keeps it alive */
  struct spotify_flight *flights;      /* GETs in flight that others may join (engine.c) */
  int on_request_ref;                  /* LUA_NOREF when none */
  spotify_http http;                   /* libcurl handles, made on first use */
  spotify_multi multi;
} spotify_client;

spotify_client *spotify_check_client(lua_State *L, int i);
int spotify_push_result(lua_State *L, const spotify_exchange *x);
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
/* One API exchange's outcome, counted by outcome and time (engine.c calls
 * it where the outcome is known). */
void spotify_client_count(spotify_client *c, const spotify_outcome *o);
/* Make the libcurl handles if they are not there yet; -1 when it fails. */
int spotify_client_http(lua_State *L, spotify_client *c);

#endif
