/* The exchange machine: one logical call (an API GET, or a token for
 * access_token) with any number of attempts. It does no I/O: it emits
 * actions (send, wait, cache operation, done) and consumes events (an
 * outcome, a cache answer, time passing). Every decision lives here and in
 * policy.c; the drivers (http.c: libcurl easy and multi; exchange.c: the Lua
 * driver for nginx cosockets) only move bytes. */
#ifndef SPOTIFY_ENGINE_H
#define SPOTIFY_ENGINE_H

#include "cache.h"
#include "errors.h"
#include "policy.h"
#include "token.h"

typedef struct spotify_stats {
  long long requests, retries, token_fetches, cache_hits, cache_errors;
  long long bytes_received, connections_opened;
  long long rate_limited_waits;
  double rate_limited_wait_s;
  double retry_wait_s; /* backoffs before retries (each counted in retries) */
  long long response_hits, response_shared_hits, response_stale, coalesced, batched;
  long long response_revalidated; /* expired answers renewed by a 304 */
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

struct spotify_responses;
struct spotify_flight;
struct spotify_revalidation;
struct spotify_compose;

/* Everything the machine decides with that outlives one exchange: one per
 * client, embedded in it (client.h). The machine's files (engine.c,
 * renewal.c, ratelimit.c) decide with it; client.c fills it from the
 * options and frees it. */
typedef struct spotify_machine {
  int closed; /* the client is closed: every exchange ends as "closed" */
  char *basic_auth, *token_url;
  char *token_body; /* the token request's form: grant type and scopes */
  char *language;   /* Accept-Language of API requests, and part of an answer's key */
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
  /* stale_while_revalidate: answers handed out expired, to be renewed by
   * the driver (engine.c), one renewal per key */
  struct spotify_revalidation *revalidations;
  int on_request_ref; /* LUA_NOREF when none */
} spotify_machine;

/* Upper bounds (seconds) of the request-time histogram's buckets. */
extern const double spotify_duration_buckets[SPOTIFY_BUCKETS];

typedef enum spotify_purpose { SPOTIFY_FOR_API, SPOTIFY_FOR_TOKEN } spotify_purpose;

typedef enum spotify_action {
  SPOTIFY_ACT_SEND = 1, /* send x->send, then spotify_exchange_outcome */
  SPOTIFY_ACT_WAIT,     /* let x->wait seconds pass */
  SPOTIFY_ACT_CACHE,    /* run x->cache_req on the client's cache, then _cache_answer */
  SPOTIFY_ACT_DONE      /* x->error.kind == NULL: x->status, x->body; else x->error */
} spotify_action;

/* What a driver reports of one HTTP exchange: the one struct that crosses
 * from a driver to the machine. */
typedef struct spotify_outcome {
  long status;             /* 0: the transfer failed */
  spotify_failure failure; /* why, when status == 0 */
  const char *detail;      /* the driver's description of the failure */
  const char *body;        /* valid until the next call into the machine */
  size_t len;
  double retry_after; /* seconds, < 0 when none */
  double elapsed;
  int connections;                  /* connections this exchange opened */
  double max_age;                   /* Cache-Control max-age in seconds; <= 0: none */
  unsigned cache_control;           /* SPOTIFY_CC_ flags (responses.h): no-store, private */
  const char *etag, *last_modified; /* the answer's validators, NUL-terminated; NULL: none */
} spotify_outcome;

typedef struct spotify_send {
  const char *method, *url, *auth, *body; /* valid until the next call */
  const char *language;                   /* Accept-Language, or NULL (token requests) */
  /* a conditional request: If-None-Match, If-Modified-Since; NULL: none */
  const char *if_none_match, *if_modified_since;
  size_t body_len;
} spotify_send;

typedef struct spotify_exchange {
  spotify_machine *m;
  spotify_purpose purpose;
  char *method, *url; /* owned */
  int state;
  int lua_caches_inline; /* the driver lets the machine call Lua caches */
  int attempt, token_attempt, renewed;
  double started;
  unsigned carried; /* serial of the token the last request carried */
  unsigned waited_round;
  double give_up, poll_step;
  int renewing, lock_held;
  char *key;                        /* the key of a penalty or pacing operation, owned */
  double penalty_until, pace_start; /* wall clock */
  int after_share;                  /* the state after sharing a 429's penalty */
  const char *penalty_reason;       /* static: the shared penalty is a spent quota */
  char *entry; /* the value being stored (token entry, penalty, start time), owned */
  size_t entry_len;
  double entry_ttl;
  /* the response cache (responses.c) */
  double ttl;   /* this GET's: > 0 seconds, 0 not cached, < 0 the answer's max-age */
  char *akey;   /* the answer's key in the process tier (URL and language), owned */
  char *rkey;   /* its key in the shared tier, owned; NULL: not cached */
  char *answer; /* an answer from the cache, owned; x->body points here */
  char *stale;  /* an expired answer that may stand in for a failure, owned */
  size_t answer_len, stale_len;
  int on_store;     /* the pending cache action is for the response store */
  int from_lru;     /* answered by the process tier: the result is a copy of its decoded answer */
  int value_ref;    /* > 0: registry ref to the answer decoded before it was kept, the caller's */
  char *name;       /* the API method's name (its ttl), owned; NULL: an unnamed GET */
  int revalidating; /* a renewal (stale_while_revalidate): never answered by an expired entry */
  struct spotify_compose *compose; /* a batch GET kept per item (compose.c), owned; or NULL */
  /* a conditional request: the expired answer it asks about, owned */
  char *cond_text, *cond_etag, *cond_lm;
  size_t cond_len;
  /* coalescing: identical GETs in flight share one request */
  int group;                     /* drivers whose exchanges run side by side: 0 none */
  struct spotify_flight *flight; /* the shared request this one leads or follows */
  int following;
  int rlock_held;  /* the store's lock on this URL, across processes */
  char *rlock_key; /* owned */
  double rpoll;    /* seconds between looks while another process asks */
  /* the pending action */
  spotify_send send;
  double wait;
  spotify_cache_req cache_req;
  spotify_cache_result cache_res;
  /* the result */
  long status;
  const char *body; /* points into the last outcome */
  size_t body_len;
  spotify_error error;
} spotify_exchange;

/* Start x afresh (x may hold a previous exchange); -1 when out of memory. */
int spotify_exchange_init(spotify_exchange *x, spotify_machine *m, spotify_purpose purpose,
                          const char *method, const char *url, int lua_caches_inline);
/* Exchanges of one driver group that run side by side (libcurl multi: 1,
 * the nginx driver: 2) share identical GETs in flight; 0 (the blocking
 * driver, the default) never waits for another exchange. */
#define SPOTIFY_GROUP_MULTI 1
#define SPOTIFY_GROUP_LUA 2
/* The API method name of a GET (for its ttl); unnamed GETs get the default. */
void spotify_exchange_named(spotify_exchange *x, const char *name);
/* The key of the answer to a GET of url for m's requests (URL, language
 * and, for a caller's own token, its digest), malloc'd; NULL: keep none. */
char *spotify_exchange_answer_key(spotify_machine *m, const char *url);
/* stale_while_revalidate: the next key to renew (url and method name, the
 * machine's, valid until the renewal ends), marked as being renewed; 0
 * when none waits. The driver runs an exchange for it and calls
 * spotify_exchange_revalidate on it before its first step. */
int spotify_machine_next_revalidation(spotify_machine *m, const char **url, const char **name);
/* Queue a renewal of url's answer (an expired answer was handed out). */
void spotify_machine_queue_revalidation(spotify_machine *m, const char *url, const char *name);
void spotify_machine_free_revalidations(spotify_machine *m);
/* x renews its URL's answer: no expired answer answers it. */
void spotify_exchange_revalidate(spotify_exchange *x);
/* Whether m's token is good for a request now: the machine's answer, the
 * one core.access_token gives without starting an exchange. */
int spotify_exchange_token_fresh(const spotify_machine *m, double now);
/* Advance until the next action. */
spotify_action spotify_exchange_next(lua_State *L, spotify_exchange *x);
void spotify_exchange_outcome(lua_State *L, spotify_exchange *x, const spotify_outcome *o);
/* The answer to a SPOTIFY_ACT_CACHE; the machine takes r's contents. */
void spotify_exchange_cache_answer(lua_State *L, spotify_exchange *x, spotify_cache_result *r);
/* Push the answer decoded before it was kept (once; the ref goes), or
 * return 0 pushing nothing: the driver then decodes x->body. */
int spotify_exchange_take_value(lua_State *L, spotify_exchange *x);
void spotify_exchange_drop_value(lua_State *L, spotify_exchange *x);
/* The exchange will never be driven again (cancelled, collected, closed):
 * give up the renewal it may own, and the renewal lock where that is safe. */
void spotify_exchange_abandon(lua_State *L, spotify_exchange *x);
void spotify_exchange_free(spotify_exchange *x);

#endif
