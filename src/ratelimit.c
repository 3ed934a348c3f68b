/* The app's rate limit, as states of the machine: the 429 penalty (this
 * client's, and the one shared through the cache under budget_key) and
 * pacing (rate_limit: a shared sliding window, else this process's ring). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"
#include "policy.h"

/* x->key = prefix .. suffix: the key of the next cache operation. */
static const char *set_key(spotify_exchange *x, const char *prefix, const char *suffix) {
  char *k = malloc(strlen(prefix) + strlen(suffix) + 1);
  if (k == NULL) return NULL;
  strcat(strcpy(k, prefix), suffix);
  free(x->key);
  x->key = k;
  return k;
}

/* x->entry = two numbers as text, and a quota's reason after them: the
 * value of the next cache set. */
static int set_entry_numbers(spotify_exchange *x, double v, double w, const char *reason) {
  char buf[80];
  /* At most 24 characters a number, whatever they are; a reason is one of
   * policy.c's. */
  int n =
      snprintf(buf, sizeof buf, "%.17g %.17g%s%s", v, w, reason ? " " : "", reason ? reason : "");
  if (n < 0 || (size_t)n >= sizeof buf) return -1;
  char *e = malloc((size_t)n + 1);
  if (e == NULL) return -1;
  memcpy(e, buf, (size_t)n + 1);
  free(x->entry);
  x->entry = e;
  x->entry_len = (size_t)n;
  return 0;
}

/* The next number of a stored value at *s, moving *s past it; NAN when
 * there is none. */
static double next_number(const char **s) {
  char *end;
  while (**s == ' ') (*s)++;
  double v = strtod(*s, &end);
  if (end == *s) return NAN;
  *s = end;
  return v;
}

/* How long a shared penalty holds this client from `now` (wall clock),
 * and for a quota, its reason. The entry is "until duration [reason]":
 * the end on its writer's clock and the penalty the writer saw. A writer's
 * clock may be off by hours, so the wait is never longer than the
 * penalty it saw, nor than the longest penalty there is; a value that is
 * not finite holds nothing. */
static double penalty_wait(const char *s, double now, const char **reason) {
  double until = next_number(&s);
  const char *rest = s;
  double d = next_number(&rest);
  if (d != d)
    d = PENALTY_MAX; /* no duration: a reason follows, or nothing */
  else
    s = rest;
  while (*s == ' ') s++;
  *reason = spotify_policy_quota(429, s);
  if (!isfinite(until) || !isfinite(d)) return 0;
  double wait = until - now;
  if (d > PENALTY_MAX) d = PENALTY_MAX;
  return wait > d ? d : wait;
}

/* A pacing slot "start lead": a request's start on its writer's clock and
 * how far ahead of that clock it was (a queue's depth). The lead is
 * trusted, the start only as far as it agrees with this clock: a writer
 * whose clock is ahead cannot stall this one beyond its queue. */
static double slot_start(const spotify_cache_result *r, double now) {
  if (r->answer != SPOTIFY_ANSWER_STRING) return 0;
  const char *s = r->str;
  double start = next_number(&s), lead = next_number(&s);
  if (!isfinite(start)) return 0;
  if (!isfinite(lead) || lead < 0) lead = 0;
  return start > now + lead ? now + lead : start;
}

/* A wait for the app's rate limit: counted, and told to on_request as
 * {event = "rate_limited_wait", reason = "penalty" | "pacing", wait = s}. */
static void rate_limited_wait(lua_State *L, spotify_exchange *x, double wait, const char *reason) {
  spotify_machine *m = x->m;
  m->stats.rate_limited_waits++;
  m->stats.rate_limited_wait_s += wait;
  x->wait = wait;
  if (m->on_request_ref == LUA_NOREF || m->on_request_ref == LUA_REFNIL) return;
  lua_createtable(L, 0, 5);
  spotify_machine_set_string(L, "event", "rate_limited_wait");
  spotify_machine_set_string(L, "reason", reason);
  spotify_machine_set_number(L, "wait", wait);
  spotify_machine_set_string(L, "method", x->method);
  spotify_machine_set_string(L, "url", x->url);
  spotify_machine_call_hook(L, m);
}

