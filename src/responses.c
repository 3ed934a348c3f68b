/* The response cache's entries: a hash table of URL keys threaded on a
 * recency list, and the shared tier's value format. */
#include "responses.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spotify.h"

#define KEY_PREFIX SPOTIFY_ANSWER_PREFIX

#define COPIER "spotify.responses.copier"

struct spotify_rentry {
  char *key, *text;
  size_t len;
  int tpl; /* registry ref to the decoded answer that hits copy, made on the first hit */
  unsigned hash;
  double fresh_until, stale_until;
  spotify_rentry *newer, *older, *chain;
};

spotify_responses *spotify_check_responses(lua_State *L, int i) {
  return luaL_checkudata(L, i, SPOTIFY_RESPONSES_MT);
}

double spotify_responses_ttl(const spotify_responses *r, const char *name) {
  if (name)
    for (int i = 0; i < r->nrules; i++)
      if (strcmp(r->rules[i].name, name) == 0) return r->rules[i].ttl;
  return r->ttl_default;
}

static unsigned hash_of(const char *s) {
  unsigned h = 2166136261u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static spotify_rentry **slot_of(spotify_responses *r, const char *key, unsigned h) {
  spotify_rentry **p = &r->buckets[h & (r->nbuckets - 1)];
  while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0)) p = &(*p)->chain;
  return p;
}

static void unlink_recency(spotify_responses *r, spotify_rentry *e) {
  if (e->newer)
    e->newer->older = e->older;
  else
    r->newest = e->older;
  if (e->older)
    e->older->newer = e->newer;
  else
    r->oldest = e->newer;
  e->newer = e->older = NULL;
}

static void link_newest(spotify_responses *r, spotify_rentry *e) {
  e->older = r->newest;
  e->newer = NULL;
  if (r->newest) r->newest->newer = e;
  r->newest = e;
  if (r->oldest == NULL) r->oldest = e;
}

/* What an entry costs the process tier: its text, key and bookkeeping
 * (the decoded template a hit makes is Lua's to count). */
static size_t entry_bytes(const char *key, size_t len) {
  return sizeof(spotify_rentry) + strlen(key) + 1 + len + 1;
}

static void drop(lua_State *L, spotify_responses *r, spotify_rentry *e) {
  spotify_rentry **p = slot_of(r, e->key, e->hash);
  if (*p == e) *p = e->chain;
  unlink_recency(r, e);
  r->bytes -= entry_bytes(e->key, e->len);
  luaL_unref(L, LUA_REGISTRYINDEX, e->tpl);
  free(e->key);
  free(e->text);
  free(e);
  r->count--;
}

int spotify_responses_find(lua_State *L, spotify_responses *r, const char *key,
                           spotify_rlook *out) {
  if (r->nbuckets == 0) return 0;
  unsigned h = hash_of(key);
  spotify_rentry *e = *slot_of(r, key, h);
  if (e == NULL) return 0;
  if (e->stale_until <= spotify_wall_time()) {
    drop(L, r, e);
    return 0;
  }
  unlink_recency(r, e);
  link_newest(r, e);
  out->text = e->text;
  out->len = e->len;
  out->fresh_until = e->fresh_until;
  out->stale_until = e->stale_until;
  return 1;
}

void spotify_responses_put(lua_State *L, spotify_responses *r, const char *key, const char *text,
                           size_t len, double fresh_until, double stale_until) {
  if (r->nbuckets == 0) return;
  unsigned h = hash_of(key);
  spotify_rentry *old = *slot_of(r, key, h);
  if (old) drop(L, r, old);
  size_t size = entry_bytes(key, len);
  if (size > r->lru_bytes) return; /* larger than the whole tier */
  spotify_rentry *e = calloc(1, sizeof *e);
  char *k = strdup(key), *t = malloc(len + 1);
  if (e == NULL || k == NULL || t == NULL) { /* a cache that cannot keep it forgets it */
    free(e);
    free(k);
    free(t);
    return;
  }
  memcpy(t, text, len);
  t[len] = '\0';
  e->key = k;
  e->text = t;
  e->tpl = LUA_NOREF;
  e->len = len;
  e->hash = h;
  e->fresh_until = fresh_until;
  e->stale_until = stale_until;
  spotify_rentry **p = slot_of(r, key, h);
  e->chain = *p;
  *p = e;
  link_newest(r, e);
  r->count++;
  r->bytes += size;
  while (r->count > r->lru_max || r->bytes > r->lru_bytes) drop(L, r, r->oldest);
}

