/* The exchange machine as a Lua object, for a driver written in Lua: the
 * nginx one (lua/spotify/ngx.lua), whose cosockets, sleeps and cache calls
 * may yield, which LuaJIT cannot do across a C call. So C never calls
 * anything that can yield here: Lua caches and waits come back as actions.
 *
 *   x = core.exchange(client, "api" | "token", method, url)
 *   act, ... = x:step()                                -- first, and after a wait
 *   act, ... = x:response(status, body, retry_after_header, elapsed, connections,
 *                         cache_control_header, etag_header, last_modified_header)
 *   act, ... = x:failure(reason, detail, elapsed, connections)
 *   act, ... = x:cache(ok, value)    -- ok: true, false (raised) or nil (no such method)
 *   obj = x:cache_object(client)     -- the cache the pending "cache" action is for
 * Actions: "send", method, url, auth, body, language, if_none_match, if_modified_since |
 *          "wait", seconds |
 *          "cache", op, key, a, b (the method's arguments) | "done", value | nil, err
 *          (a raw exchange: "done", text, status | nil, err) */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "responses.h"
#include "spotify.h"

typedef struct lua_exchange {
  spotify_exchange x;
  spotify_client *c; /* kept alive by the user value */
  int started;
  int raw; /* done hands back the answer's text and status, undecoded (the gateway) */
} lua_exchange;

static lua_exchange *check(lua_State *L) {
  return luaL_checkudata(L, 1, SPOTIFY_EXCHANGE_MT);
}

static int push_cache_action(lua_State *L, const spotify_cache_req *rq) {
  lua_pushliteral(L, "cache");
  lua_pushstring(L, spotify_cache_op_names[rq->op]);
  return 2 + spotify_cache_push_args(L, rq);
}

static void push_or_nil(lua_State *L, const char *s) {
  if (s)
    lua_pushstring(L, s);
  else
    lua_pushnil(L);
}

/* A validator header's value when the machine may keep it, else NULL. */
static const char *validator_at(lua_State *L, int i) {
  size_t n;
  const char *v = lua_tolstring(L, i, &n);
  return v && spotify_validator_ok(v, n) && strlen(v) == n ? v : NULL;
}

/* Under the client's bracket: (e) -> the next action. */
static int step_bracketed(lua_State *L) {
  lua_exchange *e = lua_touserdata(L, 1);
  spotify_exchange *x = &e->x;
  lua_settop(L, 0);
  spotify_action a = spotify_exchange_next(L, x);
  int n;
  switch (a) {
    case SPOTIFY_ACT_SEND:
      lua_pushliteral(L, "send");
      lua_pushstring(L, x->send.method);
      lua_pushstring(L, x->send.url);
      if (x->send.auth)
        lua_pushstring(L, x->send.auth);
      else
        lua_pushnil(L);
      if (x->send.body)
        lua_pushlstring(L, x->send.body, x->send.body_len);
      else
        lua_pushnil(L);
      push_or_nil(L, x->send.language);
      push_or_nil(L, x->send.if_none_match);
      push_or_nil(L, x->send.if_modified_since);
      n = 8;
      break;
    case SPOTIFY_ACT_WAIT:
      lua_pushliteral(L, "wait");
      lua_pushnumber(L, x->wait);
      n = 2;
      break;
    case SPOTIFY_ACT_CACHE:
      n = push_cache_action(L, &x->cache_req);
      break;
    default:
      lua_pushliteral(L, "done");
      if (e->raw && !x->error.kind && x->purpose == SPOTIFY_FOR_API) {
        /* The text as Spotify sent it (or as the response cache kept it):
         * a gateway passes it on without decoding and encoding it again. */
        lua_pushlstring(L, x->body ? x->body : "", x->body ? x->body_len : 0);
        lua_pushinteger(L, x->status);
        spotify_exchange_drop_value(L, x); /* the decoded answer: nobody takes it */
        n = 3;
      } else {
        n = 1 + spotify_push_result(L, x);
      }
  }
  return n;
}

/* Run the machine to its next action and push it. */
static int next_action(lua_State *L, lua_exchange *e) {
  return spotify_client_bracket(L, e->c, step_bracketed, e, 0);
}

