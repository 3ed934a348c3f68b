/* Renewal: the token sub-machine of the exchange machine. One exchange of
 * a client renews (single flight); across processes the cache's lock does
 * the same: look in the cache, take the lock, look again, fetch, store,
 * unlock. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"
#include "policy.h"
#include "token.h"

/* Take the token the cache answered, if it is usable. */
static int take_from_cache(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  const spotify_cache_result *r = &x->cache_res;
  double expires_at;
  if (r->answer != SPOTIFY_ANSWER_STRING ||
      !spotify_token_entry_parse(L, r->str, r->len, &expires_at))
    return 0;
  size_t len;
  const char *tok = lua_tolstring(L, -1, &len);
  int ok = spotify_token_acceptable(&m->token, tok, expires_at, m->refresh_buffer,
                                    spotify_wall_time()) &&
           spotify_token_adopt(&m->token, tok, len, expires_at) == 0;
  lua_pop(L, 1);
  if (ok) m->stats.cache_hits++;
  return ok;
}

/* The renewal this exchange owns is over: its waiters share the outcome. */
static void end_renewal(spotify_exchange *x) {
  spotify_token *t = &x->m->token;
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
  x->state = x->m->pacing.requests ? S_PACE : S_SEND;
  return 0;
}

/* The renewer says how long it may go without news: a waiter takes over
 * only from a renewer that has gone quiet for longer than that (a started
 * request nobody polls while a blocking call waits for its token). */
static void renewer_alive(spotify_exchange *x, double seconds) {
  spotify_token *t = &x->m->token;
  if (t->renewer == x) t->renewer_alive_until = now() + seconds + 1;
}

int spotify_exchange_token_fresh(const spotify_machine *m, double now) {
  return spotify_token_fresh(&m->token, m->refresh_buffer, now);
}

spotify_action spotify_renewal_need_token(lua_State *L, spotify_exchange *x) {
  (void)L;
  spotify_machine *m = x->m;
  spotify_token *t = &m->token;
  if (spotify_exchange_token_fresh(m, spotify_wall_time())) return token_ready(x);
  if (t->fixed) return token_ready(x);
  if (t->renewer && t->renewer != x) {
    x->waited_round = t->round;
    x->state = S_TOKEN_WAIT;
    return 0;
  }
  t->renewer = x;
  renewer_alive(x, m->lock_ttl);
  x->renewing = 1;
  x->state = T_LOOK;
  return 0;
}

spotify_action spotify_renewal_wait(lua_State *L, spotify_exchange *x) {
  (void)L;
  spotify_token *t = &x->m->token;
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

static spotify_action send_token_request(lua_State *L, spotify_exchange *x) {
  (void)L;
  spotify_machine *m = x->m;
  x->token_attempt++;
  m->stats.requests++;
  renewer_alive(x, m->lock_ttl);
  x->send.method = "POST";
  x->send.url = m->token_url;
  x->send.auth = m->basic_auth;
  x->send.body = m->token_body ? m->token_body : "";
  x->send.body_len = strlen(x->send.body);
  x->send.language = NULL;
  x->send.if_none_match = x->send.if_modified_since = NULL;
  x->state = T_SENT;
  return SPOTIFY_ACT_SEND;
}

void spotify_renewal_answered(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  spotify_machine *m = x->m;
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
  int ok = spotify_token_adopt(&m->token, tok, len, expires_at) == 0;
  lua_pop(L, 1);
  if (!ok) {
    fail(x, "network", 0, "out of memory", -1);
    x->error.at_token = 1;
    x->state = T_UNLOCK;
    return;
  }
  /* The entry lives as long as the token: each reader decides with its own
   * refresh_buffer whether it is fresh enough (token.c), and an entry never
   * vanishes just as renewal falls due while a reader looks for it. */
  double ttl = floor(expires_in);
  free(x->entry);
  x->entry = ttl > 0 ? spotify_token_entry(m->token.value, expires_at, &x->entry_len) : NULL;
  x->entry_ttl = ttl;
  x->state = x->entry ? T_STORE : T_UNLOCK;
}

static spotify_action on_t_look(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_GET, m->token_key, 0, T_LOOKED);
}

