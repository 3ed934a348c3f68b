/* The client userdata and its core functions. Options arrive checked and
 * defaulted from Lua (lua/spotify/options.lua); this file only converts
 * them, safely, into the struct. */
#include "client.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "digest.h"
#include "responses.h"
#include "spotify.h"

#define MAX_WAIT 86400.0 /* the longest poll wait taken as asked */

spotify_client *spotify_check_client(lua_State *L, int i) {
  spotify_client *c = spotify_testudata(L, i, SPOTIFY_CLIENT_MT);
  if (c == NULL)
    luaL_error(L,
               "spotify: expected a client (did you write client.method instead of "
               "client:method?)");
  return c;
}

/* Free everything but the stats; runs once drivers have returned. The
 * transport goes first: dropping its jobs abandons their exchanges, which
 * still read the machine. */
static void free_resources(lua_State *L, spotify_client *c) {
  spotify_machine *m = &c->m;
  spotify_http_release(L, &c->http);
  spotify_token_release(&m->token);
  spotify_cache_unbind(L, &m->cache);
  if (m->responses_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, m->responses_ref);
  m->responses_ref = LUA_NOREF;
  m->responses = NULL;
  spotify_machine_free_revalidations(m);
  if (m->on_request_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, m->on_request_ref);
  m->on_request_ref = LUA_NOREF;
  free(c->client_id);
  c->client_id = NULL;
  char **owned[] = {&m->basic_auth, &m->token_url, &m->token_body,  &m->language,
                    &m->token_key,  &m->lock_key,  &m->penalty_key, &m->pace_key};
  for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) {
    free(*owned[i]);
    *owned[i] = NULL;
  }
  free(m->pacing.ring);
  m->pacing.ring = NULL;
}

/* The one release: close, __gc and __close. Idempotent. */
static void release(lua_State *L, spotify_client *c) {
  if (c->m.closed) return;
  c->m.closed = 1;
  if (c->busy == 0) free_resources(L, c);
}

/* Drivers bracket their work: a close from a hook meanwhile frees the
 * handles only once the driver is out. */
void spotify_client_enter(spotify_client *c) {
  c->busy++;
}

void spotify_client_leave(lua_State *L, spotify_client *c) {
  if (--c->busy == 0 && c->m.closed) free_resources(L, c);
}

int spotify_client_bracket(lua_State *L, spotify_client *c, lua_CFunction fn, void *ud, int nargs) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, fn); /* may raise (5.1 allocates): before enter */
  lua_insert(L, base + 1);
  lua_pushlightuserdata(L, ud);
  lua_insert(L, base + 2);
  spotify_client_enter(c);
  int status = lua_pcall(L, nargs + 1, LUA_MULTRET, 0);
  spotify_client_leave(L, c);
  if (status != 0) return lua_error(L);
  return lua_gettop(L) - base;
}

#define refuse_reentry spotify_client_refuse_reentry

/* While a driver runs, the only Lua that runs is the client's own hook and
 * Lua cache: a request from there would drive the same transfers and the
 * same exchange from inside themselves. */
void spotify_client_refuse_reentry(lua_State *L, const spotify_client *c) {
  if (c->busy > 0)
    luaL_error(L,
               "spotify: a client cannot make requests from inside its own on_request hook "
               "or cache; make them once the call has returned");
}

/* ---- options ---- */

/* A number option as options.lua checked and defaulted it (0 when absent):
 * the bounds live there only. */
