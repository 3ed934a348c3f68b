/* The exchange machine. States run in order; each either moves on at once
 * (returns 0) or stops at an action for the driver. */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "spotify.h"

#define TOKEN_POLL 0.01    /* seconds between looks while another renews */
#define TOKEN_POLL_MAX 0.2 /* backing off up to this while another process renews */
#define CACHE_RETRY 1.0    /* seconds a failed cache is left alone for sharing */
#define PACE_MARGIN 0.05   /* seconds: network jitter between a start and its arrival */
#define PACE_COUNTER_TTL 86400
#define PENALTY_MAX 86400 /* the longest Retry-After Spotify sends */
#define MIN_WAIT 0.001    /* shorter is no wait: timers count milliseconds */

enum state {
  S_BEGIN,
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
  T_UNLOCKED
};

static double now(void) {
  return spotify_monotonic_time();
}

/* ---- results ---- */

static void fail(spotify_exchange *x, const char *kind, long status, const char *message,
                 double retry_after) {
  spotify_error_set(&x->error, kind, status, message, retry_after);
}

static spotify_action done(spotify_exchange *x) {
  x->state = S_DONE;
  return SPOTIFY_ACT_DONE;
}

/* ---- observing: on_request and cache errors, under pcall ---- */

static void call_hook(lua_State *L, spotify_client *c) {
  /* table on top */
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->on_request_ref);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 0, 0) != 0) lua_pop(L, 1); /* a hook that raises changes nothing */
}