static spotify_action on_t_looked(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  if (take_from_cache(L, x)) {
    x->state = T_UNLOCKED;
    return 0;
  }
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_LOCK, m->lock_key, m->lock_ttl, T_LOCKED);
}

static spotify_action on_t_locked(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  if (x->cache_res.answer == SPOTIFY_ANSWER_TRUE) {
    x->lock_held = 1;
    /* Another process may have stored a token and released the lock
     * between our first look and taking it: look again. */
    return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_GET, m->token_key, 0, T_RELOOKED);
  }
  if (x->cache_res.answer == SPOTIFY_ANSWER_FALSE) {
    x->give_up = now() + m->lock_ttl;
    x->poll_step = TOKEN_POLL;
    x->state = T_OTHER_WAIT;
  } else {
    x->state = T_FETCH; /* no lock, or a cache that is down */
  }
  return 0;
}

static spotify_action on_t_relooked(lua_State *L, spotify_exchange *x) {
  x->state = take_from_cache(L, x) ? T_UNLOCK : T_FETCH;
  return 0;
}

static spotify_action on_t_other_wait(lua_State *L, spotify_exchange *x) {
  (void)L;
  spotify_machine *m = x->m;
  if (now() >= x->give_up) {
    x->state = T_FETCH;
    return 0;
  }
  x->wait = x->poll_step;
  renewer_alive(x, x->wait + m->lock_ttl);
  x->state = T_OTHER_LOOK;
  return SPOTIFY_ACT_WAIT;
}

static spotify_action on_t_other_look(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_GET, m->token_key, 0, T_OTHER_LOOKED);
}

static spotify_action on_t_other_looked(lua_State *L, spotify_exchange *x) {
  if (take_from_cache(L, x)) {
    x->state = T_UNLOCKED;
    return 0;
  }
  x->poll_step = fmin(x->poll_step * 2, TOKEN_POLL_MAX);
  x->state = T_OTHER_WAIT;
  return 0;
}

static spotify_action on_t_fetch(lua_State *L, spotify_exchange *x) {
  (void)L;
  spotify_machine *m = x->m;
  m->stats.token_fetches++;
  x->token_attempt = 0;
  x->state = T_SEND;
  return 0;
}

static spotify_action on_t_backoff(lua_State *L, spotify_exchange *x) {
  (void)L;
  spotify_machine *m = x->m;
  renewer_alive(x, x->wait + m->lock_ttl);
  x->state = T_SEND;
  return SPOTIFY_ACT_WAIT;
}

static spotify_action on_t_store(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_SET, m->token_key, x->entry_ttl, T_UNLOCK);
}

static spotify_action on_t_unlock(lua_State *L, spotify_exchange *x) {
  spotify_machine *m = x->m;
  if (!x->lock_held) {
    x->state = T_UNLOCKED;
    return 0;
  }
  x->lock_held = 0;
  return spotify_machine_cache_op(L, x, SPOTIFY_CACHE_UNLOCK, m->lock_key, 0, T_UNLOCKED);
}

static spotify_action on_t_unlocked(lua_State *L, spotify_exchange *x) {
  (void)L;
  end_renewal(x);
  if (x->error.kind) return done(x);
  return token_ready(x);
}

static const spotify_state_handler handlers[STATE_COUNT] = {
    [T_LOOK] = on_t_look,
    [T_LOOKED] = on_t_looked,
    [T_LOCKED] = on_t_locked,
    [T_RELOOKED] = on_t_relooked,
    [T_OTHER_WAIT] = on_t_other_wait,
    [T_OTHER_LOOK] = on_t_other_look,
    [T_OTHER_LOOKED] = on_t_other_looked,
    [T_FETCH] = on_t_fetch,
    [T_SEND] = send_token_request,
    [T_BACKOFF] = on_t_backoff,
    [T_STORE] = on_t_store,
    [T_UNLOCK] = on_t_unlock,
    [T_UNLOCKED] = on_t_unlocked,
};

spotify_action spotify_renewal_step(lua_State *L, spotify_exchange *x) {
  return handlers[x->state](L, x); /* engine.c sends only the T_ states here */
}
