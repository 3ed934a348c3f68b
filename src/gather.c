/* core.gather: GET a list of URLs on the multi driver with at most
 * `concurrency` in flight, submitting more as results come, in one call
 * from Lua. Exchange i carries tag base + i, so a gather cut short (the
 * result of another exchange of the client came in: a started request's)
 * is taken up again by calling it with the same tables: what is in the
 * tables is done, what the driver holds is in flight, the rest is next. */
#include "gather.h"

#include "client.h"
#include "http.h"
#include "spotify.h"

#define FOREVER 86400.0 /* a multi run's wait: it returns once a job finishes */

typedef struct gather_args {
  spotify_client *c;
  lua_Integer base;
  int n, concurrency, nxt, in_flight, left, others;
  const char *name;
  int run; /* 0: submit what fits and return; the caller runs the driver */
} gather_args;

/* Stack under the bracket: 1 args, 2 urls, 3 values, 4 errs, 5 others. */
enum { URLS = 2, VALUES, ERRS, OTHERS };

static int is_set(lua_State *L, int t, int i) {
  lua_rawgeti(L, t, i);
  int set = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return set;
}

static int mine(const gather_args *g, lua_Integer tag) {
  return tag > g->base && tag <= g->base + g->n;
}

/* Where a gather stands: indices done (in the tables) and in flight (held
 * by the driver); the first index after them all is next. */
static void take_stock(lua_State *L, gather_args *g) {
  const spotify_multi *m = &g->c->http.work;
  g->nxt = 1, g->in_flight = 0, g->left = g->n;
  for (int i = 1; i <= g->n; i++) {
    if (is_set(L, VALUES, i) || is_set(L, ERRS, i)) {
      g->left--;
      g->nxt = i + 1;
    }
  }
  for (int k = 0; k < m->n; k++) {
    const spotify_job *j = m->jobs[k];
    if (j->phase == SPOTIFY_JOB_FREE || !mine(g, j->tag)) continue;
    g->in_flight++;
    if ((int)(j->tag - g->base) >= g->nxt) g->nxt = (int)(j->tag - g->base) + 1;
  }
}

static void submit_more(lua_State *L, gather_args *g) {
  while (g->nxt <= g->n && g->in_flight < g->concurrency) {
    lua_rawgeti(L, URLS, g->nxt);
    const char *url = lua_tostring(L, -1);
    if (url == NULL || spotify_client_submit(L, g->c, g->base + g->nxt, "GET", url, g->name) != 0)
      luaL_error(L, "spotify: cannot start a transfer (out of memory)");
    lua_pop(L, 1);
    g->nxt++, g->in_flight++;
  }
}

/* One finished job: its result in place, or {tag, value | err} in others. */
static void collect(lua_State *L, spotify_job *j, void *ud) {
  gather_args *g = ud;
  if (mine(g, j->tag)) {
    int i = (int)(j->tag - g->base);
    if (spotify_push_result(L, &j->x) == 2) {
      lua_rawseti(L, ERRS, i);
      lua_pop(L, 1);
    } else {
      lua_rawseti(L, VALUES, i);
    }
    g->left--, g->in_flight--;
    return;
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, j->tag);
  lua_setfield(L, -2, "tag");
  if (spotify_push_result(L, &j->x) == 2) {
    lua_setfield(L, -3, "err");
    lua_pop(L, 1);
  } else {
    lua_setfield(L, -2, "value");
  }
  lua_rawseti(L, OTHERS, ++g->others);
}

static int drive(lua_State *L) {
  gather_args *g = lua_touserdata(L, 1);
  take_stock(L, g);
  if (!g->run) {
    submit_more(L, g);
    return 0;
  }
  while (g->left > 0 && g->others == 0 && !g->c->m.closed) {
    submit_more(L, g);
    spotify_multi_run(L, &g->c->http, FOREVER, collect, g);
  }
  return 0;
}

/* Every exchange still missing ends as closed. */
static void close_rest(lua_State *L, const gather_args *g, int values, int errs) {
  spotify_error e = {"closed", 0, NULL, -1, 0, NULL};
  for (int i = 1; i <= g->n; i++) {
    if (is_set(L, values, i) || is_set(L, errs, i)) continue;
    spotify_push_error(L, &e, NULL, NULL);
    lua_rawseti(L, errs, i);
  }
}

/* core.gather(c, urls, concurrency, base_tag, values, errs[, name[, run]])
 * -> others, left: GETs urls[i] with tag base_tag + i, results into
 * values[i] or errs[i]. Returns early, with the finished exchanges of other
 * tags as {tag, value | err}, when any come in; call again to go on. Done
 * when `left` is 0. With run == false it only submits what the concurrency
 * allows: a started request yields, and core.run brings the results. */
static int l_gather(lua_State *L) {
  spotify_client *c = spotify_check_client(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  gather_args g = {c, 0, 0, 1, 1, 0, 0, 0, NULL, 1};
  g.concurrency = (int)luaL_checkinteger(L, 3);
  if (g.concurrency < 1) g.concurrency = 1;
  g.base = luaL_checkinteger(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  g.name = luaL_optstring(L, 7, NULL);
  g.run = lua_isnoneornil(L, 8) || lua_toboolean(L, 8);
  g.n = (int)spotify_rawlen(L, 2);
  lua_settop(L, 7);
  lua_newtable(L); /* others, at 8 */
  if (!c->m.closed) {
    spotify_client_refuse_reentry(L, c);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 5);
    lua_pushvalue(L, 6);
    lua_pushvalue(L, 8);
    spotify_client_bracket(L, c, drive, &g, 4);
    lua_settop(L, 8);
  }
  if (c->m.closed) close_rest(L, &g, 5, 6);
  lua_pushinteger(L, c->m.closed ? 0 : g.left);
  return 2;
}

void spotify_open_gather(lua_State *L) {
  lua_pushcfunction(L, l_gather);
  lua_setfield(L, -2, "gather");
}