static double opt_number(lua_State *L, const char *name) {
  lua_getfield(L, 1, name);
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static char *opt_string(lua_State *L, const char *name, int *ok) {
  lua_getfield(L, 1, name);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  char *copy = s ? strdup(s) : NULL;
  lua_pop(L, 1);
  if (s && !copy) *ok = 0;
  return copy;
}

static long milliseconds(double seconds) {
  return (long)ceil(seconds * 1000.0);
}

/* kind .. "{" .. name .. "}", malloc'd; NULL without a name. The kind
 * comes first, so no name (a client ID such as "APP:lock") can reach
 * another kind's key. The braces are a Redis Cluster hash tag: the keys
 * one script or lock touches (the token and its lock; the penalty and
 * the pacing) name the same thing, so they land in one slot, while
 * answers' keys have no common tag and spread over the slots. */
static char *key_for(const char *kind, const char *name) {
  if (name == NULL) return NULL;
  char *k = malloc(strlen(kind) + strlen(name) + 3);
  if (k) sprintf(k, "%s{%s}", kind, name);
  return k;
}

/* SHA-256 of every credential that decides which token the endpoint
 * gives, each ended by a NUL (no string holds one): a key that names the
 * credentials without revealing the secret. */
static void credential_digest(char out[SPOTIFY_DIGEST_HEX], const char *const parts[], int n) {
  spotify_sha256 s;
  spotify_sha256_init(&s);
  for (int i = 0; i < n; i++) spotify_sha256_update(&s, parts[i], strlen(parts[i]) + 1);
  spotify_sha256_hex(&s, out);
}

/* "grant_type=client_credentials" and, with scopes, "&scope=" and the
 * space-joined scopes form-encoded. */
static char *token_body(const char *scope) {
  static const char grant[] = "grant_type=client_credentials";
  size_t n = scope ? strlen(scope) : 0;
  char *b = malloc(sizeof grant + sizeof "&scope=" + 3 * n);
  if (b == NULL) return NULL;
  char *w = b + sprintf(b, "%s", grant);
  if (n) w += sprintf(w, "&scope=");
  for (const unsigned char *p = (const unsigned char *)scope; p && *p; p++) {
    int plain = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                *p == '-' || *p == '.' || *p == '_' || *p == '~';
    w += plain ? sprintf(w, "%c", *p) : sprintf(w, "%%%02X", *p);
  }
  return b;
}

/* rate_limit = {requests, window}, checked in Lua. */
static int take_pacing(lua_State *L, spotify_pacing *p) {
  lua_getfield(L, 1, "rate_limit");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "requests");
    lua_getfield(L, -2, "window");
    double n = lua_tonumber(L, -2), w = lua_tonumber(L, -1);
    lua_pop(L, 2);
    if (n >= 1 && w > 0) {
      p->requests = (int)n;
      p->window = w;
      lua_getfield(L, -1, "fallback");
      p->fallback = lua_isnumber(L, -1) ? (int)lua_tonumber(L, -1) : p->requests;
      lua_pop(L, 1);
      p->ring = calloc((size_t)p->fallback, sizeof *p->ring);
    }
  }
  lua_pop(L, 1);
  return p->requests == 0 || p->ring != NULL;
}