typedef struct outcome_args {
  lua_exchange *e;
  const spotify_outcome *o;
} outcome_args;

static int outcome_bracketed(lua_State *L) {
  outcome_args *a = lua_touserdata(L, 1);
  spotify_exchange_outcome(L, &a->e->x, a->o);
  return 0;
}

/* Hand the machine what the driver saw, inside the client's bracket. */
static void outcome(lua_State *L, lua_exchange *e, const spotify_outcome *o) {
  outcome_args a = {e, o};
  spotify_client_bracket(L, e->c, outcome_bracketed, &a, 0);
}

/* core.exchange(client, purpose, method, url[, name[, raw[, renewal]]]) -> exchange;
 * name: the API method's, for the response cache's ttl; raw: done hands
 * back text, status instead of the decoded value; renewal: it renews an
 * answer handed out expired (core.revalidations). */
static int l_exchange(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  spotify_client_refuse_reentry(L, c);
  const char *purpose = luaL_checkstring(L, 2);
  const char *method = luaL_checkstring(L, 3), *url = luaL_checkstring(L, 4);
  const char *name = luaL_optstring(L, 5, NULL);
  int raw = lua_toboolean(L, 6), renewal = lua_toboolean(L, 7);
  lua_exchange *e = lua_newuserdata(L, sizeof *e);
  memset(e, 0, sizeof *e);
  e->raw = raw;
  e->x.error.retry_after = -1;
  luaL_getmetatable(L, SPOTIFY_EXCHANGE_MT);
  lua_setmetatable(L, -2);
  /* The exchange keeps its client alive. */
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  spotify_setuservalue(L, -2);
  spotify_purpose p = strcmp(purpose, "token") == 0 ? SPOTIFY_FOR_TOKEN : SPOTIFY_FOR_API;
  e->c = c;
  if (spotify_exchange_init(&e->x, &c->m, p, method, url, 0) != 0)
    return luaL_error(L, "spotify: out of memory");
  if (name) spotify_exchange_named(&e->x, name);
  if (renewal) spotify_exchange_revalidate(&e->x);
  e->x.group = SPOTIFY_GROUP_LUA;
  return 1;
}

/* core.revalidations(client) -> {url, name | false, ...}: the answers
 * handed out expired (stale_while_revalidate) that wait for a renewal,
 * now marked as renewed; the nginx driver renews each from a timer. */
