/* The exchange machine (its rate limit states: ratelimit.c). States run in
 * order; each either moves on at once (returns 0) or stops at an action
 * for the driver. */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"
#include "responses.h"
#include "spotify.h"

/* An API GET in flight that identical GETs of the same driver group ride
 * on: the leader's outcome, copied, is every follower's. */
typedef struct spotify_flight {
  struct spotify_flight *next;
  char *url;
  int group, users, finished;
  spotify_exchange *leader; /* NULL once it finished or gave up */
  double alive_until;       /* monotonic: a leader not driven until then hangs */
  char *body;
  size_t len;
  spotify_error error;
} spotify_flight;

/* A key whose expired answer was handed out (stale_while_revalidate): the
 * driver renews it. While one renewal runs the key is not queued again;
 * a renewal that never ends (its driver gone) stops counting after a
 * while, so the key is renewed again. */
typedef struct spotify_revalidation {
  struct spotify_revalidation *next;
  char *url, *name;
  double running_since; /* monotonic; 0: waits for a driver */
} spotify_revalidation;

/* ---- results ---- */

/* ---- observing: on_request and cache errors, under pcall ---- */

void spotify_machine_call_hook(lua_State *L, spotify_machine *m) {
  /* table on top */
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->on_request_ref);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 0, 0) != 0) lua_pop(L, 1); /* a hook that raises changes nothing */
}