static int take_options(lua_State *L, spotify_client *c) {
  int ok = 1;
  spotify_http_options *o = &c->http.opt;
  double timeout = opt_number(L, "timeout");
  o->timeout_ms = milliseconds(timeout);
  o->connect_timeout_ms = milliseconds(opt_number(L, "connect_timeout"));
  o->max_body = (size_t)opt_number(L, "max_body");
  o->ca_file = opt_string(L, "ca_file", &ok);
  o->proxy = opt_string(L, "proxy", &ok);
  o->user_agent = opt_string(L, "user_agent", &ok);
  c->m.language = opt_string(L, "language", &ok);
  c->m.limits.max_retries = (int)opt_number(L, "max_retries");
  c->m.limits.max_retry_after = opt_number(L, "max_retry_after");
  c->m.limits.deadline = opt_number(L, "deadline");
  c->m.refresh_buffer = opt_number(L, "refresh_buffer");
  c->m.lock_ttl = timeout;
  c->m.token_url = opt_string(L, "token_url", &ok);
  lua_getfield(L, 1, "access_token");
  size_t len;
  const char *fixed = lua_tolstring(L, -1, &len);
  lua_getfield(L, 1, "gateway");
  int gateway = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (gateway) {
    /* A gateway's client: the gateway holds the credentials and the token,
     * so nothing is fetched and no Authorization is sent; the caller's key,
     * if any, goes as X-Api-Key on every request. */
    c->m.token.fixed = 1;
    c->m.token.none = 1;
    o->api_key = opt_string(L, "gateway_key", &ok);
  } else if (fixed) {
    c->m.token.fixed = 1;
    ok = ok && spotify_token_adopt(&c->m.token, fixed, len, 0) == 0;
  } else {
    c->client_id = opt_string(L, "client_id", &ok);
    char *secret = opt_string(L, "client_secret", &ok);
    char *scope = opt_string(L, "scope", &ok);
    c->m.basic_auth = c->client_id && secret ? spotify_basic_auth(c->client_id, secret) : NULL;
    c->m.token_body = token_body(scope);
    if (c->client_id && secret) {
      char digest[SPOTIFY_DIGEST_HEX];
      const char *parts[] = {c->client_id, secret, c->m.token_url ? c->m.token_url : "",
                             scope ? scope : ""};
      credential_digest(digest, parts, 4);
      c->m.token_key = key_for("token:", digest);
      c->m.lock_key = key_for("lock:", digest);
    }
    if (secret) memset(secret, 0, strlen(secret));
    free(secret);
    free(scope);
    ok = ok && c->m.basic_auth && c->m.token_body && c->m.token_key && c->m.lock_key;
  }
  lua_pop(L, 1);
  /* The penalty and the pacing are shared under budget_key, else the
   * client ID: several apps of one developer may share one quota. */
  char *budget = opt_string(L, "budget_key", &ok);
  const char *name = budget ? budget : c->client_id;
  c->m.penalty_key = key_for("penalty:", name);
  c->m.pace_key = key_for("pace:", name);
  ok = ok && (name == NULL || (c->m.penalty_key && c->m.pace_key));
  free(budget);
  ok = ok && take_pacing(L, &c->m.pacing);
  lua_getfield(L, 1, "on_request");
  c->m.on_request_ref = lua_isfunction(L, -1) ? luaL_ref(L, LUA_REGISTRYINDEX) : LUA_NOREF;
  if (c->m.on_request_ref == LUA_NOREF) lua_pop(L, 1);
  lua_getfield(L, 1, "cache");
  if (!lua_isnil(L, -1)) spotify_cache_bind(L, &c->m.cache, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "responses");
  c->m.responses = spotify_testudata(L, -1, SPOTIFY_RESPONSES_MT);
  if (c->m.responses)
    c->m.responses_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else
    lua_pop(L, 1);
  return ok;
}

static void set_string(lua_State *L, const char *name, const char *v) {
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, name);
}

/* What the nginx driver needs to move bytes, as the client holds it (the
 * libcurl drivers read the same struct): one authority for both. */
static void push_transport(lua_State *L, const spotify_client *c) {
  const spotify_http_options *o = &c->http.opt;
  lua_createtable(L, 0, 5);
  lua_pushnumber(L, (double)o->timeout_ms / 1000.0);
  lua_setfield(L, -2, "timeout");
  lua_pushnumber(L, (double)o->connect_timeout_ms / 1000.0);
  lua_setfield(L, -2, "connect_timeout");
  lua_pushnumber(L, (double)o->max_body);
  lua_setfield(L, -2, "max_body");
  set_string(L, "user_agent", o->user_agent);
  set_string(L, "proxy", o->proxy);
  set_string(L, "api_key", o->api_key);
}

/* core.transport(client) -> {timeout, connect_timeout, max_body,
 * user_agent, proxy, api_key} */
static int l_transport(lua_State *L) {
  push_transport(L, spotify_check_client(L, 1));
  return 1;
}

/* core.new(options, env) -> client. `env` is the Lua layer's table for
 * what only Lua uses (endpoint fallbacks, started requests); it is the
 * userdata's user value, so it lives and dies with the client. */