/* Decoding the text again costs as much as the rest of an uncached call;
 * copying a decoded answer (the copier of responses.lua) costs a fraction.
 * The template is never handed out, so no caller's change reaches another. */
int spotify_responses_push_copy(lua_State *L, spotify_responses *r, const char *key) {
  if (r->nbuckets == 0) return 0;
  spotify_rentry *e = *slot_of(r, key, hash_of(key));
  if (e == NULL) return 0;
  int top = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, COPIER);
  if (!lua_isfunction(L, -1)) {
    lua_settop(L, top);
    return 0;
  }
  if (e->tpl == LUA_NOREF) {
    if (spotify_json_decode(L, e->text, e->len) != 1 || !lua_istable(L, -1)) {
      lua_settop(L, top);
      return 0;
    }
    e->tpl = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->tpl);
  if (lua_pcall(L, 1, 1, 0) != 0 || !lua_istable(L, -1)) {
    lua_settop(L, top);
    return 0;
  }
  return 1;
}

char *spotify_responses_entry(const char *text, size_t len, double fresh_until, double stale_until,
                              size_t *out_len) {
  char head[64];
  int n = snprintf(head, sizeof head, "%.3f %.3f\n", fresh_until, stale_until);
  if (n < 0 || (size_t)n >= sizeof head) return NULL;
  char *s = malloc((size_t)n + len + 1);
  if (s == NULL) return NULL;
  memcpy(s, head, (size_t)n);
  memcpy(s + n, text, len);
  s[(size_t)n + len] = '\0';
  *out_len = (size_t)n + len;
  return s;
}

int spotify_responses_parse(const char *s, size_t len, spotify_rlook *out) {
  const char *nl = memchr(s, '\n', len);
  if (nl == NULL || nl - s > 60) return 0;
  char head[64];
  memcpy(head, s, (size_t)(nl - s));
  head[nl - s] = '\0';
  double fresh, stale;
  char extra;
  if (sscanf(head, "%lf %lf%c", &fresh, &stale, &extra) != 2 || !isfinite(fresh) ||
      !isfinite(stale))
    return 0;
  out->text = nl + 1;
  out->len = len - (size_t)(nl + 1 - s);
  out->fresh_until = fresh;
  out->stale_until = stale;
  return 1;
}

#define LANGUAGE_MARK " Accept-Language="

/* A user's answers start with "token=<digest> ", which no URL does: no
 * key of one token is another's or the app token's. */
#define SCOPE_MARK "token="

char *spotify_responses_variant(const char *url, const char *language, const char *scope) {
  size_t n = strlen(url) + 1;
  if (language) n += sizeof LANGUAGE_MARK + strlen(language);
  if (scope) n += sizeof SCOPE_MARK + strlen(scope) + 1;
  char *k = malloc(n);
  if (k == NULL) return NULL;
  k[0] = '\0';
  if (scope) strcat(strcat(strcat(k, SCOPE_MARK), scope), " ");
  strcat(k, url);
  if (language) strcat(strcat(k, LANGUAGE_MARK), language);
  return k;
}

char *spotify_responses_key(const char *variant) {
  char *k = malloc(sizeof KEY_PREFIX + strlen(variant));
  if (k) strcat(strcpy(k, KEY_PREFIX), variant);
  return k;
}

static const char *find_word(const char *s, size_t len, const char *word) {
  size_t n = strlen(word);
  for (size_t i = 0; i + n <= len; i++)
    if (strncasecmp(s + i, word, n) == 0) return s + i + n;
  return NULL;
}

double spotify_parse_max_age(const char *value, size_t len) {
  if (find_word(value, len, "no-store") || find_word(value, len, "no-cache")) return 0;
  const char *p = find_word(value, len, "max-age="), *end = value + len;
  if (p == NULL) return 0;
  double v = 0;
  for (; p < end && *p >= '0' && *p <= '9' && v < 1e9; p++) v = v * 10 + (*p - '0');
  return v;
}

