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
  double fresh_until, stale_until, keep_until;
  char *etag, *last_modified; /* validators, or NULL */
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

double spotify_responses_stale_until(const spotify_responses *r, double fresh_until) {
  return fresh_until + fmax(r->stale, r->swr);
}

int spotify_responses_swr(const spotify_responses *r, double fresh_until, double now) {
  return r->swr > 0 && fresh_until <= now && now < fresh_until + r->swr;
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
  free(e->etag);
  free(e->last_modified);
  free(e);
  r->count--;
}

int spotify_responses_find(lua_State *L, spotify_responses *r, const char *key,
                           spotify_rlook *out) {
  if (r->nbuckets == 0) return 0;
  unsigned h = hash_of(key);
  spotify_rentry *e = *slot_of(r, key, h);
  if (e == NULL) return 0;
  if (e->keep_until <= spotify_wall_time()) {
    drop(L, r, e);
    return 0;
  }
  unlink_recency(r, e);
  link_newest(r, e);
  out->text = e->text;
  out->len = e->len;
  out->fresh_until = e->fresh_until;
  out->stale_until = e->stale_until;
  out->keep_until = e->keep_until;
  out->etag = e->etag;
  out->last_modified = e->last_modified;
  return 1;
}

int spotify_validator_ok(const char *v, size_t len) {
  if (len == 0 || len > SPOTIFY_VALIDATOR_MAX) return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e) return 0;
  return 1;
}

static char *validator_copy(const char *v, int *failed) {
  if (v == NULL || !spotify_validator_ok(v, strlen(v))) return NULL;
  char *c = strdup(v);
  if (c == NULL) *failed = 1;
  return c;
}

void spotify_responses_put(lua_State *L, spotify_responses *r, const char *key, const char *text,
                           size_t len, double fresh_until, double stale_until) {
  spotify_responses_put_validated(L, r, key, text, len, fresh_until, stale_until, stale_until, NULL,
                                  NULL);
}

int spotify_responses_renew(spotify_responses *r, const char *key, const char *text, size_t len,
                            double fresh_until, double stale_until, double keep_until) {
  if (r->nbuckets == 0) return 0;
  spotify_rentry *e = *slot_of(r, key, hash_of(key));
  /* Only the answer the 304 was about: the entry may hold another text
   * (one this process kept, while the validators came from the store). */
  if (e == NULL || e->len != len || memcmp(e->text, text, len) != 0) return 0;
  e->fresh_until = fresh_until;
  e->stale_until = stale_until;
  e->keep_until = keep_until > stale_until ? keep_until : stale_until;
  return 1;
}