static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  spotify_client *c = lua_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->m.on_request_ref = LUA_NOREF;
  c->m.cache.ref = LUA_NOREF;
  c->m.responses_ref = LUA_NOREF;
  c->m.token.failure.retry_after = -1;
  luaL_getmetatable(L, SPOTIFY_CLIENT_MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 2);
  spotify_setuservalue(L, -2);
  if (!take_options(L, c)) {
    release(L, c);
    return luaL_error(L, "spotify: out of memory");
  }
  push_transport(L, c); /* env.transport: the nginx driver's settings */
  lua_setfield(L, 2, "transport");
  return 1;
}

/* core.env(client) -> env | nil, closed error */
static int l_env(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  if (c->m.closed) return spotify_push_closed(L);
  spotify_getuservalue(L, 1);
  return 1;
}

/* ---- results ---- */

/* The exchange's result: value | nil, err (token, seconds_left for a token
 * exchange). Pushes exactly what it returns. */
int spotify_push_result(lua_State *L, spotify_exchange *x) {
  const spotify_machine *m = x->m;
  if (x->error.kind) {
    spotify_exchange_drop_value(L, x);
    lua_pushnil(L);
    if (x->error.at_token)
      spotify_push_error(L, &x->error, "POST", m->token_url);
    else
      spotify_push_error(L, &x->error, x->method, x->url);
    return 2;
  }
  if (x->purpose == SPOTIFY_FOR_TOKEN) {
    lua_pushstring(L, m->token.value);
    if (m->token.fixed) return 1;
    lua_pushnumber(L, m->token.expires_at - spotify_wall_time());
    return 2;
  }
  if (x->from_lru && m->responses && spotify_responses_push_copy(L, m->responses, x->akey))
    return 1;
  if (spotify_exchange_take_value(L, x)) return 1;
  int top = lua_gettop(L);
  int n = spotify_json_decode(L, x->body, x->body_len);
  if (n == 1 && lua_istable(L, -1)) return 1;
  const char *why = n == 2 ? lua_tostring(L, -1) : luaL_typename(L, -1);
  lua_pushfstring(L, "response is not a JSON object: %s", why ? why : "?");
  spotify_error e = {"decode", x->status, NULL, -1, 0, NULL};
  e.message = (char *)lua_tostring(L, -1); /* borrowed: it stays on the stack */
  spotify_push_error(L, &e, x->method, x->url);
  lua_replace(L, top + 2);
  lua_pushnil(L);
  lua_replace(L, top + 1);
  lua_settop(L, top + 2);
  return 2;
}

/* A per-call exchange in a userdata: collected even if something raises. */
static int exchange_gc(lua_State *L) {
  spotify_exchange *x = lua_touserdata(L, 1);
  if (x->m) spotify_exchange_abandon(L, x); /* after a raise: the renewal and its lock go */
  spotify_exchange_free(x);
  return 0;
}

static spotify_exchange *new_exchange(lua_State *L) {
  spotify_exchange *x = lua_newuserdata(L, sizeof *x);
  memset(x, 0, sizeof *x);
  x->error.retry_after = -1;
  luaL_getmetatable(L, "spotify.call");
  lua_setmetatable(L, -2);
  return x;
}

typedef struct drive_args {
  spotify_client *c;
  spotify_exchange *x;
  double wait;
  int pending;
} drive_args;

static int drive_blocking(lua_State *L) {
  drive_args *a = lua_touserdata(L, 1);
  lua_settop(L, 0);
  spotify_drive_blocking(L, &a->c->http, a->x);
  return spotify_push_result(L, a->x);
}

static int blocking(lua_State *L, spotify_client *c, spotify_purpose p, const char *method,
                    const char *url, const char *name, int revalidate) {
  spotify_exchange *x = new_exchange(L);
  if (spotify_exchange_init(x, &c->m, p, method, url, 1) != 0)
    return luaL_error(L, "spotify: out of memory");
  if (name) spotify_exchange_named(x, name);
  if (revalidate) spotify_exchange_revalidate(x);
  drive_args a = {c, x, 0, 0};
  int n = spotify_client_bracket(L, c, drive_blocking, &a, 0);
  spotify_exchange_free(x);
  return n;
}