/* Hold the call for an earlier 429, or fail it at once when the wait does
 * not fit max_retry_after or the deadline, or when it is a spent quota
 * (`reason`): hours long, never waited for inside a call. */
static spotify_action hold_for_penalty(lua_State *L, spotify_exchange *x, double wait,
                                       const char *reason) {
  spotify_machine *m = x->m;
  if (x->stale && spotify_machine_answer_stale(x)) return done(x); /* stale_if_error: no wait */
  if (reason) {
    if (now() + wait > m->blocked_until) {
      m->blocked_until = now() + wait;
      m->blocked_reason = reason;
    }
    fail(x, "rate_limited", 0, "the app's quota is spent: no request before an earlier Retry-After",
         wait);
    spotify_error_set_reason(&x->error, reason);
    return done(x);
  }
  if (!spotify_penalty_fits(&m->limits, wait, now(), x->started)) {
    fail(x, "rate_limited", 0, "rate limited: waiting for an earlier Retry-After", wait);
    return done(x);
  }
  rate_limited_wait(L, x, wait, "penalty");
  x->state = S_PENALTY;
  return SPOTIFY_ACT_WAIT;
}

spotify_action spotify_ratelimit_check_penalty(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  double wait = m->blocked_until - now();
  if (wait > MIN_WAIT) return hold_for_penalty(L, x, wait, m->blocked_reason);
  /* With rate_limit, the cache's pace method checks the shared penalty
   * with the pacing, right before sending: one call for both. */
  if (!spotify_machine_sharing(m) || (m->pacing.requests && !m->no_pace_op)) {
    x->state = S_TOKEN;
    return 0;
  }
  /* Without, a cache that paces answers the penalty alone (pace with
   * requests = 0): on its own clock, as Redis's script does. */
  return spotify_machine_cache_op(L, x, m->no_pace_op ? SPOTIFY_CACHE_GET : SPOTIFY_CACHE_PACE,
                                  m->penalty_key, 0, S_PENALTY_SHARED);
}

spotify_action spotify_ratelimit_check_shared_penalty(lua_State *L, spotify_exchange *x) {
  const spotify_cache_result *r = &x->cache_res;
  const char *reason = NULL;
  if (r->answer == SPOTIFY_ANSWER_UNSUPPORTED && x->cache_req.op == SPOTIFY_CACHE_PACE) {
    x->m->no_pace_op = 1; /* a plain get from now on */
    x->state = S_PENALTY;
    return 0;
  }
  /* A string is the penalty; a pace's number, that none holds. */
  double wait = r->answer == SPOTIFY_ANSWER_STRING ? penalty_wait(r->str, wall(), &reason) : 0;
  if (wait > MIN_WAIT) return hold_for_penalty(L, x, wait, reason);
  x->state = S_TOKEN;
  return 0;
}

/* A 429 answered: every client sharing the cache holds its requests for
 * as long as this one does; a spent quota holds this client's too. */
void spotify_ratelimit_share_penalty(spotify_exchange *x, const spotify_outcome *o, int retrying) {
  spotify_machine *m = x->m;
  if (o->status != 429) return;
  const char *quota = retrying ? NULL : spotify_policy_quota(o->status, x->error.reason);
  double d = retrying ? x->wait : x->error.retry_after;
  if (!(d > 0)) return;
  if (d > PENALTY_MAX) d = PENALTY_MAX;
  if (quota && now() + d > m->blocked_until) {
    m->blocked_until = now() + d;
    m->blocked_reason = quota;
  }
  if (!spotify_machine_sharing(m)) return;
  x->penalty_until = wall() + d;
  x->penalty_reason = quota;
  x->after_share = x->state;
  x->state = S_SHARE_PENALTY;
}