unsigned spotify_cache_control_flags(const char *value, size_t len) {
  return (find_word(value, len, "no-store") ? SPOTIFY_CC_NO_STORE : 0) |
         (find_word(value, len, "private") ? SPOTIFY_CC_PRIVATE : 0);
}

int spotify_responses_peek(lua_State *L, spotify_responses *r, const char *key) {
  spotify_rlook e;
  return spotify_responses_find(L, r, key, &e) && e.fresh_until > spotify_wall_time() &&
         spotify_responses_push_copy(L, r, key);
}

/* ---- the Lua object ---- */

static void release(lua_State *L, spotify_responses *r) {
  while (r->oldest) drop(L, r, r->oldest);
  free(r->buckets);
  for (int i = 0; i < r->nrules; i++) free(r->rules[i].name);
  free(r->rules);
  r->buckets = NULL;
  r->rules = NULL;
  r->nbuckets = 0;
  r->nrules = 0;
  spotify_cache_unbind(L, &r->store);
}

static int l_gc(lua_State *L) {
  release(L, luaL_checkudata(L, 1, SPOTIFY_RESPONSES_MT));
  return 0;
}

/* ttl at index i: a number, or {name = seconds, default = seconds}; checked in Lua. */
static int take_ttl(lua_State *L, spotify_responses *r, int i) {
  r->ttl_default = -1;
  if (lua_type(L, i) == LUA_TNUMBER) {
    r->ttl_default = lua_tonumber(L, i);
    return 0;
  }
  if (!lua_istable(L, i)) return 0;
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, i)) {
    n++;
    lua_pop(L, 1);
  }
  r->rules = calloc((size_t)n + 1, sizeof *r->rules);
  if (r->rules == NULL) return -1;
  lua_pushnil(L);
  while (lua_next(L, i)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (k == NULL) continue;
    if (strcmp(k, "default") == 0) {
      r->ttl_default = v;
    } else {
      char *name = strdup(k);
      if (name == NULL) return -1;
      r->rules[r->nrules].name = name;
      r->rules[r->nrules++].ttl = v;
    }
  }
  return 0;
}

/* core.responses(store | nil, ttl, lru, stale_if_error, max_ttl, max_entry_bytes,
 * lru_bytes) -> object; the values checked in Lua (responses.lua) */
static int l_new(lua_State *L) {
  lua_settop(L, 7);
  spotify_responses *r = lua_newuserdata(L, sizeof *r);
  memset(r, 0, sizeof *r);
  r->store.ref = LUA_NOREF;
  luaL_getmetatable(L, SPOTIFY_RESPONSES_MT);
  lua_setmetatable(L, -2);
  double lru = luaL_optnumber(L, 3, 1000), stale = luaL_optnumber(L, 4, 0);
  r->lru_max = lru > 1e7 ? 10000000 : lru < 0 ? 0 : (int)lru;
  r->stale = stale > 0 ? stale : 0;
  r->max_ttl = luaL_optnumber(L, 5, 86400);
  r->max_entry_bytes = (size_t)luaL_optnumber(L, 6, 0);
  r->lru_bytes = (size_t)luaL_optnumber(L, 7, 32 * 1024 * 1024);
  if (r->lru_max > 0) {
    size_t n = 16;
    while (n < (size_t)r->lru_max * 2) n *= 2;
    r->buckets = calloc(n, sizeof *r->buckets);
    r->nbuckets = r->buckets ? n : 0;
    if (r->buckets == NULL) return luaL_error(L, "spotify: out of memory");
  }
  if (take_ttl(L, r, 2) != 0) return luaL_error(L, "spotify: out of memory");
  if (!lua_isnil(L, 1)) spotify_cache_bind(L, &r->store, 1);
  return 1;
}

/* core.responses_copier(fn): fn(template) -> a copy a caller may change */
static int l_copier(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, COPIER);
  return 0;
}

void spotify_open_responses(lua_State *L) {
  luaL_newmetatable(L, SPOTIFY_RESPONSES_MT);
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, SPOTIFY_RESPONSES_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "responses");
  lua_pushcfunction(L, l_copier);
  lua_setfield(L, -2, "responses_copier");
  lua_pushliteral(L, SPOTIFY_ANSWER_PREFIX);
  lua_setfield(L, -2, "answer_prefix");
}