/* stale_while_revalidate, blocking: the answers handed out expired are
 * renewed before the next call, one request each (their outcomes are the
 * response cache's, not the caller's). At most a few per call, so a call
 * never waits for many. */
#define RENEWALS_PER_CALL 4

static void renew_blocking(lua_State *L, spotify_client *c) {
  const char *url, *name;
  for (int i = 0; i < RENEWALS_PER_CALL && !c->m.closed; i++) {
    if (!spotify_machine_next_revalidation(&c->m, &url, &name)) return;
    int top = lua_gettop(L);
    blocking(L, c, SPOTIFY_FOR_API, "GET", url, name, 1);
    lua_settop(L, top);
  }
}

/* ... and with the multi driver, submitted beside the started requests
 * (tag 0: no request's), on the next poll. */
static void renew_multi(lua_State *L, spotify_client *c) {
  const char *url, *name;
  for (int i = 0; i < RENEWALS_PER_CALL && !c->m.closed; i++) {
    if (!spotify_machine_next_revalidation(&c->m, &url, &name)) return;
    spotify_job *j = spotify_multi_job(L, &c->http);
    if (j == NULL || spotify_exchange_init(&j->x, &c->m, SPOTIFY_FOR_API, "GET", url, 1) != 0)
      return; /* out of memory: the key is queued again once its bound passed */
    if (name) spotify_exchange_named(&j->x, name);
    spotify_exchange_revalidate(&j->x);
    j->x.group = SPOTIFY_GROUP_MULTI;
    spotify_multi_queue(&c->http, j, 0);
  }
}

/* core.call(c, method, url[, name]) -> value | nil, err: the blocking
 * driver. name: the API method's, for the response cache's ttl. */
static int l_call(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  const char *method = luaL_checkstring(L, 2), *url = luaL_checkstring(L, 3);
  const char *name = luaL_optstring(L, 4, NULL);
  if (c->m.closed) return spotify_push_closed(L);
  refuse_reentry(L, c);
  renew_blocking(L, c);
  if (c->m.closed) return spotify_push_closed(L);
  return blocking(L, c, SPOTIFY_FOR_API, method, url, name, 0);
}

/* core.access_token(c) -> token, seconds_left | nil, err */
static int l_access_token(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  if (c->m.closed) return spotify_push_closed(L);
  double now = spotify_wall_time();
  if (spotify_exchange_token_fresh(&c->m, now)) {
    lua_pushstring(L, c->m.token.value);
    if (c->m.token.fixed) return 1;
    lua_pushnumber(L, c->m.token.expires_at - now);
    return 2;
  }
  refuse_reentry(L, c);
  return blocking(L, c, SPOTIFY_FOR_TOKEN, "POST", c->m.token_url ? c->m.token_url : "", NULL, 0);
}

int spotify_client_submit(lua_State *L, spotify_client *c, lua_Integer tag, const char *method,
                          const char *url, const char *name) {
  spotify_job *j = spotify_multi_job(L, &c->http);
  if (j == NULL || spotify_exchange_init(&j->x, &c->m, SPOTIFY_FOR_API, method, url, 1) != 0)
    return -1;
  if (name) spotify_exchange_named(&j->x, name);
  j->x.group = SPOTIFY_GROUP_MULTI;
  spotify_multi_queue(&c->http, j, tag);
  return 0;
}

/* core.submit(c, tag, method, url[, name]) -> true | nil, err */
static int l_submit(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  lua_Integer tag = luaL_checkinteger(L, 2);
  const char *method = luaL_checkstring(L, 3), *url = luaL_checkstring(L, 4);
  const char *name = luaL_optstring(L, 5, NULL);
  if (c->m.closed) return spotify_push_closed(L);
  refuse_reentry(L, c);
  if (spotify_client_submit(L, c, tag, method, url, name) != 0)
    return luaL_error(L, "spotify: cannot start a transfer (out of memory)");
  lua_pushboolean(L, 1);
  return 1;
}

typedef struct collect {
  int table, n;
} collect;