spotify_action spotify_ratelimit_store_penalty(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  /* The end on this clock and the penalty itself: a reader whose clock
   * disagrees holds no longer than the penalty (penalty_wait). */
  if (set_entry_numbers(x, x->penalty_until, x->penalty_until - wall(), x->penalty_reason) != 0) {
    x->state = x->after_share;
    return 0;
  }
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_SET, m->penalty_key,
                                  ceil(x->penalty_until - wall()), x->after_share);
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
spotify_action spotify_ratelimit_pace(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  x->state = S_PACE_WAIT;
  if (spotify_machine_sharing(m) && !m->no_pace_op)
    return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_PACE, m->penalty_key, 0, S_PACED);
  if (!spotify_machine_sharing(m) || set_key(x, m->pace_key, ":n") == NULL) {
    x->pace_start = local_place(&m->pacing);
    return 0;
  }
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_INCR, x->key, PACE_COUNTER_TTL,
                                  S_PACE_COUNTED);
}

/* The cache's pace answered: a start time, or the penalty that holds the
 * request. A cache without pace gets the penalty and the pacing one call
 * each from now on, starting with this request's penalty. */
spotify_action spotify_ratelimit_paced(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  const spotify_cache_result *r = &x->cache_res;
  if (r->answer == SPOTIFY_ANSWER_UNSUPPORTED) {
    m->no_pace_op = 1;
    x->state = S_PENALTY;
    return 0;
  }
  if (r->answer == SPOTIFY_ANSWER_STRING) {
    const char *reason;
    double wait = penalty_wait(r->str, wall(), &reason);
    if (wait > MIN_WAIT) return hold_for_penalty(L, x, wait, reason);
  }
  /* A start time; else the cache is down, or its penalty ended meanwhile:
   * the process paces itself. The start is on this clock as it read when
   * the cache was asked (rq->now); a cache that keeps time itself (Redis's
   * server) counted from a later moment, when its script ran, so the
   * start is moved on by the time the call took: late by the reply's way
   * back at most, never early. */
  double start = r->answer == SPOTIFY_ANSWER_NUMBER ? r->number + (wall() - x->cache_req.now) : NAN;
  /* A cache of the user's may answer anything: a start that is no time
   * within a day is none (the process paces itself). */
  x->pace_start = isfinite(start) && start < wall() + PENALTY_MAX ? start : local_place(&m->pacing);
  x->state = S_PACE_WAIT;
  return 0;
}

spotify_action spotify_ratelimit_pace_counted(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  char slot[32];
  if (x->cache_res.answer != SPOTIFY_ANSWER_NUMBER) { /* no incr, or down */
    x->pace_start = local_place(&m->pacing);
    x->state = S_PACE_WAIT;
    return 0;
  }
  double n = x->cache_res.number;
  if (!isfinite(n) || fabs(n) > 9e15) { /* a counter no cache of ours answers */
    x->pace_start = local_place(&m->pacing);
    x->state = S_PACE_WAIT;
    return 0;
  }
  long long k = (long long)n;
  snprintf(slot, sizeof slot, ":%lld",
           (k % m->pacing.requests + m->pacing.requests) % m->pacing.requests);
  if (set_key(x, m->pace_key, slot) == NULL) {
    x->pace_start = local_place(&m->pacing);
    x->state = S_PACE_WAIT;
    return 0;
  }
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_GET, x->key, 0, S_PACE_SLOT);
}

spotify_action spotify_ratelimit_pace_slot(lua_State *L, spotify_exchange *x) {
  spotify_pacing *p = &x->m->pacing;
  double now = wall(), start = now, prev = slot_start(&x->cache_res, now);
  /* The margin covers the jitter between a start and its arrival. */
  if (prev > 0 && prev + p->window + PACE_MARGIN > start) start = prev + p->window + PACE_MARGIN;
  x->pace_start = start;
  if (set_entry_numbers(x, start, start - now, NULL) != 0) {
    x->state = S_PACE_WAIT;
    return 0;
  }
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_SET, x->key, ceil(2 * p->window) + 1,
                                  S_PACE_WAIT);
}

spotify_action spotify_ratelimit_pace_wait(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  double wait = x->pace_start - wall();
  x->state = S_SEND;
  if (wait <= MIN_WAIT) return 0;
  if (m->limits.deadline > 0 && now() + wait > x->started + m->limits.deadline) {
    fail(x, "rate_limited", 0, "over the rate_limit budget until after the deadline", wait);
    return done(x);
  }
  rate_limited_wait(L, x, wait, "pacing");
  return SPOTIFY_ACT_WAIT;
}
