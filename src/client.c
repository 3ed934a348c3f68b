/* The client userdata: owns the libcurl handles and exposes the transport
 * to the Lua engine (lua/spotify/engine.lua), which makes the decisions. */
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "http.h"
#include "spotify.h"

typedef struct client {
  int closed;
  spotify_http http;
} client;

static client *check_client(lua_State *L, int i) {
  return luaL_checkudata(L, i, SPOTIFY_CLIENT_MT);
}

static void release(client *c) {
  if (c->closed) return;
  c->closed = 1;
  spotify_http_release(&c->http);
}

static double opt_number(lua_State *L, int t, const char *name, double dflt) {
  lua_getfield(L, t, name);
  double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

/* strdup of an optional string option; *ok cleared when out of memory. */
static char *opt_string(lua_State *L, int t, const char *name, int *ok) {
  lua_getfield(L, t, name);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  char *copy = s ? strdup(s) : NULL;
  lua_pop(L, 1);
  if (s && !copy) *ok = 0;
  return copy;
}

/* core.new(options) -> client userdata. Options were checked in Lua. */
static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  client *c = lua_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->closed = 1; /* nothing to release until the handles exist */
  luaL_getmetatable(L, SPOTIFY_CLIENT_MT);
  lua_setmetatable(L, -2);
  spotify_http_options *o = &c->http.opt;
  o->timeout_ms = (long)(opt_number(L, 1, "timeout", 10) * 1000);
  o->connect_timeout_ms = (long)(opt_number(L, 1, "connect_timeout", 5) * 1000);
  o->max_body = (size_t)opt_number(L, 1, "max_body", 64.0 * 1024 * 1024);
  c->closed = 0;
  int ok = 1;
  o->ca_file = opt_string(L, 1, "ca_file", &ok);
  o->proxy = opt_string(L, 1, "proxy", &ok);
  o->user_agent = opt_string(L, 1, "user_agent", &ok);
  if (!ok || spotify_http_init(&c->http) != 0) {
    release(c);
    return luaL_error(L, "spotify: cannot create libcurl handles");
  }
  return 1;
}

static int push_outcome(lua_State *L, spotify_xfer *x, spotify_outcome *o) {
  if (o->status == 0) {
    lua_pushnil(L);
    lua_pushstring(L, o->kind);
    lua_pushstring(L, o->message);
    lua_pushboolean(L, o->retry);
    lua_pushnumber(L, o->elapsed);
    return 5;
  }
  lua_pushinteger(L, (lua_Integer)o->status);
  lua_pushlstring(L, x->body ? x->body : "", x->len);
  if (x->retry_after >= 0)
    lua_pushnumber(L, x->retry_after);
  else
    lua_pushnil(L);
  lua_pushnumber(L, o->elapsed);
  return 4;
}

static int closed_result(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  lua_pushliteral(L, "client is closed");
  lua_pushboolean(L, 0);
  return 4;
}

/* core.perform(c, method, url, auth|nil, body|nil)
 *   -> status, body, retry_after|nil, elapsed
 *   |  nil, kind, message, retryable, elapsed */
static int l_perform(lua_State *L) {
  client *c = check_client(L, 1);
  const char *method = luaL_checkstring(L, 2);
  const char *url = luaL_checkstring(L, 3);
  const char *auth = luaL_optstring(L, 4, NULL);
  size_t body_len = 0;
  const char *body = luaL_optlstring(L, 5, NULL, &body_len);
  if (c->closed) return closed_result(L);
  spotify_xfer *x = &c->http.sync;
  spotify_outcome o;
  const char *err = spotify_xfer_prepare(&c->http, x, method, url, auth, body, body_len);
  if (err) return luaL_error(L, "spotify: %s", err);
  CURLcode code = curl_easy_perform(x->easy);
  spotify_xfer_finish(&c->http, x, code, &o);
  return push_outcome(L, x, &o);
}