/* One finished job as {tag = , value = } or {tag = , err = }. */
static void collect_job(lua_State *L, spotify_job *j, void *ud) {
  collect *k = ud;
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, j->tag);
  lua_setfield(L, -2, "tag");
  int n = spotify_push_result(L, &j->x);
  if (n == 2) {
    lua_setfield(L, -3, "err");
    lua_pop(L, 1);
  } else {
    lua_setfield(L, -2, "value");
  }
  lua_rawseti(L, k->table, ++k->n);
}

/* Under the bracket: (ud, results table). */
static int drive_multi(lua_State *L) {
  drive_args *a = lua_touserdata(L, 1);
  collect k = {2, 0};
  a->pending = spotify_multi_run(L, &a->c->http, a->wait, collect_job, &k);
  return 0;
}

/* core.run(c, wait) -> finished, pending: advances every submitted
 * exchange, waiting at most `wait` seconds when none has finished. */
static int l_run(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  double wait = luaL_optnumber(L, 2, 0);
  if (!(wait >= 0)) wait = 0;
  if (wait > MAX_WAIT) wait = MAX_WAIT;
  lua_newtable(L);
  if (c->m.closed) {
    lua_pushinteger(L, 0);
    return 2;
  }
  refuse_reentry(L, c);
  renew_multi(L, c);
  drive_args a = {c, NULL, wait, 0};
  lua_pushvalue(L, -1); /* the results table, as fn's argument */
  spotify_client_bracket(L, c, drive_multi, &a, 1);
  lua_pushinteger(L, c->m.closed ? 0 : a.pending);
  return 2;
}

/* core.cancel(c, tag) -> true if it was pending */
static int l_cancel(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  lua_Integer tag = luaL_checkinteger(L, 2);
  refuse_reentry(L, c);
  lua_pushboolean(L, !c->m.closed && spotify_multi_cancel(L, &c->http, tag));
  return 1;
}

/* core.fd_info(c) -> {read = {fd...}, write = {fd...}, timeout = s|nil} */
static int l_fd_info(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  lua_createtable(L, 0, 3);
  fd_set sets[3];
  int maxfd = -1;
  long timeout_ms = -1;
  for (int s = 0; s < 3; s++) FD_ZERO(&sets[s]);
  if (!c->m.closed && c->http.multi) {
    curl_multi_fdset(c->http.multi, &sets[0], &sets[1], &sets[2], &maxfd);
    curl_multi_timeout(c->http.multi, &timeout_ms);
  }
  static const char *const names[] = {"read", "write"};
  for (int s = 0; s < 2; s++) {
    lua_newtable(L);
    int n = 0;
    for (int fd = 0; fd <= maxfd; fd++)
      if (FD_ISSET(fd, &sets[s])) {
        lua_pushinteger(L, fd);
        lua_rawseti(L, -2, ++n);
      }
    lua_setfield(L, -2, names[s]);
  }
  if (timeout_ms >= 0) {
    lua_pushnumber(L, (double)timeout_ms / 1000.0);
    lua_setfield(L, -2, "timeout");
  }
  return 1;
}

/* ---- metrics ---- */

static const char *const outcome_names[SPOTIFY_OUT_COUNT] = {"2xx", "4xx",     "429",
                                                             "5xx", "network", "timeout"};

static void stat_field(lua_State *L, const char *name, long long v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, name);
}

/* core.stats(c) -> counters */
static int l_stats(lua_State *L) {
  const spotify_stats *s = &spotify_check_client(L, 1)->m.stats;
  lua_createtable(L, 0, 9);
  stat_field(L, "requests", s->requests);
  stat_field(L, "retries", s->retries);
  stat_field(L, "token_fetches", s->token_fetches);
  stat_field(L, "cache_hits", s->cache_hits);
  stat_field(L, "cache_errors", s->cache_errors);
  stat_field(L, "bytes_received", s->bytes_received);
  stat_field(L, "connections_opened", s->connections_opened);
  stat_field(L, "rate_limited_waits", s->rate_limited_waits);
  lua_pushnumber(L, s->rate_limited_wait_s);
  lua_setfield(L, -2, "rate_limited_wait_s");
  lua_pushnumber(L, s->retry_wait_s);
  lua_setfield(L, -2, "retry_wait_s");
  stat_field(L, "response_hits", s->response_hits);
  stat_field(L, "response_shared_hits", s->response_shared_hits);
  stat_field(L, "response_stale", s->response_stale);
  stat_field(L, "coalesced", s->coalesced);
  stat_field(L, "batched", s->batched);
  stat_field(L, "response_revalidated", s->response_revalidated);
  return 1;
}

