/* The exchange machine's own parts, shared by its files (engine.c: the
 * states and the response cache; renewal.c: the token; ratelimit.c: the
 * 429 penalty and pacing).
 * No file outside the machine includes it. */
#ifndef SPOTIFY_MACHINE_H
#define SPOTIFY_MACHINE_H

#include "engine.h"
#include "spotify.h"

#define TOKEN_POLL 0.01    /* seconds between looks while another renews */
#define TOKEN_POLL_MAX 0.2 /* backing off up to this while another process renews */
#define CACHE_RETRY 1.0    /* seconds a failed cache is left alone for sharing */
#define PACE_MARGIN 0.05   /* seconds: network jitter between a start and its arrival */
#define PACE_COUNTER_TTL 86400
#define PENALTY_MAX 86400    /* the longest Retry-After Spotify sends */
#define MIN_WAIT 0.001       /* shorter is no wait: timers count milliseconds */
#define FOLLOW_POLL 0.002    /* seconds between looks at the request an exchange rides on */
#define RPOLL_MAX 0.1        /* backing off up to this while another process asks */
#define REVALIDATE_KEEP 3600 /* seconds an expired answer with a validator is kept, at least */

enum state {
  S_BEGIN,
  S_RESPONSE, /* the response cache: the process tier, then the shared one */
  S_RESPONSE_SHARED,
  S_RESPONSE_STORE, /* a 200 to keep in the shared tier */
  S_COMPOSE_LOOK,   /* a batch GET: each item in the shared tier (compose.c) */
  S_COMPOSE_LOOKED,
  S_COMPOSE_STORE, /* ... and each item of its answer into it */
  S_COALESCE,      /* the same GET in flight in this client? ride on it */
  S_FOLLOW,
  S_RLOCK, /* ... or in another process: the store's lock on the URL */
  S_RLOCKED,
  S_RRELOOKED,
  S_RPOLL_WAIT, /* another process asks: poll the store for its answer */
  S_RPOLL_LOOK,
  S_RPOLL_LOOKED,
  S_PENALTY,        /* an earlier 429 holds every request of the client */
  S_PENALTY_SHARED, /* ... or of every client sharing the cache */
  S_PACE,           /* rate_limit: a place in the shared sliding window */
  S_PACED,          /* ... and the shared penalty, in one cache call (pace) */
  S_PACE_COUNTED,
  S_PACE_SLOT,
  S_PACE_WAIT,
  S_SHARE_PENALTY, /* a 429 holds every client sharing the cache */
  S_TOKEN,         /* fresh token? else renew, or wait for the renewal under way */
  S_TOKEN_WAIT,    /* another exchange of this client renews */
  S_SEND,
  S_SENT,
  S_BACKOFF,
  S_DONE,
  T_LOOK, /* renewal: the shared cache first */
  T_LOOKED,
  T_LOCKED,     /* the cross-process renewal lock */
  T_RELOOKED,   /* a look again once the lock is ours */
  T_OTHER_WAIT, /* another process renews: poll the cache */
  T_OTHER_LOOK,
  T_OTHER_LOOKED,
  T_FETCH,
  T_SEND,
  T_SENT,
  T_BACKOFF,
  T_STORE,
  T_UNLOCK,
  T_UNLOCKED,
  STATE_COUNT
};

static inline double now(void) {
  return spotify_monotonic_time();
}

static inline double wall(void) {
  return spotify_wall_time();
}

static inline void fail(spotify_exchange *x, const char *kind, long status, const char *message,
                        double retry_after) {
  spotify_error_set(&x->error, kind, status, message, retry_after);
}

static inline spotify_action done(spotify_exchange *x) {
  x->state = S_DONE;
  if (x->rlock_held) return 0; /* S_DONE lets go of the store's lock first */
  return SPOTIFY_ACT_DONE;
}

typedef spotify_action (*spotify_state_handler)(lua_State *L, spotify_exchange *x);

/* engine.c */
void spotify_machine_call_hook(lua_State *L, spotify_machine *m);
void spotify_machine_set_string(lua_State *L, const char *k, const char *v);
void spotify_machine_set_number(lua_State *L, const char *k, double v);
int spotify_machine_sharing(const spotify_machine *m);
spotify_action spotify_machine_cache_op(lua_State *L, spotify_exchange *x, spotify_cache_op op,
                                        const char *key, double ttl, int next);
int spotify_machine_answer_stale(spotify_exchange *x);
/* Decode text for the caller (the answer kept then is the caller's); 0
 * when it is not the JSON object expected. */
int spotify_machine_decode_answer(lua_State *L, spotify_exchange *x, const char *text, size_t len);
spotify_action spotify_machine_store_op(lua_State *L, spotify_exchange *x, spotify_cache_op op,
                                        const char *key, double ttl, int next);

/* compose.c: a batch GET (endpoints.lua's batch rows) whose items are kept
 * under their single lookups' keys and asked only when not held */
void spotify_compose_named(spotify_exchange *x, const char *name);
spotify_action spotify_compose_look(lua_State *L, spotify_exchange *x);
spotify_action spotify_compose_look_shared(lua_State *L, spotify_exchange *x);
spotify_action spotify_compose_looked(lua_State *L, spotify_exchange *x);
spotify_action spotify_compose_store(lua_State *L, spotify_exchange *x);
void spotify_compose_answered(lua_State *L, spotify_exchange *x, const spotify_outcome *o);
/* The answer to the IDs asked (a flight's, a store's) in the caller's
 * order, assembled into x->answer; 0 when the text has no such array.
 * _keep then puts the items it held into the process tier (fresh_until,
 * stale_until as merged), once the assembled answer decoded. */
int spotify_compose_merge(lua_State *L, spotify_exchange *x, const char *raw, size_t len,
                          double fresh_until, double stale_until);
void spotify_compose_keep(lua_State *L, spotify_exchange *x);
/* The text a flight hands its followers: the answer to the IDs asked. */
const char *spotify_compose_raw(const spotify_exchange *x, size_t *len);
void spotify_compose_free(struct spotify_compose *c);

/* renewal.c: the token sub-machine; _step runs its T_ states */
spotify_action spotify_renewal_step(lua_State *L, spotify_exchange *x);
spotify_action spotify_renewal_need_token(lua_State *L, spotify_exchange *x);
spotify_action spotify_renewal_wait(lua_State *L, spotify_exchange *x);
void spotify_renewal_answered(lua_State *L, spotify_exchange *x, const spotify_outcome *o);

/* ratelimit.c: the states of the penalty and the pacing */
spotify_action spotify_ratelimit_check_penalty(lua_State *L, spotify_exchange *x);
spotify_action spotify_ratelimit_check_shared_penalty(lua_State *L, spotify_exchange *x);
void spotify_ratelimit_share_penalty(spotify_exchange *x, const spotify_outcome *o, int retrying);
spotify_action spotify_ratelimit_store_penalty(lua_State *L, spotify_exchange *x);
spotify_action spotify_ratelimit_pace(lua_State *L, spotify_exchange *x);
spotify_action spotify_ratelimit_paced(lua_State *L, spotify_exchange *x);
spotify_action spotify_ratelimit_pace_counted(lua_State *L, spotify_exchange *x);
spotify_action spotify_ratelimit_pace_slot(lua_State *L, spotify_exchange *x);
spotify_action spotify_ratelimit_pace_wait(lua_State *L, spotify_exchange *x);

#endif