static int l_revalidations(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  lua_newtable(L);
  const char *url, *name;
  int n = 0;
  while (!c->m.closed && spotify_machine_next_revalidation(&c->m, &url, &name)) {
    lua_pushstring(L, url);
    lua_rawseti(L, -2, ++n);
    if (name)
      lua_pushstring(L, name);
    else
      lua_pushboolean(L, 0);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static int l_step(lua_State *L) {
  return next_action(L, check(L));
}

static int l_response(lua_State *L) {
  lua_exchange *e = check(L);
  spotify_outcome o;
  memset(&o, 0, sizeof o);
  o.status = (long)luaL_checkinteger(L, 2);
  o.body = luaL_checklstring(L, 3, &o.len);
  size_t n;
  const char *ra = lua_tolstring(L, 4, &n);
  o.retry_after = ra ? spotify_parse_retry_after(ra, n, spotify_wall_time()) : -1;
  o.elapsed = luaL_optnumber(L, 5, 0);
  o.connections = (int)luaL_optinteger(L, 6, 0);
  const char *cc = lua_tolstring(L, 7, &n);
  o.max_age = cc ? spotify_parse_max_age(cc, n) : 0;
  o.cache_control = cc ? spotify_cache_control_flags(cc, n) : 0;
  o.etag = validator_at(L, 8);
  o.last_modified = validator_at(L, 9);
  if (o.status < 100 || o.status > 999) o.status = 999;
  outcome(L, e, &o);
  return next_action(L, e); /* the body stays on the stack meanwhile */
}

static int l_failure(lua_State *L) {
  lua_exchange *e = check(L);
  spotify_outcome o;
  memset(&o, 0, sizeof o);
  o.failure = spotify_failure_named(luaL_checkstring(L, 2));
  o.detail = luaL_optstring(L, 3, NULL);
  o.body = "";
  o.retry_after = -1;
  o.elapsed = luaL_optnumber(L, 4, 0);
  o.connections = (int)luaL_optinteger(L, 5, 0);
  outcome(L, e, &o);
  return next_action(L, e);
}

typedef struct answer_args {
  lua_exchange *e;
  spotify_cache_result *r;
} answer_args;

static int answer_bracketed(lua_State *L) {
  answer_args *a = lua_touserdata(L, 1);
  spotify_exchange_cache_answer(L, &a->e->x, a->r);
  return 0;
}

/* Like the outcomes: the answer goes in inside the client's bracket, so a
 * close meanwhile frees nothing under the machine's feet. */
static int l_cache_answer(lua_State *L) {
  lua_exchange *e = check(L);
  int ok = lua_isnil(L, 2) ? -1 : lua_toboolean(L, 2);
  spotify_cache_result r;
  memset(&r, 0, sizeof r);
  spotify_cache_result_from_lua(L, e->x.cache_req.op, ok, 3, &r);
  answer_args a = {e, &r};
  spotify_client_bracket(L, e->c, answer_bracketed, &a, 0);
  return next_action(L, e);
}

/* The object of the pending cache action: the response store, or the
 * client's token cache. */
static int l_cache_object(lua_State *L) {
  lua_exchange *e = check(L);
  spotify_client *c = e->c;
  if (c == NULL || c->m.closed) return 0;
  const spotify_cache *k = e->x.on_store && c->m.responses ? &c->m.responses->store : &c->m.cache;
  if (k->vt == NULL) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, k->ref);
  return 1;
}

static int l_gc(lua_State *L) {
  lua_exchange *e = luaL_checkudata(L, 1, SPOTIFY_EXCHANGE_MT);
  if (e->x.m) spotify_exchange_abandon(L, &e->x);
  spotify_exchange_free(&e->x);
  return 0;
}

/* core.peek(client, url, name) -> a fresh process-tier answer, or nothing:
 * a lookup about to wait in a batch window needs no request at all. */
static int l_peek(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  const char *url = luaL_checkstring(L, 2), *name = luaL_optstring(L, 3, NULL);
  spotify_responses *r = c->m.responses;
  if (c->m.closed || r == NULL || spotify_responses_ttl(r, name) == 0) return 0;
  char *key = spotify_exchange_answer_key(&c->m, url);
  int found = key && spotify_responses_peek(L, r, key);
  free(key);
  if (!found) return 0;
  c->m.stats.response_hits++;
  return 1;
}

/* core.peek_text(client, url, name) -> the text of a fresh process-tier
 * answer (or of one expired within stale_while_revalidate, queued for its
 * renewal), or nothing: what a gateway hands out as it was kept. */
static int l_peek_text(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  const char *url = luaL_checkstring(L, 2), *name = luaL_optstring(L, 3, NULL);
  spotify_responses *r = c->m.responses;
  if (c->m.closed || r == NULL || spotify_responses_ttl(r, name) == 0) return 0;
  char *key = spotify_exchange_answer_key(&c->m, url);
  spotify_rlook e;
  double t = spotify_wall_time();
  int found = key && spotify_responses_find(L, r, key, &e);
  free(key);
  if (!found) return 0;
  if (e.fresh_until > t) {
    c->m.stats.response_hits++;
  } else if (spotify_responses_swr(r, e.fresh_until, t)) {
    c->m.stats.response_stale++; /* handed out expired: one renewal goes out */
    spotify_machine_queue_revalidation(&c->m, url, name);
  } else {
    return 0;
  }
  lua_pushlstring(L, e.text, e.len);
  return 1;
}

void spotify_open_exchange(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"step", l_step},          {"response", l_response},         {"failure", l_failure},
      {"cache", l_cache_answer}, {"cache_object", l_cache_object}, {NULL, NULL}};
  luaL_newmetatable(L, SPOTIFY_EXCHANGE_MT);
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  spotify_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_exchange);
  lua_setfield(L, -2, "exchange");
  lua_pushcfunction(L, l_peek);
  lua_setfield(L, -2, "peek");
  lua_pushcfunction(L, l_peek_text);
  lua_setfield(L, -2, "peek_text");
  lua_pushcfunction(L, l_revalidations);
  lua_setfield(L, -2, "revalidations");
}