/* core.metrics(c) -> {outcome_2xx = n, ..., duration_1 = n (bucket 1, not
 * cumulative), ..., duration_inf = n, duration_sum = seconds} */
static int l_metrics(lua_State *L) {
  const spotify_metrics *m = &spotify_check_client(L, 1)->m.metrics;
  char name[32];
  lua_createtable(L, 0, SPOTIFY_OUT_COUNT + SPOTIFY_BUCKETS + 2);
  for (int i = 0; i < SPOTIFY_OUT_COUNT; i++) {
    snprintf(name, sizeof name, "outcome_%s", outcome_names[i]);
    stat_field(L, name, m->outcomes[i]);
  }
  for (int b = 0; b < SPOTIFY_BUCKETS; b++) {
    snprintf(name, sizeof name, "duration_%d", b + 1);
    stat_field(L, name, m->buckets[b]);
  }
  stat_field(L, "duration_inf", m->buckets[SPOTIFY_BUCKETS]);
  lua_pushnumber(L, m->seconds);
  lua_setfield(L, -2, "duration_sum");
  return 1;
}

/* core.add_batched(c, n): n lookups went out inside a batch (batch.lua) */
static int l_add_batched(lua_State *L) {
  spotify_check_client(L, 1)->m.stats.batched += (long long)luaL_checkinteger(L, 2);
  return 0;
}

/* core.cache(c) -> the cache object (the Lua driver calls it itself) */
static int l_cache(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  if (c->m.closed || c->m.cache.vt == NULL) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->m.cache.ref);
  return 1;
}

static int l_close(lua_State *L) {
  release(L, spotify_check_client(L, 1));
  return 0;
}

static int l_gc(lua_State *L) {
  spotify_client *c = lua_touserdata(L, 1);
  release(L, c);
  return 0;
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, spotify_check_client(L, 1)->m.closed);
  return 1;
}

static int l_tostring(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  lua_pushstring(L, c->m.closed ? "spotify.client (closed)" : "spotify.client (open)");
  return 1;
}

void spotify_open_client(lua_State *L) {
  static const luaL_Reg fns[] = {{"new", l_new},
                                 {"env", l_env},
                                 {"transport", l_transport},
                                 {"call", l_call},
                                 {"access_token", l_access_token},
                                 {"submit", l_submit},
                                 {"run", l_run},
                                 {"cancel", l_cancel},
                                 {"fd_info", l_fd_info},
                                 {"stats", l_stats},
                                 {"metrics", l_metrics},
                                 {"cache", l_cache},
                                 {"close", l_close},
                                 {"is_closed", l_is_closed},
                                 {NULL, NULL}};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  luaL_newmetatable(L, "spotify.call");
  lua_pushcfunction(L, exchange_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, SPOTIFY_CLIENT_MT);
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, SPOTIFY_CLIENT_MT);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "client_mt");
  spotify_setfuncs(L, fns);
  lua_createtable(L, SPOTIFY_BUCKETS, 0);
  for (int b = 0; b < SPOTIFY_BUCKETS; b++) {
    lua_pushnumber(L, spotify_duration_buckets[b]);
    lua_rawseti(L, -2, b + 1);
  }
  lua_setfield(L, -2, "duration_buckets");
  lua_pushcfunction(L, l_add_batched);
  lua_setfield(L, -2, "add_batched");
  spotify_open_exchange(L);
}