static void set_string(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void set_number(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void observe(lua_State *L, spotify_exchange *x, const spotify_outcome *o, int token) {
  spotify_client *c = x->c;
  if (c->on_request_ref == LUA_NOREF || c->on_request_ref == LUA_REFNIL) return;
  lua_createtable(L, 0, 6);
  set_string(L, "method", token ? "POST" : x->method);
  set_string(L, "url", token ? c->token_url : x->url);
  lua_pushinteger(L, token ? x->token_attempt : x->attempt);
  lua_setfield(L, -2, "attempt");
  set_number(L, "elapsed", o->elapsed);
  if (o->status) {
    lua_pushinteger(L, (lua_Integer)o->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)o->len);
    lua_setfield(L, -2, "bytes");
  } else {
    set_string(L, "error", spotify_policy_failure(o->failure).kind);
  }
  call_hook(L, c);
}

/* Push s with every occurrence of secret replaced by "<token>". */
static void push_redacted(lua_State *L, const char *s, const char *secret) {
  luaL_Buffer b;
  size_t n = secret ? strlen(secret) : 0;
  luaL_buffinit(L, &b);
  const char *hit;
  while (n > 0 && (hit = strstr(s, secret)) != NULL) {
    luaL_addlstring(&b, s, (size_t)(hit - s));
    luaL_addstring(&b, "<token>");
    s = hit + n;
  }
  luaL_addstring(&b, s);
  luaL_pushresult(&b);
}

/* A cache that fails never fails the call: it is counted and reported. A
 * cache's message may quote the value it was given, which holds the token. */
static void cache_failed(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  c->stats.cache_errors++;
  c->cache_retry_at = now() + CACHE_RETRY;
  if (c->cache_down) return; /* reported once per outage */
  c->cache_down = 1;
  if (c->on_request_ref == LUA_NOREF || c->on_request_ref == LUA_REFNIL) return;
  const char *msg = x->cache_res.str ? x->cache_res.str : "cache: out of memory";
  lua_createtable(L, 0, 3);
  set_string(L, "event", "cache_error");
  set_string(L, "op", spotify_cache_op_names[x->cache_req.op]);
  push_redacted(L, msg, c->token.value);
  push_redacted(L, lua_tostring(L, -1), c->token.refused);
  lua_remove(L, -2);
  lua_setfield(L, -2, "message");
  call_hook(L, c);
}

/* ---- cache operations ---- */

static void cache_answered(lua_State *L, spotify_exchange *x) {
  if (x->cache_res.answer == SPOTIFY_ANSWER_FAILED)
    cache_failed(L, x);
  else if (x->cache_res.answer != SPOTIFY_ANSWER_UNSUPPORTED)
    x->c->cache_down = 0;
}

/* May the penalty and the pacing go through the cache now? Not without a
 * client ID, nor for a moment after the cache failed. */
static int sharing(const spotify_client *c) {
  return c->penalty_key && c->cache.vt && !(c->cache_down && now() < c->cache_retry_at);
}

/* Ask the cache; native caches (and Lua ones, where the driver allows)
 * answer at once, else the driver is asked to. */
static spotify_action cache_op(lua_State *L, spotify_exchange *x, spotify_cache_op op,
                               const char *key, double ttl, int next) {
  spotify_cache_req *rq = &x->cache_req;
  memset(rq, 0, sizeof *rq);
  rq->op = op;
  rq->key = key;
  rq->ttl = ttl;
  if (op == SPOTIFY_CACHE_SET) {
    rq->value = x->entry;
    rq->len = x->entry_len;
  } else if (op == SPOTIFY_CACHE_INCR) {
    rq->delta = 1;
  } else if (op == SPOTIFY_CACHE_PACE) {
    rq->pace_key = x->c->pace_key;
    rq->requests = x->c->pacing.requests;
    rq->window = x->c->pacing.window;
    rq->margin = PACE_MARGIN;
    rq->now = spotify_wall_time();
  }
  x->state = next;
  spotify_cache_result_clear(&x->cache_res);
  if (x->c->cache.vt == NULL) { /* no cache bound (core.new without one) */
    x->cache_res.answer = SPOTIFY_ANSWER_UNSUPPORTED;
    return 0;
  }
  if (x->c->cache.may_yield && !x->lua_caches_inline) return SPOTIFY_ACT_CACHE;
  spotify_cache_run(L, &x->c->cache, rq, &x->cache_res);
  cache_answered(L, x);
  return 0;
}

void spotify_exchange_cache_answer(lua_State *L, spotify_exchange *x, spotify_cache_result *r) {
  spotify_cache_result_clear(&x->cache_res);
  x->cache_res = *r;
  memset(r, 0, sizeof *r);
  cache_answered(L, x);
}

/* ---- the token ---- */

/* Take the token the cache answered, if it is usable. */
static int take_from_cache(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  const spotify_cache_result *r = &x->cache_res;
  double expires_at;
  if (r->answer != SPOTIFY_ANSWER_STRING ||
      !spotify_token_entry_parse(L, r->str, r->len, &expires_at))
    return 0;
  size_t len;
  const char *tok = lua_tolstring(L, -1, &len);
  int ok = spotify_token_acceptable(&c->token, tok, expires_at, c->refresh_buffer,
                                    spotify_wall_time()) &&
           spotify_token_adopt(&c->token, tok, len, expires_at) == 0;
  lua_pop(L, 1);
  if (ok) c->stats.cache_hits++;
  return ok;
}

/* The renewal this exchange owns is over: its waiters share the outcome. */
static void end_renewal(spotify_exchange *x) {
  spotify_token *t = &x->c->token;
  if (!x->renewing) return;
  x->renewing = 0;
  if (t->renewer == x) t->renewer = NULL;
  t->round++;
  if (x->error.kind)
    spotify_error_copy(&t->failure, &x->error);
  else
    spotify_error_clear(&t->failure);
}

static spotify_action token_ready(spotify_exchange *x) {
  if (x->purpose == SPOTIFY_FOR_TOKEN) return done(x);
  /* Paced last, right before sending: a place is a start time. */
  x->state = x->c->pacing.requests ? S_PACE : S_SEND;
  return 0;
}

/* The renewer says how long it may go without news: a waiter takes over
 * only from a renewer that has gone quiet for longer than that (a started
 * request nobody polls while a blocking call waits for its token). */
static void renewer_alive(spotify_exchange *x, double seconds) {
  spotify_token *t = &x->c->token;
  if (t->renewer == x) t->renewer_alive_until = now() + seconds + 1;
}

static spotify_action need_token(spotify_exchange *x) {
  spotify_client *c = x->c;
  spotify_token *t = &c->token;
  if (spotify_token_fresh(t, c->refresh_buffer, spotify_wall_time())) return token_ready(x);
  if (t->fixed) return token_ready(x);
  if (t->renewer && t->renewer != x) {
    x->waited_round = t->round;
    x->state = S_TOKEN_WAIT;
    return 0;
  }
  t->renewer = x;
  renewer_alive(x, c->lock_ttl);
  x->renewing = 1;
  x->state = T_LOOK;
  return 0;
}

static spotify_action wait_for_renewal(spotify_exchange *x) {
  spotify_token *t = &x->c->token;
  if (t->round != x->waited_round) {
    if (t->failure.kind == NULL) {
      x->state = S_TOKEN;
      return 0;
    }
    spotify_error_copy(&x->error, &t->failure);
    return done(x);
  }
  if (t->renewer == NULL || now() >= t->renewer_alive_until) {
    /* The renewer went away (cancelled) or hangs: take over. */
    if (t->renewer) t->renewer = NULL;
    x->state = S_TOKEN;
    return 0;
  }
  x->wait = TOKEN_POLL;
  return SPOTIFY_ACT_WAIT;
}

static spotify_action send_token_request(spotify_exchange *x) {
  spotify_client *c = x->c;
  x->token_attempt++;
  c->stats.requests++;
  renewer_alive(x, c->lock_ttl);
  x->send.method = "POST";
  x->send.url = c->token_url;
  x->send.auth = c->basic_auth;
  x->send.body = c->token_body ? c->token_body : "";
  x->send.body_len = strlen(x->send.body);
  x->state = T_SENT;
  return SPOTIFY_ACT_SEND;
}

static void token_answered(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  spotify_client *c = x->c;
  double expires_in;
  const char *why = spotify_token_parse(L, o->body, o->len, &expires_in);
  if (why) {
    fail(x, "decode", o->status, why, -1);
    x->error.at_token = 1;
    x->state = T_UNLOCK;
    return;
  }
  size_t len;
  const char *tok = lua_tolstring(L, -1, &len);
  double expires_at = spotify_wall_time() + expires_in;
  int ok = spotify_token_adopt(&c->token, tok, len, expires_at) == 0;
  lua_pop(L, 1);
  if (!ok) {
    fail(x, "network", 0, "out of memory", -1);
    x->error.at_token = 1;
    x->state = T_UNLOCK;
    return;
  }
  double ttl = floor(expires_in - c->refresh_buffer);
  free(x->entry);
  x->entry = ttl > 0 ? spotify_token_entry(c->token.value, expires_at, &x->entry_len) : NULL;
  x->entry_ttl = ttl;
  x->state = x->entry ? T_STORE : T_UNLOCK;
}

/* ---- the app's rate limit: the 429 penalty and pacing ---- */

static double wall(void) {
  return spotify_wall_time();
}

/* x->key = prefix .. suffix: the key of the next cache operation. */
static const char *set_key(spotify_exchange *x, const char *prefix, const char *suffix) {
  char *k = malloc(strlen(prefix) + strlen(suffix) + 1);
  if (k == NULL) return NULL;
  strcat(strcpy(k, prefix), suffix);
  free(x->key);
  x->key = k;
  return k;
}

/* x->entry = the number as text, and a quota's reason after it: the value
 * of the next cache set. */
static int set_entry_number(spotify_exchange *x, double v, const char *reason) {
  char buf[64];
  /* At most 24 characters, whatever v; a reason is one of policy.c's. */
  int n = snprintf(buf, sizeof buf, "%.17g%s%s", v, reason ? " " : "", reason ? reason : "");
  if (n < 0 || (size_t)n >= sizeof buf) return -1;
  char *e = malloc((size_t)n + 1);
  if (e == NULL) return -1;
  memcpy(e, buf, (size_t)n + 1);
  free(x->entry);
  x->entry = e;
  x->entry_len = (size_t)n;
  return 0;
}

/* A shared penalty's end (wall clock) and, for a quota, its reason. */
static double penalty_of(const char *s, const char **reason) {
  char *end;
  double until = strtod(s, &end);
  while (*end == ' ') end++;
  *reason = spotify_policy_quota(429, end);
  return until;
}

static double answer_number(const spotify_exchange *x) {
  const spotify_cache_result *r = &x->cache_res;
  if (r->answer == SPOTIFY_ANSWER_NUMBER) return r->number;
  if (r->answer == SPOTIFY_ANSWER_STRING) return strtod(r->str, NULL);
  return 0;
}

/* A wait for the app's rate limit: counted, and told to on_request as
 * {event = "rate_limited_wait", reason = "penalty" | "pacing", wait = s}. */
static void rate_limited_wait(lua_State *L, spotify_exchange *x, double wait, const char *reason) {
  spotify_client *c = x->c;
  c->stats.rate_limited_waits++;
  c->stats.rate_limited_wait_s += wait;
  x->wait = wait;
  if (c->on_request_ref == LUA_NOREF || c->on_request_ref == LUA_REFNIL) return;
  lua_createtable(L, 0, 5);
  set_string(L, "event", "rate_limited_wait");
  set_string(L, "reason", reason);
  set_number(L, "wait", wait);
  set_string(L, "method", x->method);
  set_string(L, "url", x->url);
  call_hook(L, c);
}

/* Hold the call for an earlier 429, or fail it at once when the wait does
 * not fit max_retry_after or the deadline, or when it is a spent quota
 * (`reason`): hours long, never waited for inside a call. */
static spotify_action hold_for_penalty(lua_State *L, spotify_exchange *x, double wait,
                                       const char *reason) {
  spotify_client *c = x->c;
  if (reason) {
    if (now() + wait > c->blocked_until) {
      c->blocked_until = now() + wait;
      c->blocked_reason = reason;
    }
    fail(x, "rate_limited", 0, "the app's quota is spent: no request before an earlier Retry-After",
         wait);
    spotify_error_set_reason(&x->error, reason);
    return done(x);
  }
  if (!spotify_penalty_fits(&c->limits, wait, now(), x->started)) {
    fail(x, "rate_limited", 0, "rate limited: waiting for an earlier Retry-After", wait);
    return done(x);
  }
  rate_limited_wait(L, x, wait, "penalty");
  x->state = S_PENALTY;
  return SPOTIFY_ACT_WAIT;
}

static spotify_action check_penalty(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  double wait = c->blocked_until - now();
  if (wait > MIN_WAIT) return hold_for_penalty(L, x, wait, c->blocked_reason);
  /* With rate_limit, the cache's pace method checks the shared penalty
   * with the pacing, right before sending: one call for both. */
  if (!sharing(c) || (c->pacing.requests && !c->no_pace_op)) {
    x->state = S_TOKEN;
    return 0;
  }
  return cache_op(L, x, SPOTIFY_CACHE_GET, c->penalty_key, 0, S_PENALTY_SHARED);
}

static spotify_action check_shared_penalty(lua_State *L, spotify_exchange *x) {
  const char *reason = NULL;
  double until = x->cache_res.answer == SPOTIFY_ANSWER_STRING
                     ? penalty_of(x->cache_res.str, &reason)
                     : answer_number(x);
  double wait = until - wall();
  if (wait > MIN_WAIT) return hold_for_penalty(L, x, wait, reason);
  x->state = S_TOKEN;
  return 0;
}

/* A 429 answered: every client sharing the cache holds its requests for
 * as long as this one does; a spent quota holds this client's too. */
static void share_penalty(spotify_exchange *x, const spotify_outcome *o, int retrying) {
  spotify_client *c = x->c;
  if (o->status != 429) return;
  const char *quota = retrying ? NULL : spotify_policy_quota(o->status, x->error.reason);
  double d = retrying ? x->wait : x->error.retry_after;
  if (!(d > 0)) return;
  if (d > PENALTY_MAX) d = PENALTY_MAX;
  if (quota && now() + d > c->blocked_until) {
    c->blocked_until = now() + d;
    c->blocked_reason = quota;
  }
  if (!sharing(c)) return;
  x->penalty_until = wall() + d;
  x->penalty_reason = quota;
  x->after_share = x->state;
  x->state = S_SHARE_PENALTY;
}

static spotify_action store_penalty(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  if (set_entry_number(x, x->penalty_until, x->penalty_reason) != 0) {
    x->state = x->after_share;
    return 0;
  }
  return cache_op(L, x, SPOTIFY_CACHE_SET, c->penalty_key, ceil(x->penalty_until - wall()),
                  x->after_share);
}

/* A place among the client's last `fallback` starts, without the cache:
 * a fleet that cannot share stays within the budget when each process
 * takes its share (rate_limit.fallback). */
static double local_place(spotify_pacing *p) {
  double *slot = &p->ring[p->served++ % p->fallback];
  double start = wall();
  /* The margin covers the jitter between a start and its arrival. */
  if (*slot > 0 && *slot + p->window + PACE_MARGIN > start) start = *slot + p->window + PACE_MARGIN;
  *slot = start;
  return start;
}

/* Request k (the shared counter) starts once request k - N started at
 * least a window ago: its start time is in slot k mod N. A sliding window,
 * as Spotify's own, needing only incr, get and set. */
static spotify_action pace(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  x->state = S_PACE_WAIT;
  if (sharing(c) && !c->no_pace_op)
    return cache_op(L, x, SPOTIFY_CACHE_PACE, c->penalty_key, 0, S_PACED);
  if (!sharing(c) || set_key(x, c->pace_key, ":n") == NULL) {
    x->pace_start = local_place(&c->pacing);
    return 0;
  }
  return cache_op(L, x, SPOTIFY_CACHE_INCR, x->key, PACE_COUNTER_TTL, S_PACE_COUNTED);
}

/* The cache's pace answered: a start time, or the penalty that holds the
 * request. A cache without pace gets the penalty and the pacing one call
 * each from now on, starting with this request's penalty. */
static spotify_action paced(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  const spotify_cache_result *r = &x->cache_res;
  if (r->answer == SPOTIFY_ANSWER_UNSUPPORTED) {
    c->no_pace_op = 1;
    x->state = S_PENALTY;
    return 0;
  }
  if (r->answer == SPOTIFY_ANSWER_STRING) {
    const char *reason;
    double wait = penalty_of(r->str, &reason) - wall();
    if (wait > MIN_WAIT) return hold_for_penalty(L, x, wait, reason);
  }
  /* A start time; else the cache is down, or its penalty ended meanwhile:
   * the process paces itself. */
  x->pace_start = r->answer == SPOTIFY_ANSWER_NUMBER ? r->number : local_place(&c->pacing);
  x->state = S_PACE_WAIT;
  return 0;
}

static spotify_action pace_counted(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  char slot[32];
  if (x->cache_res.answer != SPOTIFY_ANSWER_NUMBER) { /* no incr, or down */
    x->pace_start = local_place(&c->pacing);
    x->state = S_PACE_WAIT;
    return 0;
  }
  long long k = (long long)x->cache_res.number;
  snprintf(slot, sizeof slot, ":%lld",
           (k % c->pacing.requests + c->pacing.requests) % c->pacing.requests);
  if (set_key(x, c->pace_key, slot) == NULL) {
    x->pace_start = local_place(&c->pacing);
    x->state = S_PACE_WAIT;
    return 0;
  }
  return cache_op(L, x, SPOTIFY_CACHE_GET, x->key, 0, S_PACE_SLOT);
}

static spotify_action pace_slot(lua_State *L, spotify_exchange *x) {
  spotify_pacing *p = &x->c->pacing;
  double prev = answer_number(x), start = wall();
  /* The margin covers the jitter between a start and its arrival. */
  if (prev > 0 && prev + p->window + PACE_MARGIN > start) start = prev + p->window + PACE_MARGIN;
  x->pace_start = start;
  if (set_entry_number(x, start, NULL) != 0) {
    x->state = S_PACE_WAIT;
    return 0;
  }
  return cache_op(L, x, SPOTIFY_CACHE_SET, x->key, ceil(2 * p->window) + 1, S_PACE_WAIT);
}

static spotify_action pace_wait(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  double wait = x->pace_start - wall();
  x->state = S_SEND;
  if (wait <= MIN_WAIT) return 0;
  if (c->limits.deadline > 0 && now() + wait > x->started + c->limits.deadline) {
    fail(x, "rate_limited", 0, "over the rate_limit budget until after the deadline", wait);
    return done(x);
  }
  rate_limited_wait(L, x, wait, "pacing");
  return SPOTIFY_ACT_WAIT;
}

/* ---- attempts ---- */

/* After a failed attempt: wait and go on at `again`, or give up with
 * x->error as it is. Returns whether it goes on. */
static int retry_later(spotify_exchange *x, int attempt, double retry_after, long status,
                       int backoff_state) {
  spotify_client *c = x->c;
  double t = now();
  double delay = spotify_retry_delay(&c->limits, attempt, retry_after, t, x->started);
  if (delay < 0) return 0;
  c->stats.retries++;
  /* A 429 means the whole app is over its limit: hold every request of
   * this client until then instead of adding to the penalty. */
  if (status == 429 && t + delay > c->blocked_until) {
    c->blocked_until = t + delay;
    c->blocked_reason = NULL;
  }
  x->wait = delay;
  x->state = backoff_state;
  spotify_error_clear(&x->error);
  return 1;
}

/* The verdict on an outcome that is not a 2xx, with x->error set. */
static spotify_verdict judge(lua_State *L, spotify_exchange *x, const spotify_outcome *o,
                             int token_endpoint) {
  if (o->status == 0) {
    spotify_verdict v = spotify_policy_failure(o->failure);
    const char *msg = v.fixed_message ? v.fixed_message : o->detail ? o->detail : v.kind;
    fail(x, v.kind, 0, msg, -1);
    x->error.at_token = token_endpoint;
    return v;
  }
  spotify_verdict v = spotify_policy_status(o->status, token_endpoint);
  spotify_error_from_response(L, &x->error, v.kind, o->status, o->body, o->len, o->retry_after);
  x->error.at_token = token_endpoint;
  if (spotify_policy_quota(o->status, x->error.reason)) {
    v.retry = 0;
    if (x->error.retry_after < 0) x->error.retry_after = SPOTIFY_QUOTA_RETRY_AFTER;
  }
  return v;
}

static void token_outcome(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  if (o->status >= 200 && o->status < 300) {
    token_answered(L, x, o);
    return;
  }
  spotify_verdict v = judge(L, x, o, 1);
  if (v.retry && retry_later(x, x->token_attempt, o->retry_after, o->status, T_BACKOFF)) return;
  x->state = T_UNLOCK; /* the renewal failed: x->error is what its waiters get */
}

static void api_outcome(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  spotify_client *c = x->c;
  if (o->status >= 200 && o->status < 300) {
    x->status = o->status;
    x->body = o->body;
    x->body_len = o->len;
    x->state = S_DONE;
    return;
  }
  spotify_verdict v = judge(L, x, o, 0);
  if (v.renew && !x->renewed && !c->token.fixed) {
    x->renewed = 1;
    x->attempt--; /* a repeat with a new token is not a retry */
    spotify_token_refuse(&c->token, x->carried);
    spotify_error_clear(&x->error);
    x->state = S_TOKEN;
    return;
  }
  if (v.retry && retry_later(x, x->attempt, o->retry_after, o->status, S_BACKOFF)) {
    share_penalty(x, o, 1);
    return;
  }
  x->state = S_DONE;
  share_penalty(x, o, 0);
}

void spotify_exchange_outcome(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  spotify_client *c = x->c;
  if (x->state != S_SENT && x->state != T_SENT) return;
  if (c->closed) return; /* the next step answers closed; nothing is adopted */
  int token = x->state == T_SENT;
  c->stats.bytes_received += (long long)o->len;
  c->stats.connections_opened += o->connections;
  /* The hook may close the client: the handles live on until the driver
   * returns, and the next step answers closed. */
  observe(L, x, o, token);
  if (token)
    token_outcome(L, x, o);
  else
    api_outcome(L, x, o);
}

/* ---- the machine ---- */

static spotify_action advance(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  spotify_token *t = &c->token;
  switch (x->state) {
    case S_BEGIN:
      x->started = now();
      x->state = x->purpose == SPOTIFY_FOR_TOKEN ? S_TOKEN : S_PENALTY;
      return 0;
    case S_PENALTY:
      return check_penalty(L, x);
    case S_PENALTY_SHARED:
      return check_shared_penalty(L, x);
    case S_PACE:
      return pace(L, x);
    case S_PACED:
      return paced(L, x);
    case S_PACE_COUNTED:
      return pace_counted(L, x);
    case S_PACE_SLOT:
      return pace_slot(L, x);
    case S_PACE_WAIT:
      return pace_wait(L, x);
    case S_SHARE_PENALTY:
      return store_penalty(L, x);
    case S_TOKEN:
      return need_token(x);
    case S_TOKEN_WAIT:
      return wait_for_renewal(x);
    case S_SEND:
      if (t->auth == NULL) { /* refused by another exchange while this one was paced */
        x->state = S_TOKEN;
        return 0;
      }
      x->attempt++;
      c->stats.requests++;
      x->carried = t->serial;
      x->send.method = x->method;
      x->send.url = x->url;
      x->send.auth = t->auth;
      x->send.body = NULL;
      x->send.body_len = 0;
      x->state = S_SENT;
      return SPOTIFY_ACT_SEND;
    case S_SENT:
    case T_SENT:
      /* Driven on without an outcome: the driver lost the transfer. */
      fail(x, "network", 0, "the request was never answered", -1);
      if (x->state == T_SENT) {
        x->state = T_UNLOCK;
        return 0;
      }
      return done(x);
    case S_BACKOFF:
      x->state = S_PENALTY;
      return SPOTIFY_ACT_WAIT;
    case S_DONE:
      return SPOTIFY_ACT_DONE;
    case T_LOOK:
      return cache_op(L, x, SPOTIFY_CACHE_GET, c->token_key, 0, T_LOOKED);
    case T_LOOKED:
      if (take_from_cache(L, x)) {
        x->state = T_UNLOCKED;
        return 0;
      }
      return cache_op(L, x, SPOTIFY_CACHE_LOCK, c->lock_key, c->lock_ttl, T_LOCKED);
    case T_LOCKED:
      if (x->cache_res.answer == SPOTIFY_ANSWER_TRUE) {
        x->lock_held = 1;
        /* Another process may have stored a token and released the lock
         * between our first look and taking it: look again. */
        return cache_op(L, x, SPOTIFY_CACHE_GET, c->token_key, 0, T_RELOOKED);
      }
      if (x->cache_res.answer == SPOTIFY_ANSWER_FALSE) {
        x->give_up = now() + c->lock_ttl;
        x->poll_step = TOKEN_POLL;
        x->state = T_OTHER_WAIT;
      } else {
        x->state = T_FETCH; /* no lock, or a cache that is down */
      }
      return 0;
    case T_RELOOKED:
      x->state = take_from_cache(L, x) ? T_UNLOCK : T_FETCH;
      return 0;
    case T_OTHER_WAIT:
      if (now() >= x->give_up) {
        x->state = T_FETCH;
        return 0;
      }
      x->wait = x->poll_step;
      renewer_alive(x, x->wait + c->lock_ttl);
      x->state = T_OTHER_LOOK;
      return SPOTIFY_ACT_WAIT;
    case T_OTHER_LOOK:
      return cache_op(L, x, SPOTIFY_CACHE_GET, c->token_key, 0, T_OTHER_LOOKED);
    case T_OTHER_LOOKED:
      if (take_from_cache(L, x)) {
        x->state = T_UNLOCKED;
        return 0;
      }
      x->poll_step = fmin(x->poll_step * 2, TOKEN_POLL_MAX);
      x->state = T_OTHER_WAIT;
      return 0;
    case T_FETCH:
      c->stats.token_fetches++;
      x->token_attempt = 0;
      x->state = T_SEND;
      return 0;
    case T_SEND:
      return send_token_request(x);
    case T_BACKOFF:
      renewer_alive(x, x->wait + c->lock_ttl);
      x->state = T_SEND;
      return SPOTIFY_ACT_WAIT;
    case T_STORE:
      return cache_op(L, x, SPOTIFY_CACHE_SET, c->token_key, x->entry_ttl, T_UNLOCK);
    case T_UNLOCK:
      if (!x->lock_held) {
        x->state = T_UNLOCKED;
        return 0;
      }
      x->lock_held = 0;
      return cache_op(L, x, SPOTIFY_CACHE_UNLOCK, c->lock_key, 0, T_UNLOCKED);
    case T_UNLOCKED:
      end_renewal(x);
      if (x->error.kind) return done(x);
      return token_ready(x);
    default:
      fail(x, "network", 0, "exchange in an unknown state", -1);
      return done(x);
  }
}

spotify_action spotify_exchange_next(lua_State *L, spotify_exchange *x) {
  for (;;) {
    if (x->c->closed && x->state != S_DONE) {
      spotify_exchange_abandon(L, x);
      fail(x, "closed", 0, "client is closed", -1);
      return done(x);
    }
    spotify_action a = advance(L, x);
    if (a) return a;
  }
}

int spotify_exchange_init(spotify_exchange *x, spotify_client *c, spotify_purpose purpose,
                          const char *method, const char *url, int lua_caches_inline) {
  spotify_exchange_free(x);
  x->c = c;
  x->purpose = purpose;
  x->lua_caches_inline = lua_caches_inline;
  x->method = strdup(method);
  x->url = strdup(url);
  x->state = S_BEGIN;
  return x->method && x->url ? 0 : -1;
}

void spotify_exchange_abandon(lua_State *L, spotify_exchange *x) {
  spotify_client *c = x->c;
  if (c == NULL) return;
  if (x->lock_held) {
    x->lock_held = 0;
    /* A Lua cache may yield, so only a native one is unlocked here; the
     * lock's TTL frees the other. */
    if (c->cache.vt && (!c->cache.may_yield || x->lua_caches_inline)) {
      spotify_cache_req rq = {.op = SPOTIFY_CACHE_UNLOCK, .key = c->lock_key};
      spotify_cache_result r;
      memset(&r, 0, sizeof r);
      spotify_cache_run(L, &c->cache, &rq, &r);
      spotify_cache_result_clear(&r);
    }
  }
  if (x->renewing) {
    /* Not a shared outcome: the waiters see the renewer gone and one of
     * them renews. */
    x->renewing = 0;
    if (c->token.renewer == x) c->token.renewer = NULL;
  }
}

void spotify_exchange_free(spotify_exchange *x) {
  if (x->c && x->c->token.renewer == x) x->c->token.renewer = NULL;
  free(x->method);
  free(x->url);
  free(x->entry);
  free(x->key);
  spotify_cache_result_clear(&x->cache_res);
  spotify_error_clear(&x->error);
  memset(x, 0, sizeof *x);
  x->error.retry_after = -1;
}