/* core.submit(c, tag, method, url, auth|nil, body|nil) -> true */
static int l_submit(lua_State *L) {
  client *c = check_client(L, 1);
  lua_Integer tag = luaL_checkinteger(L, 2);
  const char *method = luaL_checkstring(L, 3);
  const char *url = luaL_checkstring(L, 4);
  const char *auth = luaL_optstring(L, 5, NULL);
  size_t body_len = 0;
  const char *body = luaL_optlstring(L, 6, NULL, &body_len);
  if (c->closed) return luaL_error(L, "spotify: client is closed");
  spotify_xfer *x = spotify_http_idle_xfer(&c->http);
  const char *err =
      x ? spotify_xfer_prepare(&c->http, x, method, url, auth, body, body_len) : "out of memory";
  if (err == NULL && curl_multi_add_handle(c->http.multi, x->easy) != CURLM_OK)
    err = "cannot add a transfer to the multi handle";
  if (err) return luaL_error(L, "spotify: %s", err);
  x->tag = tag;
  x->busy = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* One finished transfer as {tag, status, body, retry_after, elapsed} or
 * {tag, kind, message, retry, elapsed}. */
static void push_done(lua_State *L, client *c, spotify_xfer *x) {
  spotify_outcome o;
  spotify_xfer_finish(&c->http, x, x->result, &o);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)x->tag);
  lua_setfield(L, -2, "tag");
  lua_pushnumber(L, o.elapsed);
  lua_setfield(L, -2, "elapsed");
  if (o.status == 0) {
    lua_pushstring(L, o.kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, o.message);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, o.retry);
    lua_setfield(L, -2, "retry");
  } else {
    lua_pushinteger(L, (lua_Integer)o.status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, x->body ? x->body : "", x->len);
    lua_setfield(L, -2, "body");
    if (x->retry_after >= 0) {
      lua_pushnumber(L, x->retry_after);
      lua_setfield(L, -2, "retry_after");
    }
  }
  x->done = 0; /* only now: an allocation failure above keeps it queued */
}

/* core.run(c, wait_seconds) -> array of finished transfers, running count.
 * Waits at most wait_seconds for progress when nothing has finished. */
static int l_run(lua_State *L) {
  client *c = check_client(L, 1);
  double wait = luaL_optnumber(L, 2, 0);
  if (c->closed) return luaL_error(L, "spotify: client is closed");
  spotify_http *h = &c->http;
  int running = spotify_http_drain(h);
  int finished = 0;
  for (int i = 0; i < h->npool; i++) finished += h->pool[i]->done;
  if (finished == 0 && running > 0 && wait > 0) {
    curl_multi_poll(h->multi, NULL, 0, (int)(wait * 1000), NULL);
    running = spotify_http_drain(h);
  }
  lua_newtable(L);
  int n = 0;
  for (int i = 0; i < h->npool; i++) {
    if (!h->pool[i]->done) continue;
    push_done(L, c, h->pool[i]);
    lua_rawseti(L, -2, ++n);
  }
  lua_pushinteger(L, running);
  return 2;
}

/* core.cancel(c, tag) -> true if a running transfer was dropped */
static int l_cancel(lua_State *L) {
  client *c = check_client(L, 1);
  lua_Integer tag = luaL_checkinteger(L, 2);
  int found = 0;
  for (int i = 0; !c->closed && i < c->http.npool; i++) {
    spotify_xfer *x = c->http.pool[i];
    if ((x->busy || x->done) && x->tag == tag) {
      if (x->busy) curl_multi_remove_handle(c->http.multi, x->easy);
      x->busy = x->done = 0;
      found = 1;
    }
  }
  lua_pushboolean(L, found);
  return 1;
}

/* core.fd_info(c) -> {read = {fd...}, write = {fd...}, timeout = s|nil} */
static int l_fd_info(lua_State *L) {
  client *c = check_client(L, 1);
  lua_createtable(L, 0, 3);
  if (c->closed) return 1;
  fd_set r, w, x;
  int maxfd = -1;
  long timeout_ms = -1;
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_ZERO(&x);
  curl_multi_fdset(c->http.multi, &r, &w, &x, &maxfd);
  curl_multi_timeout(c->http.multi, &timeout_ms);
  const char *names[] = {"read", "write"};
  fd_set *sets[] = {&r, &w};
  for (int s = 0; s < 2; s++) {
    lua_newtable(L);
    int n = 0;
    for (int fd = 0; fd <= maxfd; fd++)
      if (FD_ISSET(fd, sets[s])) {
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

/* core.transport_stats(c) -> requests, bytes_received, connections_opened */
static int l_transport_stats(lua_State *L) {
  client *c = check_client(L, 1);
  lua_pushinteger(L, (lua_Integer)c->http.requests);
  lua_pushinteger(L, (lua_Integer)c->http.bytes_received);
  lua_pushinteger(L, (lua_Integer)c->http.connections_opened);
  return 3;
}

static int l_close(lua_State *L) {
  release(check_client(L, 1));
  return 0;
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, check_client(L, 1)->closed);
  return 1;
}

void spotify_open_http(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"new", l_new},     {"perform", l_perform},     {"submit", l_submit},
      {"run", l_run},     {"cancel", l_cancel},       {"fd_info", l_fd_info},
      {"close", l_close}, {"is_closed", l_is_closed}, {"transport_stats", l_transport_stats},
      {NULL, NULL}};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  luaL_newmetatable(L, SPOTIFY_CLIENT_MT);
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, SPOTIFY_CLIENT_MT);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "client_mt");
  spotify_setfuncs(L, fns);
}