void spotify_machine_set_string(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

void spotify_machine_set_number(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void observe(lua_State *L, spotify_exchange *x, const spotify_outcome *o, int token) {
  spotify_machine *m = x->m;
  if (m->on_request_ref == LUA_NOREF || m->on_request_ref == LUA_REFNIL) return;
  lua_createtable(L, 0, 6);
  spotify_machine_set_string(L, "method", token ? "POST" : x->method);
  spotify_machine_set_string(L, "url", token ? m->token_url : x->url);
  lua_pushinteger(L, token ? x->token_attempt : x->attempt);
  lua_setfield(L, -2, "attempt");
  spotify_machine_set_number(L, "elapsed", o->elapsed);
  if (o->status) {
    lua_pushinteger(L, (lua_Integer)o->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)o->len);
    lua_setfield(L, -2, "bytes");
  } else {
    spotify_machine_set_string(L, "error", spotify_policy_failure(o->failure).kind);
  }
  spotify_machine_call_hook(L, m);
}

/* Push s with every form of secret replaced by "<token>" (errors.c). */
static void push_redacted(lua_State *L, const char *s, const char *secret) {
  spotify_push_redacted(L, s, secret);
}

/* A cache that fails never fails the call: it is counted and reported. A
 * cache's message may quote the value it was given, which holds the token. */
static void cache_failed(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  m->stats.cache_errors++;
  m->cache_retry_at = now() + CACHE_RETRY;
  if (m->cache_down) return; /* reported once per outage */
  m->cache_down = 1;
  if (m->on_request_ref == LUA_NOREF || m->on_request_ref == LUA_REFNIL) return;
  const char *msg = x->cache_res.str ? x->cache_res.str : "cache: out of memory";
  lua_createtable(L, 0, 3);
  spotify_machine_set_string(L, "event", "cache_error");
  spotify_machine_set_string(L, "op", spotify_cache_op_names[x->cache_req.op]);
  push_redacted(L, msg, m->token.value);
  push_redacted(L, lua_tostring(L, -1), m->token.refused);
  lua_remove(L, -2);
  lua_setfield(L, -2, "message");
  spotify_machine_call_hook(L, m);
}

/* ---- cache operations ---- */

/* A cache that is not used (a file cache met a file it does not trust)
 * says so once, as a "cache_warning" event: a miss, never an error. */
static void cache_noted(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  if (m->on_request_ref == LUA_NOREF || m->on_request_ref == LUA_REFNIL) return;
  lua_createtable(L, 0, 3);
  spotify_machine_set_string(L, "event", "cache_warning");
  spotify_machine_set_string(L, "op", spotify_cache_op_names[x->cache_req.op]);
  spotify_machine_set_string(L, "message", x->cache_res.note);
  spotify_machine_call_hook(L, m);
}

static void cache_answered(lua_State *L, spotify_exchange *x) {
  if (x->cache_res.note) cache_noted(L, x);
  if (x->cache_res.answer == SPOTIFY_ANSWER_FAILED)
    cache_failed(L, x);
  else if (x->cache_res.answer != SPOTIFY_ANSWER_UNSUPPORTED)
    x->m->cache_down = 0;
}

/* May the penalty and the pacing go through the cache now? Not without a
 * client ID, nor for a moment after the cache failed. */
int spotify_machine_sharing(const spotify_machine *m) {
  return m->penalty_key && m->cache.vt && !(m->cache_down && now() < m->cache_retry_at);
}

/* x->cache_req made afresh for op on key; a set stores x->entry. */
static spotify_cache_req *new_request(spotify_exchange *x, spotify_cache_op op, const char *key,
                                      double ttl) {
  spotify_cache_req *rq = &x->cache_req;
  memset(rq, 0, sizeof *rq);
  rq->op = op;
  rq->key = key;
  rq->ttl = ttl;
  if (op == SPOTIFY_CACHE_SET) {
    rq->value = x->entry;
    rq->len = x->entry_len;
  }
  return rq;
}

/* Ask the cache; native caches (and Lua ones, where the driver allows)
 * answer at once, else the driver is asked to. */
spotify_action spotify_machine_cache_op(lua_State *L, spotify_exchange *x, spotify_cache_op op,
                                        const char *key, double ttl, int next) {
  spotify_cache_req *rq = new_request(x, op, key, ttl);
  if (op == SPOTIFY_CACHE_INCR) {
    rq->delta = 1;
  } else if (op == SPOTIFY_CACHE_PACE) {
    rq->pace_key = x->m->pace_key;
    rq->requests = x->m->pacing.requests;
    rq->window = x->m->pacing.window;
    rq->margin = PACE_MARGIN;
    rq->now = spotify_wall_time();
  }
  x->state = next;
  spotify_cache_result_clear(&x->cache_res);
  if (x->m->cache.vt == NULL) { /* no cache bound (core.new without one) */
    x->cache_res.answer = SPOTIFY_ANSWER_UNSUPPORTED;
    return 0;
  }
  if (x->m->cache.may_yield && !x->lua_caches_inline) return SPOTIFY_ACT_CACHE;
  spotify_cache_run(L, &x->m->cache, rq, &x->cache_res);
  cache_answered(L, x);
  return 0;
}

void spotify_exchange_cache_answer(lua_State *L, spotify_exchange *x, spotify_cache_result *r) {
  spotify_cache_result_clear(&x->cache_res);
  x->cache_res = *r;
  memset(r, 0, sizeof *r);
  if (x->on_store) { /* the response store: a failure is a miss, not the token cache's outage */
    x->on_store = 0;
    return;
  }
  cache_answered(L, x);
}

/* ---- attempts ---- */

/* ---- the response cache ---- */

static int copy_text(char **dst, size_t *dst_len, const char *text, size_t len) {
  char *s = malloc(len + 1);
  if (s == NULL) return 0;
  memcpy(s, text, len);
  s[len] = '\0';
  free(*dst);
  *dst = s;
  *dst_len = len;
  return 1;
}

/* Answer with a copy of text: the cache may drop its entry before the
 * driver decodes it. */
static int answer_with(spotify_exchange *x, const char *text, size_t len) {
  if (!copy_text(&x->answer, &x->answer_len, text, len)) return 0;
  x->status = 200;
  x->body = x->answer;
  x->body_len = len;
  return 1;
}

static void keep_stale(spotify_exchange *x, const spotify_rlook *e) {
  if (x->stale == NULL && e->stale_until > wall())
    copy_text(&x->stale, &x->stale_len, e->text, e->len);
}

/* An expired answer with a validator: the request asks whether it changed. */
static void keep_validated(spotify_exchange *x, const spotify_rlook *e) {
  if (x->cond_text || (e->etag == NULL && e->last_modified == NULL)) return;
  size_t n;
  if (!copy_text(&x->cond_text, &n, e->text, e->len)) return;
  x->cond_len = n;
  x->cond_etag = e->etag ? strdup(e->etag) : NULL;
  x->cond_lm = e->last_modified ? strdup(e->last_modified) : NULL;
  if ((e->etag && x->cond_etag == NULL) || (e->last_modified && x->cond_lm == NULL)) {
    free(x->cond_text); /* out of memory: an ordinary request */
    free(x->cond_etag);
    free(x->cond_lm);
    x->cond_text = x->cond_etag = x->cond_lm = NULL;
  }
}

/* Decode text for the caller before it is kept, or taken from the store:
 * a 200 that is not the JSON expected (a proxy's HTML page, a JSON
 * string) is never kept, and the decoded answer is the one the caller
 * gets (spotify_exchange_take_value), so nothing is decoded twice. */
static int decode_answer(lua_State *L, spotify_exchange *x, const char *text, size_t len) {
  int top = lua_gettop(L);
  spotify_exchange_drop_value(L, x);
  if (spotify_json_decode(L, text, len) != 1 || !lua_istable(L, -1)) {
    lua_settop(L, top);
    return 0;
  }
  x->value_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

int spotify_machine_decode_answer(lua_State *L, spotify_exchange *x, const char *text, size_t len) {
  return decode_answer(L, x, text, len);
}

int spotify_exchange_take_value(lua_State *L, spotify_exchange *x) {
  if (x->value_ref <= 0) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->value_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, x->value_ref);
  x->value_ref = 0;
  return 1;
}

void spotify_exchange_drop_value(lua_State *L, spotify_exchange *x) {
  if (x->value_ref <= 0) return;
  luaL_unref(L, LUA_REGISTRYINDEX, x->value_ref);
  x->value_ref = 0;
}

/* Ask the response store; like cache_op, but a failure is only a miss. */
static spotify_action store_op(lua_State *L, spotify_exchange *x, spotify_cache_op op,
                               const char *key, double ttl, int next) {
  const spotify_cache *store = &x->m->responses->store;
  spotify_cache_req *rq = new_request(x, op, key, ttl);
  x->state = next;
  spotify_cache_result_clear(&x->cache_res);
  if (store->may_yield && !x->lua_caches_inline) {
    x->on_store = 1;
    return SPOTIFY_ACT_CACHE;
  }
  spotify_cache_run(L, store, rq, &x->cache_res);
  return 0;
}

spotify_action spotify_machine_store_op(lua_State *L, spotify_exchange *x, spotify_cache_op op,
                                        const char *key, double ttl, int next) {
  return store_op(L, x, op, key, ttl, next);
}

char *spotify_exchange_answer_key(spotify_machine *m, const char *url) {
  const char *scope = spotify_token_scope(&m->token);
  if (m->token.fixed && scope == NULL) return NULL; /* out of memory: keep nothing */
  return spotify_responses_variant(url, m->language, scope);
}

/* ---- stale while revalidate ---- */

static double renewal_bound(const spotify_machine *m) {
  return 2 * m->lock_ttl + m->limits.deadline + 1;
}

void spotify_machine_queue_revalidation(spotify_machine *m, const char *url, const char *name) {
  for (spotify_revalidation *v = m->revalidations; v; v = v->next)
    if (strcmp(v->url, url) == 0) {
      if (v->running_since > 0 && now() > v->running_since + renewal_bound(m))
        v->running_since = 0; /* its renewal was lost: queue it again */
      return;
    }
  spotify_revalidation *v = calloc(1, sizeof *v);
  if (v == NULL || (v->url = strdup(url)) == NULL || (name && (v->name = strdup(name)) == NULL)) {
    if (v) free(v->url);
    free(v);
    return; /* out of memory: the entry is renewed once it is a miss */
  }
  v->next = m->revalidations;
  m->revalidations = v;
}

int spotify_machine_next_revalidation(spotify_machine *m, const char **url, const char **name) {
  for (spotify_revalidation *v = m->revalidations; v; v = v->next)
    if (v->running_since == 0) {
      v->running_since = now();
      *url = v->url;
      *name = v->name;
      return 1;
    }
  return 0;
}

static void free_revalidation(spotify_revalidation *v) {
  free(v->url);
  free(v->name);
  free(v);
}

void spotify_machine_free_revalidations(spotify_machine *m) {
  while (m->revalidations) {
    spotify_revalidation *v = m->revalidations;
    m->revalidations = v->next;
    free_revalidation(v);
  }
}

void spotify_exchange_revalidate(spotify_exchange *x) {
  x->revalidating = 1;
}

/* A renewal ended (answered, failed, dropped): its key may be queued again. */
static void revalidation_ended(spotify_exchange *x) {
  if (!x->revalidating || x->m == NULL) return;
  x->revalidating = 0;
  for (spotify_revalidation **p = &x->m->revalidations; *p; p = &(*p)->next)
    if (strcmp((*p)->url, x->url) == 0) {
      spotify_revalidation *v = *p;
      *p = v->next;
      free_revalidation(v);
      return;
    }
}

/* An expired answer handed out at once (stale_while_revalidate): counted
 * as a stale answer, and its URL queued for one renewal. */
static int handed_out_stale(spotify_exchange *x, const spotify_rlook *e) {
  if (x->revalidating || !spotify_responses_swr(x->m->responses, e->fresh_until, wall()) ||
      !answer_with(x, e->text, e->len))
    return 0;
  x->m->stats.response_stale++;
  spotify_machine_queue_revalidation(x->m, x->url, x->name);
  return 1;
}

static spotify_action look_response(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  spotify_responses *r = m->responses;
  if (x->compose) return spotify_compose_look(L, x);
  x->state = S_COALESCE;
  if (x->ttl == 0 || strcmp(x->method, "GET") != 0) return 0;
  free(x->akey);
  free(x->rkey);
  x->rkey = NULL;
  x->akey = spotify_exchange_answer_key(m, x->url);
  if (x->akey == NULL) return 0;
  x->rkey = spotify_responses_key(x->akey);
  if (x->rkey == NULL) return 0;
  spotify_rlook e;
  if (spotify_responses_find(L, r, x->akey, &e)) {
    if (e.fresh_until > wall() && answer_with(x, e.text, e.len)) {
      m->stats.response_hits++;
      x->from_lru = 1;
      return done(x);
    }
    if (handed_out_stale(x, &e)) {
      x->from_lru = 1;
      return done(x);
    }
    keep_stale(x, &e);
    keep_validated(x, &e);
  }
  if (r->store.vt == NULL) return 0;
  return store_op(L, x, SPOTIFY_CACHE_GET, x->rkey, 0, S_RESPONSE_SHARED);
}

static spotify_action shared_response(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  const spotify_cache_result *res = &x->cache_res;
  spotify_rlook e;
  x->state = S_COALESCE;
  if (res->answer != SPOTIFY_ANSWER_STRING || !spotify_responses_parse(res->str, res->len, &e))
    return 0;
  if (e.fresh_until > wall()) {
    /* what another writer kept is checked as a fresh answer is: one
     * that does not decode is a miss */
    if (!decode_answer(L, x, e.text, e.len)) return 0;
    if (answer_with(x, e.text, e.len)) {
      spotify_responses_put(L, m->responses, x->akey, x->answer, x->answer_len, e.fresh_until,
                            e.stale_until);
      m->stats.response_shared_hits++;
      return done(x);
    }
    spotify_exchange_drop_value(L, x);
  } else if (!x->revalidating && spotify_responses_swr(m->responses, e.fresh_until, wall()) &&
             decode_answer(L, x, e.text, e.len)) {
    if (handed_out_stale(x, &e)) {
      spotify_responses_put(L, m->responses, x->akey, x->answer, x->answer_len, e.fresh_until,
                            e.stale_until);
      return done(x);
    }
    spotify_exchange_drop_value(L, x);
  }
  keep_stale(x, &e);
  keep_validated(x, &e);
  return 0;
}

/* An answer kept for ttl seconds: fresh, usable stale, and with a
 * validator kept as long again (at least REVALIDATE_KEEP) to be asked
 * about with a conditional request. */
static void kept_times(const spotify_exchange *x, spotify_rlook *e, double ttl) {
  const spotify_responses *r = x->m->responses;
  e->fresh_until = wall() + ttl;
  e->stale_until = spotify_responses_stale_until(r, e->fresh_until);
  e->keep_until = e->stale_until;
  if (e->etag || e->last_modified) e->keep_until += fmin(fmax(ttl, REVALIDATE_KEEP), r->max_ttl);
}

/* On to the store (x->answer holds the text): S_RESPONSE_STORE sets it. */
static void store_kept(spotify_exchange *x, spotify_rlook *e) {
  free(x->entry);
  x->entry = spotify_responses_entry_validated(x->answer, x->answer_len, e, &x->entry_len);
  x->entry_ttl = ceil(e->keep_until - wall());
  if (x->entry) x->state = S_RESPONSE_STORE;
}

/* A 304 to a conditional request: the expired answer it asked about is
 * the answer, fresh again in both tiers (as a 200 would be: no-store
 * keeps nothing, private stays in this process); the process tier's
 * decoded answer is handed out as is (no decoding). A 304 to a request
 * that named no validator is the server's fault. */
static void not_modified(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  spotify_machine *m = x->m;
  spotify_responses *r = m->responses;
  x->state = S_DONE;
  if (x->cond_text == NULL) {
    fail(x, "decode", o->status, "304 Not Modified to a request that named no validator", -1);
    return;
  }
  if (!answer_with(x, x->cond_text, x->cond_len)) {
    fail(x, "network", 0, "out of memory", -1);
    return;
  }
  m->stats.response_revalidated++;
  double ttl = fmin(x->ttl > 0 ? x->ttl : o->max_age, r->max_ttl);
  if (x->rkey == NULL || !(ttl > 0) || (o->cache_control & SPOTIFY_CC_NO_STORE)) return;
  /* a 304 may name newer validators */
  spotify_rlook e = {.etag = o->etag ? o->etag : x->cond_etag,
                     .last_modified = o->last_modified ? o->last_modified : x->cond_lm};
  kept_times(x, &e, ttl);
  if (!spotify_responses_renew(r, x->akey, x->answer, x->answer_len, e.fresh_until, e.stale_until,
                               e.keep_until))
    spotify_responses_put_validated(L, r, x->akey, x->answer, x->answer_len, e.fresh_until,
                                    e.stale_until, e.keep_until, e.etag, e.last_modified);
  x->from_lru = 1; /* push_copy decodes only when the tier has no decoded answer yet */
  if (r->store.vt && !(o->cache_control & SPOTIFY_CC_PRIVATE)) store_kept(x, &e);
}

/* A 200 of a cached method: into the process tier, and on to the store. */
static void keep_response(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  spotify_responses *r = x->m->responses;
  if (x->compose) {
    spotify_compose_answered(L, x, o);
    return;
  }
  double ttl = fmin(x->ttl > 0 ? x->ttl : o->max_age, r->max_ttl);
  /* no-store is never kept, whatever ttl the method has; an answer above
   * max_entry_bytes is handed out, not kept */
  if (x->rkey == NULL || !(ttl > 0) || (o->cache_control & SPOTIFY_CC_NO_STORE) ||
      (r->max_entry_bytes > 0 && o->len > r->max_entry_bytes) ||
      !decode_answer(L, x, o->body, o->len))
    return;
  spotify_rlook e = {
      .text = o->body, .len = o->len, .etag = o->etag, .last_modified = o->last_modified};
  kept_times(x, &e, ttl);
  spotify_responses_put_validated(L, r, x->akey, o->body, o->len, e.fresh_until, e.stale_until,
                                  e.keep_until, o->etag, o->last_modified);
  /* private never reaches the shared tier. The outcome's body is gone
   * once a Lua store has been asked. */
  if (r->store.vt == NULL || (o->cache_control & SPOTIFY_CC_PRIVATE) ||
      !answer_with(x, o->body, o->len))
    return;
  store_kept(x, &e);
}

/* An expired answer (stale_if_error) in place of a failure or a wait. */
int spotify_machine_answer_stale(spotify_exchange *x) {
  if (x->stale == NULL || !answer_with(x, x->stale, x->stale_len)) return 0;
  spotify_error_clear(&x->error);
  x->m->stats.response_stale++;
  return 1;
}

/* Spotify failed (5xx, 429, the network): an expired answer stands in. A
 * 429 still holds this client's next requests and the fleet's, a spent
 * quota (never retried) as much as any: its penalty is shared from the
 * error before the stale answer clears it. */
static int stand_in(spotify_exchange *x, const spotify_outcome *o) {
  if (x->stale == NULL || !answer_with(x, x->stale, x->stale_len)) return 0;
  spotify_machine *m = x->m;
  if (o->status == 429 && o->retry_after > 0 && now() + o->retry_after > m->blocked_until)
    m->blocked_until = now() + o->retry_after;
  x->state = S_DONE;
  spotify_ratelimit_share_penalty(x, o, 0);
  spotify_error_clear(&x->error);
  m->stats.response_stale++;
  return 1;
}

void spotify_exchange_named(spotify_exchange *x, const char *name) {
  if (x->m->responses) x->ttl = spotify_responses_ttl(x->m->responses, name);
  free(x->name);
  x->name = name ? strdup(name) : NULL; /* out of memory: a renewal has the default ttl */
  spotify_compose_named(x, name);
}

/* ---- coalescing ---- */

static void leave_flight(spotify_exchange *x) {
  spotify_flight *f = x->flight;
  if (f == NULL) return;
  x->flight = NULL;
  x->following = 0;
  if (f->leader == x) f->leader = NULL;
  if (--f->users > 0) return;
  for (spotify_flight **p = &x->m->flights; *p; p = &(*p)->next)
    if (*p == f) {
      *p = f->next;
      break;
    }
  free(f->url);
  free(f->body);
  spotify_error_clear(&f->error);
  free(f);
}

/* The leader is done: its outcome is its followers'. */
static void land(spotify_exchange *x) {
  spotify_flight *f = x->flight;
  if (x->following || f->finished) return;
  size_t raw_len = 0;
  const char *raw = spotify_compose_raw(x, &raw_len); /* each follower assembles its own */
  if (x->compose && raw == NULL && !x->error.kind) {
    /* Answered from the store or a stale stand-in: the text is in the
     * leader's own order, not the shared URL's. Each follower asks (or
     * looks in the tiers the leader just filled) on its own. */
    leave_flight(x);
    return;
  }
  f->finished = 1;
  if (x->error.kind)
    spotify_error_copy(&f->error, &x->error);
  else if (!copy_text(&f->body, &f->len, raw ? raw : x->body, raw ? raw_len : x->body_len))
    spotify_error_set(&f->error, "network", 0, "out of memory", -1);
  leave_flight(x);
}

static spotify_action join_flight(lua_State *L, spotify_exchange *x) {
  (void)L;
  spotify_machine *m = x->m;
  x->state = S_RLOCK;
  if (x->group == 0 || strcmp(x->method, "GET") != 0) return 0;
  for (spotify_flight *f = m->flights; f; f = f->next)
    if (f->leader && !f->finished && f->group == x->group && strcmp(f->url, x->url) == 0) {
      f->users++;
      x->flight = f;
      x->following = 1;
      x->state = S_FOLLOW;
      return 0;
    }
  spotify_flight *f = calloc(1, sizeof *f);
  if (f == NULL || (f->url = strdup(x->url)) == NULL) {
    free(f);
    return 0; /* alone, then */
  }
  f->error.retry_after = -1;
  f->group = x->group;
  f->leader = x;
  f->users = 1;
  f->next = m->flights;
  m->flights = f;
  x->flight = f;
  return 0;
}

static spotify_action follow(lua_State *L, spotify_exchange *x) {
  spotify_flight *f = x->flight;
  if (f->finished) {
    x->m->stats.coalesced++;
    if (f->error.kind)
      spotify_error_copy(&x->error, &f->error);
    else if (x->compose && !spotify_compose_merge(L, x, f->body, f->len, 0, 0))
      fail(x, "decode", 200, "batch answer has no array of the IDs asked", -1);
    else if (!x->compose && !answer_with(x, f->body, f->len))
      fail(x, "network", 0, "out of memory", -1);
    leave_flight(x);
    return done(x);
  }
  if (f->leader == NULL || now() > f->alive_until) {
    /* It gave up (cancelled), or hangs (a light thread killed meanwhile,
     * a started request nobody polls): ask alone, and so do the others. */
    f->leader = NULL;
    leave_flight(x);
    x->state = S_RLOCK;
    return 0;
  }
  x->wait = FOLLOW_POLL;
  return SPOTIFY_ACT_WAIT;
}

/* Across processes: the store's lock on the URL; the others poll the
 * store for the answer, as token renewal does. */
static spotify_action take_rlock(lua_State *L, spotify_exchange *x) {
  spotify_responses *r = x->m->responses;
  x->state = S_PENALTY;
  if (r == NULL || r->store.vt == NULL || x->rkey == NULL) return 0;
  if (x->rlock_key == NULL) {
    x->rlock_key = malloc(strlen(x->rkey) + 6);
    if (x->rlock_key == NULL) return 0;
    strcat(strcpy(x->rlock_key, x->rkey), ":lock");
    x->give_up = now() + x->m->lock_ttl;
    x->rpoll = TOKEN_POLL;
  }
  return store_op(L, x, SPOTIFY_CACHE_LOCK, x->rlock_key, x->m->lock_ttl, S_RLOCKED);
}

static spotify_action rlocked(lua_State *L, spotify_exchange *x) {
  spotify_cache_answer a = x->cache_res.answer;
  x->state = S_PENALTY;
  if (a == SPOTIFY_ANSWER_TRUE) {
    x->rlock_held = 1;
    /* Another process may have stored its answer and let go between our
     * look and the lock: look again. */
    return store_op(L, x, SPOTIFY_CACHE_GET, x->rkey, 0, S_RRELOOKED);
  }
  if (a == SPOTIFY_ANSWER_FALSE) x->state = S_RPOLL_WAIT;
  return 0; /* no lock, or a store that is down: ask alone */
}

/* The store's answer, when it is fresh; else x->state = otherwise. */
static spotify_action stored_answer(lua_State *L, spotify_exchange *x, int otherwise,
                                    long long *counter) {
  const spotify_cache_result *res = &x->cache_res;
  spotify_rlook e;
  x->state = otherwise;
  if (res->answer != SPOTIFY_ANSWER_STRING || !spotify_responses_parse(res->str, res->len, &e) ||
      e.fresh_until <= wall())
    return 0;
  if (x->compose) { /* another process's answer to the same IDs */
    if (!spotify_compose_merge(L, x, e.text, e.len, e.fresh_until, e.stale_until) ||
        !decode_answer(L, x, x->answer, x->answer_len))
      return 0;
    spotify_compose_keep(L, x);
    (*counter)++;
    return done(x);
  }
  if (!decode_answer(L, x, e.text, e.len)) return 0;
  if (!answer_with(x, e.text, e.len)) {
    spotify_exchange_drop_value(L, x);
    return 0;
  }
  spotify_responses_put(L, x->m->responses, x->akey, x->answer, x->answer_len, e.fresh_until,
                        e.stale_until);
  (*counter)++;
  return done(x);
}

static spotify_action rpoll_wait(lua_State *L, spotify_exchange *x) {
  (void)L;
  if (now() >= x->give_up) { /* the other process hangs: ask alone */
    x->state = S_PENALTY;
    return 0;
  }
  x->wait = x->rpoll;
  x->rpoll = fmin(x->rpoll * 2, RPOLL_MAX);
  x->state = S_RPOLL_LOOK;
  return SPOTIFY_ACT_WAIT;
}

static spotify_action let_go_rlock(lua_State *L, spotify_exchange *x) {
  x->rlock_held = 0;
  if (x->m->closed || x->m->responses == NULL) return SPOTIFY_ACT_DONE;
  /* A Lua store is asked through the driver: the body must outlive it. */
  if (!x->error.kind && x->body && x->body != x->answer && !answer_with(x, x->body, x->body_len))
    fail(x, "network", 0, "out of memory", -1);
  return store_op(L, x, SPOTIFY_CACHE_UNLOCK, x->rlock_key, 0, S_DONE);
}

/* After a failed attempt: wait and go on at `again`, or give up with
 * x->error as it is. Returns whether it goes on. */
static int retry_later(lua_State *L, spotify_exchange *x, int attempt, double retry_after,
                       long status, int backoff_state) {
  (void)L;
  spotify_machine *m = x->m;
  double t = now();
  double delay = spotify_retry_delay(&m->limits, attempt, retry_after, t, x->started);
  if (delay < 0) return 0;
  m->stats.retries++;
  /* A 429 means the whole app is over its limit: hold every request of
   * this client until then instead of adding to the penalty. */
  if (status == 429 && t + delay > m->blocked_until) {
    m->blocked_until = t + delay;
    m->blocked_reason = NULL;
  }
  /* Counted, not told to on_request: that hook sees HTTP exchanges only,
   * so a hook that counts requests counts no wait as one. */
  m->stats.retry_wait_s += delay;
  x->wait = delay;
  x->state = backoff_state;
  spotify_error_clear(&x->error);
  return 1;
}

/* The verdict on an outcome that is not a 2xx, with x->error set. */
/* A server's message may quote the token it was sent, in any form. */
static void redact_error(lua_State *L, spotify_exchange *x) {
  spotify_error *e = &x->error;
  if (e->message) {
    push_redacted(L, e->message, x->m->token.value);
    push_redacted(L, lua_tostring(L, -1), x->m->token.refused);
    spotify_error_set_message(e, lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  if (e->reason) { /* error.reason is the server's text as much as the message is */
    push_redacted(L, e->reason, x->m->token.value);
    push_redacted(L, lua_tostring(L, -1), x->m->token.refused);
    spotify_error_set_reason(e, lua_tostring(L, -1));
    lua_pop(L, 2);
  }
}

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
  redact_error(L, x);
  x->error.at_token = token_endpoint;
  if (spotify_policy_quota(o->status, x->error.reason)) {
    v.retry = 0;
    if (x->error.retry_after < 0) x->error.retry_after = SPOTIFY_QUOTA_RETRY_AFTER;
  }
  return v;
}

static void token_outcome(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  if (o->status >= 200 && o->status < 300) {
    spotify_renewal_answered(L, x, o);
    return;
  }
  spotify_verdict v = judge(L, x, o, 1);
  if (v.retry && retry_later(L, x, x->token_attempt, o->retry_after, o->status, T_BACKOFF)) return;
  x->state = T_UNLOCK; /* the renewal failed: x->error is what its waiters get */
}

static void api_outcome(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  spotify_machine *m = x->m;
  if (o->status == 304) {
    not_modified(L, x, o);
    return;
  }
  if (o->status >= 200 && o->status < 300) {
    x->status = o->status;
    x->body = o->body;
    x->body_len = o->len;
    x->state = S_DONE;
    if (m->responses && o->status == 200) keep_response(L, x, o);
    return;
  }
  spotify_verdict v = judge(L, x, o, 0);
  /* stale_if_error names 429: a spent quota's too, though it is never retried. */
  if ((v.retry || o->status == 429) && x->stale && stand_in(x, o)) return;
  if (v.renew && !x->renewed && !m->token.fixed) {
    x->renewed = 1;
    x->attempt--; /* a repeat with a new token is not a retry */
    spotify_token_refuse(&m->token, x->carried);
    spotify_error_clear(&x->error);
    x->state = S_TOKEN;
    return;
  }
  if (v.retry && retry_later(L, x, x->attempt, o->retry_after, o->status, S_BACKOFF)) {
    spotify_ratelimit_share_penalty(x, o, 1);
    return;
  }
  x->state = S_DONE;
  spotify_ratelimit_share_penalty(x, o, 0);
}

/* ---- metrics: API exchanges by outcome and time ---- */

const double spotify_duration_buckets[SPOTIFY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                          0.5,   1,    2.5,   5,    10};

/* An answer by its status class (one that is neither 2xx, 429 nor 5xx
 * counts as 4xx: the API sends no other); no answer as the policy names
 * the failure. */
static int outcome_class(const spotify_outcome *o) {
  if (o->status == 0)
    return strcmp(spotify_policy_failure(o->failure).kind, "timeout") == 0 ? SPOTIFY_OUT_TIMEOUT
                                                                           : SPOTIFY_OUT_NETWORK;
  if ((o->status >= 200 && o->status < 300) || o->status == 304) return SPOTIFY_OUT_2XX;
  if (o->status == 429) return SPOTIFY_OUT_429;
  return o->status >= 500 ? SPOTIFY_OUT_5XX : SPOTIFY_OUT_4XX;
}

static void count_outcome(spotify_machine *m, const spotify_outcome *o) {
  spotify_metrics *k = &m->metrics;
  double t = o->elapsed >= 0 ? o->elapsed : 0;
  int b = 0;
  while (b < SPOTIFY_BUCKETS && t > spotify_duration_buckets[b]) b++;
  k->outcomes[outcome_class(o)]++;
  k->buckets[b]++;
  k->seconds += t;
}

void spotify_exchange_outcome(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  spotify_machine *m = x->m;
  if (x->state != S_SENT && x->state != T_SENT) return;
  if (m->closed) return; /* the next step answers closed; nothing is adopted */
  int token = x->state == T_SENT;
  m->stats.bytes_received += (long long)o->len;
  m->stats.connections_opened += o->connections;
  /* The hook may close the client: the handles live on until the driver
   * returns, and the next step answers closed. */
  observe(L, x, o, token);
  if (!token) count_outcome(m, o);
  if (token)
    token_outcome(L, x, o);
  else
    api_outcome(L, x, o);
}

/* ---- the machine: one handler per state, advance() looks it up ---- */

static spotify_action on_s_begin(lua_State *L, spotify_exchange *x) {
  (void)L;
  x->started = now();
  x->state = x->purpose == SPOTIFY_FOR_TOKEN ? S_TOKEN : x->m->responses ? S_RESPONSE : S_COALESCE;
  return 0;
}

static spotify_action on_s_rrelooked(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  return stored_answer(L, x, S_PENALTY, &m->stats.response_shared_hits);
}

static spotify_action on_s_rpoll_look(lua_State *L, spotify_exchange *x) {
  return store_op(L, x, SPOTIFY_CACHE_GET, x->rkey, 0, S_RPOLL_LOOKED);
}

static spotify_action on_s_rpoll_looked(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  return stored_answer(L, x, S_RLOCK, &m->stats.coalesced);
}

static spotify_action on_s_response_store(lua_State *L, spotify_exchange *x) {
  return store_op(L, x, SPOTIFY_CACHE_SET, x->rkey, x->entry_ttl, S_DONE);
}

static spotify_action on_s_send(lua_State *L, spotify_exchange *x) {
  (void)L;
  spotify_machine *m = x->m;
  spotify_token *t = &m->token;
  if (t->auth == NULL && !t->none) { /* refused by another exchange while this one was paced */
    x->state = S_TOKEN;
    return 0;
  }
  x->attempt++;
  m->stats.requests++;
  x->carried = t->serial;
  x->send.method = x->method;
  x->send.url = x->url;
  x->send.auth = t->auth;
  x->send.body = NULL;
  x->send.body_len = 0;
  x->send.language = m->language;
  x->send.if_none_match = x->cond_etag;
  x->send.if_modified_since = x->cond_lm;
  x->state = S_SENT;
  return SPOTIFY_ACT_SEND;
}

static spotify_action on_s_sent(lua_State *L, spotify_exchange *x) {
  (void)L;
  /* Driven on without an outcome: the driver lost the transfer. */
  fail(x, "network", 0, "the request was never answered", -1);
  if (x->state == T_SENT) {
    x->state = T_UNLOCK;
    return 0;
  }
  return done(x);
}

static spotify_action on_s_backoff(lua_State *L, spotify_exchange *x) {
  (void)L;
  x->state = S_PENALTY;
  return SPOTIFY_ACT_WAIT;
}

static spotify_action on_s_done(lua_State *L, spotify_exchange *x) {
  if (x->rlock_held) return let_go_rlock(L, x);
  return SPOTIFY_ACT_DONE;
}

static const spotify_state_handler handlers[STATE_COUNT] = {
    [S_BEGIN] = on_s_begin,
    [S_COALESCE] = join_flight,
    [S_FOLLOW] = follow,
    [S_RLOCK] = take_rlock,
    [S_RLOCKED] = rlocked,
    [S_RRELOOKED] = on_s_rrelooked,
    [S_RPOLL_WAIT] = rpoll_wait,
    [S_RPOLL_LOOK] = on_s_rpoll_look,
    [S_RPOLL_LOOKED] = on_s_rpoll_looked,
    [S_RESPONSE] = look_response,
    [S_RESPONSE_SHARED] = shared_response,
    [S_RESPONSE_STORE] = on_s_response_store,
    [S_COMPOSE_LOOK] = spotify_compose_look_shared,
    [S_COMPOSE_LOOKED] = spotify_compose_looked,
    [S_COMPOSE_STORE] = spotify_compose_store,
    [S_PENALTY] = spotify_ratelimit_check_penalty,
    [S_PENALTY_SHARED] = spotify_ratelimit_check_shared_penalty,
    [S_PACE] = spotify_ratelimit_pace,
    [S_PACED] = spotify_ratelimit_paced,
    [S_PACE_COUNTED] = spotify_ratelimit_pace_counted,
    [S_PACE_SLOT] = spotify_ratelimit_pace_slot,
    [S_PACE_WAIT] = spotify_ratelimit_pace_wait,
    [S_SHARE_PENALTY] = spotify_ratelimit_store_penalty,
    [S_TOKEN] = spotify_renewal_need_token,
    [S_TOKEN_WAIT] = spotify_renewal_wait,
    [S_SEND] = on_s_send,
    [S_SENT] = on_s_sent,
    [T_SENT] = on_s_sent,
    [S_BACKOFF] = on_s_backoff,
    [S_DONE] = on_s_done,
    [T_LOOK] = spotify_renewal_step,
    [T_LOOKED] = spotify_renewal_step,
    [T_LOCKED] = spotify_renewal_step,
    [T_RELOOKED] = spotify_renewal_step,
    [T_OTHER_WAIT] = spotify_renewal_step,
    [T_OTHER_LOOK] = spotify_renewal_step,
    [T_OTHER_LOOKED] = spotify_renewal_step,
    [T_FETCH] = spotify_renewal_step,
    [T_SEND] = spotify_renewal_step,
    [T_BACKOFF] = spotify_renewal_step,
    [T_STORE] = spotify_renewal_step,
    [T_UNLOCK] = spotify_renewal_step,
    [T_UNLOCKED] = spotify_renewal_step,
};

static spotify_action advance(lua_State *L, spotify_exchange *x) {
  if (x->state < 0 || x->state >= STATE_COUNT || handlers[x->state] == NULL) {
    fail(x, "network", 0, "exchange in an unknown state", -1);
    return done(x);
  }
  return handlers[x->state](L, x);
}

spotify_action spotify_exchange_next(lua_State *L, spotify_exchange *x) {
  for (;;) {
    if (x->m->closed && x->state != S_DONE) {
      spotify_exchange_abandon(L, x);
      spotify_error_closed(&x->error);
      return done(x);
    }
    spotify_action a = advance(L, x);
    if (a == SPOTIFY_ACT_DONE) revalidation_ended(x);
    if (x->flight && !x->following) {
      if (a == SPOTIFY_ACT_DONE)
        land(x);
      else /* how long its followers wait without news before they ask alone */
        x->flight->alive_until = now() + (a == SPOTIFY_ACT_WAIT ? x->wait : 0) + x->m->lock_ttl + 1;
    }
    if (a) return a;
  }
}

int spotify_exchange_init(spotify_exchange *x, spotify_machine *m, spotify_purpose purpose,
                          const char *method, const char *url, int lua_caches_inline) {
  spotify_exchange_free(x);
  x->m = m;
  x->purpose = purpose;
  x->lua_caches_inline = lua_caches_inline;
  x->method = strdup(method);
  x->url = strdup(url);
  x->state = S_BEGIN;
  x->ttl = m->responses ? spotify_responses_ttl(m->responses, NULL) : 0;
  return x->method && x->url ? 0 : -1;
}

/* Let go of a lock of an abandoned exchange. A Lua cache may yield, so
 * only a native one (or one the driver lets the machine call) is unlocked
 * here; the lock's TTL frees the other. */
static void unlock_now(lua_State *L, const spotify_exchange *x, const spotify_cache *c,
                       const char *key) {
  if (c->vt == NULL || (c->may_yield && !x->lua_caches_inline)) return;
  spotify_cache_req rq = {.op = SPOTIFY_CACHE_UNLOCK, .key = key};
  spotify_cache_result res;
  memset(&res, 0, sizeof res);
  spotify_cache_run(L, c, &rq, &res);
  spotify_cache_result_clear(&res);
}

void spotify_exchange_abandon(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  if (m == NULL) return;
  spotify_exchange_drop_value(L, x);
  leave_flight(x);
  revalidation_ended(x);
  if (x->rlock_held) {
    x->rlock_held = 0;
    if (m->responses) unlock_now(L, x, &m->responses->store, x->rlock_key);
  }
  if (x->lock_held) {
    x->lock_held = 0;
    unlock_now(L, x, &m->cache, m->lock_key);
  }
  if (x->renewing) {
    /* Not a shared outcome: the waiters see the renewer gone and one of
     * them renews. */
    x->renewing = 0;
    if (m->token.renewer == x) m->token.renewer = NULL;
  }
}

void spotify_exchange_free(spotify_exchange *x) {
  if (x->m && x->m->token.renewer == x) x->m->token.renewer = NULL;
  if (x->m) leave_flight(x);
  revalidation_ended(x);
  free(x->name);
  free(x->rlock_key);
  free(x->method);
  free(x->url);
  free(x->entry);
  free(x->key);
  free(x->akey);
  free(x->rkey);
  free(x->answer);
  free(x->stale);
  spotify_compose_free(x->compose);
  free(x->cond_text);
  free(x->cond_etag);
  free(x->cond_lm);
  spotify_cache_result_clear(&x->cache_res);
  spotify_error_clear(&x->error);
  memset(x, 0, sizeof *x);
  x->error.retry_after = -1;
}