void spotify_responses_put_validated(lua_State *L, spotify_responses *r, const char *key,
                                     const char *text, size_t len, double fresh_until,
                                     double stale_until, double keep_until, const char *etag,
                                     const char *last_modified) {
  if (r->nbuckets == 0) return;
  unsigned h = hash_of(key);
  spotify_rentry *old = *slot_of(r, key, h);
  if (old) drop(L, r, old);
  size_t size = entry_bytes(key, len);
  if (size > r->lru_bytes) return; /* larger than the whole tier */
  spotify_rentry *e = calloc(1, sizeof *e);
  char *k = strdup(key), *t = malloc(len + 1);
  int failed = 0;
  char *et = validator_copy(etag, &failed), *lm = validator_copy(last_modified, &failed);
  if (e == NULL || k == NULL || t == NULL || failed) { /* a cache that cannot keep it forgets it */
    free(e);
    free(k);
    free(t);
    free(et);
    free(lm);
    return;
  }
  e->etag = et;
  e->last_modified = lm;
  e->keep_until = (et || lm) && keep_until > stale_until ? keep_until : stale_until;
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

/* A shared-tier value: the head (n bytes of snprintf's, < 0 or size when
 * it did not fit) then the text; malloc'd, NULL when it cannot be made. */
static char *entry_of(const char *head, int n, size_t size, const char *text, size_t len,
                      size_t *out_len) {
  if (n < 0 || (size_t)n >= size) return NULL;
  char *s = malloc((size_t)n + len + 1);
  if (s == NULL) return NULL;
  memcpy(s, head, (size_t)n);
  memcpy(s + n, text, len);
  s[(size_t)n + len] = '\0';
  *out_len = (size_t)n + len;
  return s;
}

char *spotify_responses_entry(const char *text, size_t len, double fresh_until, double stale_until,
                              size_t *out_len) {
  char head[64];
  int n = snprintf(head, sizeof head, "%.3f %.3f\n", fresh_until, stale_until);
  return entry_of(head, n, sizeof head, text, len, out_len);
}

char *spotify_responses_entry_validated(const char *text, size_t len, const spotify_rlook *e,
                                        size_t *out_len) {
  const char *et = e->etag && spotify_validator_ok(e->etag, strlen(e->etag)) ? e->etag : NULL;
  const char *lm =
      e->last_modified && spotify_validator_ok(e->last_modified, strlen(e->last_modified))
          ? e->last_modified
          : NULL;
  if (et == NULL && lm == NULL)
    return spotify_responses_entry(text, len, e->fresh_until, e->stale_until, out_len);
  char head[64 + 2 * (SPOTIFY_VALIDATOR_MAX + 8)];
  int n = snprintf(head, sizeof head, "%.3f %.3f %.3f\n%s%s%s%s%s%s", e->fresh_until,
                   e->stale_until, e->keep_until, et ? "etag " : "", et ? et : "", et ? "\n" : "",
                   lm ? "lm " : "", lm ? lm : "", lm ? "\n" : "");
  return entry_of(head, n, sizeof head, text, len, out_len);
}

/* One "name VALUE\n" line of a validator at p; the value's span, or NULL. */
static const char *validator_line(const char *p, const char *end, const char *name,
                                  const char **value, size_t *vlen) {
  size_t n = strlen(name);
  if ((size_t)(end - p) <= n || memcmp(p, name, n) != 0) return NULL;
  const char *nl = memchr(p + n, '\n', (size_t)(end - p - n));
  if (nl == NULL || !spotify_validator_ok(p + n, (size_t)(nl - p - n))) return NULL;
  *value = p + n;
  *vlen = (size_t)(nl - p - n);
  return nl + 1;
}

int spotify_responses_parse(const char *s, size_t len, spotify_rlook *out) {
  const char *nl = memchr(s, '\n', len), *end = s + len;
  if (nl == NULL || nl - s > 60) return 0;
  char head[64];
  memcpy(head, s, (size_t)(nl - s));
  head[nl - s] = '\0';
  double fresh, stale, keep;
  char extra;
  int got = sscanf(head, "%lf %lf %lf%c", &fresh, &stale, &keep, &extra);
  if ((got != 2 && got != 3) || !isfinite(fresh) || !isfinite(stale) ||
      (got == 3 && !isfinite(keep)))
    return 0;
  const char *p = nl + 1, *q;
  out->etag = out->last_modified = NULL;
  out->keep_until = stale;
  if (got == 3) { /* validators follow, copied into out */
    char *etag = out->etag_buf, *lm = out->lm_buf;
    const char *v;
    size_t vlen;
    if ((q = validator_line(p, end, "etag ", &v, &vlen)) != NULL) {
      memcpy(etag, v, vlen);
      etag[vlen] = '\0';
      out->etag = etag;
      p = q;
    }
    if ((q = validator_line(p, end, "lm ", &v, &vlen)) != NULL) {
      memcpy(lm, v, vlen);
      lm[vlen] = '\0';
      out->last_modified = lm;
      p = q;
    }
    if (out->etag == NULL && out->last_modified == NULL) return 0;
    out->keep_until = keep > stale ? keep : stale;
  }
  out->text = p;
  out->len = (size_t)(end - p);
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

const spotify_batch_row *spotify_responses_batch_row(const spotify_responses *r, const char *name) {
  if (name)
    for (int i = 0; i < r->nrows; i++)
      if (strcmp(r->rows[i].name, name) == 0) return &r->rows[i];
  return NULL;
}

/* ---- the items of a batch answer, without decoding it ---- */

#define MAX_DEPTH 256

static const char *skip_space(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
  return p;
}

static const char *skip_string(const char *p, const char *end) {
  for (p++; p < end; p++) {
    if ((unsigned char)*p < 0x20) return NULL;
    if (*p == '\\')
      p++;
    else if (*p == '"')
      return p + 1;
  }
  return NULL;
}

static int scalar_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' ||
         c == 'E';
}

/* One scalar: a number or a literal (true, false, null). */
static const char *skip_scalar(const char *p, const char *end) {
  const char *q = p;
  while (q < end && scalar_char(*q)) q++;
  size_t n = (size_t)(q - p);
  if (n == 0) return NULL;
  if (*p >= 'a' && *p <= 'z' &&
      !(n == 4 && (memcmp(p, "true", 4) == 0 || memcmp(p, "null", 4) == 0)) &&
      !(n == 5 && memcmp(p, "false", 5) == 0))
    return NULL;
  return q;
}

/* After an object's '{' or ',': a member's name and its ':'. */
static const char *member_name(const char *p, const char *end) {
  p = skip_space(p, end);
  if (p >= end || *p != '"' || (p = skip_string(p, end)) == NULL) return NULL;
  p = skip_space(p, end);
  return p < end && *p == ':' ? p + 1 : NULL;
}

/* One value, and the space after it; brackets must pair (a stack of the
 * open ones) and every member of an object must have a name, so a cut or
 * garbled text is never taken for an item. */
static const char *skip_value(const char *p, const char *end) {
  char open[MAX_DEPTH];
  int depth = 0;
  for (;;) {
    p = skip_space(p, end); /* a value starts here */
    if (p >= end) return NULL;
    if (*p == '{' || *p == '[') {
      char c = *p;
      if (depth == MAX_DEPTH) return NULL;
      open[depth++] = c;
      p = skip_space(p + 1, end);
      if (p >= end || *p != (c == '{' ? '}' : ']')) {
        if (c == '{' && (p = member_name(p, end)) == NULL) return NULL;
        continue;
      }
      p++; /* empty */
      depth--;
    } else {
      p = *p == '"' ? skip_string(p, end) : skip_scalar(p, end);
      if (p == NULL) return NULL;
    }
    for (;;) { /* after a value: its container ends, or the next element follows */
      p = skip_space(p, end);
      if (depth == 0) return p;
      if (p >= end) return NULL;
      if (*p == (open[depth - 1] == '{' ? '}' : ']')) {
        p++;
        depth--;
        continue;
      }
      if (*p != ',') return NULL;
      p++;
      if (open[depth - 1] == '{' && (p = member_name(p, end)) == NULL) return NULL;
      break;
    }
  }
}

int spotify_json_items(const char *s, size_t len, const char *field, const char **starts,
                       size_t *lens, int max) {
  const char *p = skip_space(s, s + len), *end = s + len, *items = NULL;
  size_t flen = strlen(field);
  if (p >= end || *p != '{') return -1;
  p = skip_space(p + 1, end);
  for (;;) { /* each member: note the field's value */
    if (p >= end || *p != '"') return -1;
    const char *name = p + 1;
    if ((p = skip_string(p, end)) == NULL) return -1;
    int mine = (size_t)(p - 1 - name) == flen && memcmp(name, field, flen) == 0;
    p = skip_space(p, end);
    if (p >= end || *p != ':') return -1;
    p = skip_space(p + 1, end);
    if (mine) items = p;
    if ((p = skip_value(p, end)) == NULL) return -1;
    if (p >= end || *p != ',') break;
    p = skip_space(p + 1, end);
  }
  if (p >= end || *p != '}' || skip_space(p + 1, end) != end || items == NULL || *items != '[')
    return -1;
  int n = 0;
  p = skip_space(items + 1, end);
  if (p < end && *p == ']') return 0;
  for (;;) {
    const char *v = p;
    if ((p = skip_value(p, end)) == NULL || n == max) return -1;
    const char *ve = p;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r' || ve[-1] == '\n')) ve--;
    starts[n] = v;
    lens[n++] = (size_t)(ve - v);
    if (p >= end) return -1;
    if (*p == ']') return n;
    if (*p != ',') return -1;
    p = skip_space(p + 1, end);
  }
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

static void free_rows(spotify_responses *r) {
  for (int i = 0; i < r->nrows; i++) {
    spotify_batch_row *w = &r->rows[i];
    free(w->name);
    free(w->single);
    free(w->path);
    free(w->before);
    free(w->after);
    free(w->field);
  }
  free(r->rows);
  r->rows = NULL;
  r->nrows = 0;
}

static void release(lua_State *L, spotify_responses *r) {
  while (r->oldest) drop(L, r, r->oldest);
  free_rows(r);
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
 * lru_bytes, stale_while_revalidate) -> object; the values checked in Lua
 * (responses.lua) */
static int l_new(lua_State *L) {
  lua_settop(L, 8);
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
  r->swr = luaL_optnumber(L, 8, 0);
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

static char *field_copy(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *v = lua_tostring(L, -1);
  char *c = v ? strdup(v) : NULL;
  lua_pop(L, 1);
  return c;
}

/* Row i of the list at index 2; 0 when out of memory or malformed. */
static int take_row(lua_State *L, spotify_batch_row *w, int i) {
  lua_rawgeti(L, 2, i);
  int t = lua_gettop(L);
  char *single_path = lua_istable(L, t) ? field_copy(L, t, "single_path") : NULL;
  char *at = single_path ? strstr(single_path, "{id}") : NULL;
  if (at) {
    *at = '\0';
    w->before = strdup(single_path);
    w->after = strdup(at + 4);
    w->name = field_copy(L, t, "name");
    w->single = field_copy(L, t, "single");
    w->path = field_copy(L, t, "path");
    w->field = field_copy(L, t, "field");
  }
  free(single_path);
  lua_settop(L, t - 1);
  return w->before && w->after && w->name && w->single && w->path && w->field;
}

/* core.responses_batches(r, {{name, single, path, single_path, field}, ...}):
 * the plural methods whose answers are kept per item (catalog.lua). */
static int l_batches(lua_State *L) {
  spotify_responses *r = spotify_check_responses(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)spotify_rawlen(L, 2);
  free_rows(r);
  r->rows = calloc((size_t)n + 1, sizeof *r->rows);
  if (r->rows == NULL) return luaL_error(L, "spotify: out of memory");
  for (int i = 1; i <= n; i++) {
    int ok = take_row(L, &r->rows[r->nrows++], i);
    if (!ok) {
      free_rows(r);
      return luaL_error(L,
                        "spotify: a batch row needs name, single, path, single_path with {id} "
                        "and field (or memory ran out)");
    }
  }
  return 0;
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
  lua_pushcfunction(L, l_batches);
  lua_setfield(L, -2, "responses_batches");
  lua_pushliteral(L, SPOTIFY_ANSWER_PREFIX);
  lua_setfield(L, -2, "answer_prefix");
}
