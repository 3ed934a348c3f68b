/* The response cache and batch GETs together: a batch GET of a plural
 * method (endpoints.lua's batch rows, registered by catalog.lua) is
 * answered per item. Each item is kept under the key its single lookup
 * (track(id, opts)) would use, so tracks() then track() costs one request,
 * and a batch asks Spotify only for the IDs not held: its URL is rewritten
 * before it goes out, and the caller's answer is assembled in the caller's
 * order from the kept items and the new ones. Batch windows send ordinary
 * batch GETs, so they compose the same way in every driver.
 *
 * The single lookup's URL is the batch URL without its `ids` parameter and
 * with the ID in the single path: core.query sorts the keys, so the rest
 * of the query is exactly the single lookup's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"
#include "responses.h"
#include "spotify.h"

#define MAX_IDS 100 /* the largest batch the API takes (audio features) */

typedef struct item {
  char *id;
  char *url;         /* the single lookup's URL: what renews the item (stale_while_revalidate) */
  char *akey, *rkey; /* the single lookup's keys in the process tier and the store */
  char *text;        /* the item's JSON text, once held; NULL: missing or not found */
  size_t len;
  int held;
  char *stale; /* an expired text that may stand in (stale_if_error) */
  size_t stale_len;
} item;

struct spotify_compose {
  char *field;
  char *single; /* the single lookup's method name */
  double ttl;   /* the single lookups': > 0 seconds, < 0 the answer's max-age */
  int n;        /* the caller's IDs, repeats included */
  int of[MAX_IDS];
  int nitems; /* distinct IDs, in the caller's order of first mention */
  item items[MAX_IDS];
  int asked[MAX_IDS], nasked; /* the items the request asks for */
  int pos;                    /* the item the pending store operation is for */
  char *head, *tail;          /* the URL around its IDs */
  char *raw;                  /* the answer to the IDs asked */
  size_t raw_len;
  double fresh_until, stale_until; /* of the items just answered */
};

static int base62(const char *s, size_t n) {
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
      return 0;
  }
  return 1;
}

static char *cat(const char *a, size_t an, const char *b, size_t bn, const char *c, size_t cn) {
  char *s = malloc(an + bn + cn + 1);
  if (s == NULL) return NULL;
  memcpy(s, a, an);
  memcpy(s + an, b, bn);
  memcpy(s + an + bn, c, cn);
  s[an + bn + cn] = '\0';
  return s;
}

void spotify_compose_free(struct spotify_compose *c) {
  if (c == NULL) return;
  for (int i = 0; i < c->nitems; i++) {
    item *it = &c->items[i];
    free(it->id);
    free(it->url);
    free(it->akey);
    free(it->rkey);
    free(it->text);
    free(it->stale);
  }
  free(c->field);
  free(c->single);
  free(c->head);
  free(c->tail);
  free(c->raw);
  free(c);
}

/* The query's `ids` parameter: its value's span, and the rest of the query
 * without it (the single lookup's query). */
static const char *find_ids(const char *query, const char **value_end) {
  for (const char *p = query; p; p = strchr(p, '&')) {
    if (*p == '&') p++;
    if (strncmp(p, "ids=", 4) == 0) {
      *value_end = p + 4 + strcspn(p + 4, "&#");
      return p + 4;
    }
  }
  return NULL;
}

/* The distinct IDs of v (comma-separated) as items with their single
 * lookups' keys; 0 when one is not a bare ID or memory runs out. */
static int take_ids(spotify_exchange *x, struct spotify_compose *c, const spotify_batch_row *row,
                    const char *base, size_t base_len, const char *v, const char *ve,
                    const char *rest) {
  size_t before = strlen(row->before), after = strlen(row->after), rest_len = strlen(rest);
  while (v <= ve) {
    const char *comma = memchr(v, ',', (size_t)(ve - v));
    const char *e = comma ? comma : ve;
    size_t n = (size_t)(e - v);
    if (!base62(v, n) || c->n == MAX_IDS) return 0;
    int k = 0;
    while (k < c->nitems && !(strlen(c->items[k].id) == n && memcmp(c->items[k].id, v, n) == 0))
      k++;
    c->of[c->n++] = k;
    if (k == c->nitems) {
      item *it = &c->items[c->nitems++];
      if ((it->id = cat(v, n, "", 0, "", 0)) == NULL) return 0;
      /* base + before + id + after [+ ? rest] */
      char *path = cat(base, base_len, row->before, before, it->id, n);
      char *url =
          path ? cat(path, strlen(path), row->after, after, rest_len ? "?" : "", rest_len ? 1 : 0)
               : NULL;
      char *full = url ? cat(url, strlen(url), rest, rest_len, "", 0) : NULL;
      free(path);
      free(url);
      it->akey = full ? spotify_exchange_answer_key(x->m, full) : NULL;
      it->rkey = it->akey ? spotify_responses_key(it->akey) : NULL;
      it->url = full;
      if (it->rkey == NULL) return 0;
    }
    if (comma == NULL) break;
    v = comma + 1;
  }
  return c->n > 0;
}

void spotify_compose_named(spotify_exchange *x, const char *name) {
  spotify_responses *r = x->m->responses;
  const spotify_batch_row *row = r ? spotify_responses_batch_row(r, name) : NULL;
  if (row == NULL || x->compose || strcmp(x->method, "GET") != 0) return;
  double ttl = spotify_responses_ttl(r, row->single);
  const char *q = strchr(x->url, '?'), *ve = NULL;
  size_t plen = strlen(row->path);
  if (ttl == 0 || q == NULL || (size_t)(q - x->url) < plen || memcmp(q - plen, row->path, plen))
    return; /* not kept per item, or not this row's batch URL */
  const char *v = find_ids(q + 1, &ve);
  if (v == NULL || *ve == '#') return;
  /* the rest of the query: before `ids=` (without its '&') and after it */
  size_t pre = (size_t)(v - 4 - (q + 1)), post = strlen(ve);
  if (pre > 0) pre--;
  if (post > 0) post--;
  char *rest =
      cat(q + 1, pre, pre && post ? "&" : "", pre && post ? 1 : 0, post ? ve + 1 : "", post);
  struct spotify_compose *c = calloc(1, sizeof *c);
  int ok = rest && c && (c->field = strdup(row->field)) != NULL &&
           (c->single = strdup(row->single)) != NULL &&
           (c->head = cat(x->url, (size_t)(v - x->url), "", 0, "", 0)) != NULL &&
           (c->tail = strdup(ve)) != NULL &&
           take_ids(x, c, row, x->url, (size_t)(q - x->url) - plen, v, ve, rest);
  free(rest);
  if (!ok) { /* as an ordinary GET, then */
    spotify_compose_free(c);
    return;
  }
  c->ttl = ttl;
  x->compose = c;
}

static void hold(item *it, const char *text, size_t len) {
  char *t = malloc(len + 1);
  if (t == NULL) return; /* asked again, then */
  memcpy(t, text, len);
  t[len] = '\0';
  free(it->text);
  it->text = t;
  it->len = len;
  it->held = 1;
}

static void keep_stale(item *it, const spotify_rlook *e) {
  if (it->stale || !(e->stale_until > spotify_wall_time())) return;
  char *t = malloc(e->len + 1);
  if (t == NULL) return;
  memcpy(t, e->text, e->len);
  t[e->len] = '\0';
  it->stale = t;
  it->stale_len = e->len;
}

/* The caller's answer: {"field":[item, ...]} in the caller's order, an
 * item not held (not found) as null; stale: expired texts in place of the
 * missing ones. NULL when out of memory (or, stale, when one has none). */
static char *assemble(const struct spotify_compose *c, int stale, size_t *out_len) {
  size_t len = strlen(c->field) + 8;
  for (int i = 0; i < c->n; i++) {
    const item *it = &c->items[c->of[i]];
    if (stale && !it->held && it->stale == NULL) return NULL;
    len += (it->held ? it->len : stale ? it->stale_len : 4) + 1;
  }
  char *s = malloc(len + 1), *p = s;
  if (s == NULL) return NULL;
  p += sprintf(p, "{\"%s\":[", c->field);
  for (int i = 0; i < c->n; i++) {
    const item *it = &c->items[c->of[i]];
    const char *t = it->held ? it->text : stale ? it->stale : "null";
    size_t n = it->held ? it->len : stale ? it->stale_len : 4;
    if (i > 0) *p++ = ',';
    memcpy(p, t, n);
    p += n;
  }
  *p++ = ']';
  *p++ = '}';
  *p = '\0';
  *out_len = (size_t)(p - s);
  return s;
}

/* s (malloc'd, len bytes and a NUL) is the exchange's answer now. */
static int take_answer(spotify_exchange *x, char *s, size_t len) {
  if (s == NULL) return 0;
  free(x->answer);
  x->answer = s;
  x->answer_len = len;
  x->status = 200;
  x->body = s;
  x->body_len = len;
  return 1;
}

static int answer_assembled(spotify_exchange *x) {
  size_t len = 0;
  char *s = assemble(x->compose, 0, &len);
  return take_answer(x, s, len);
}

/* An item expired less than stale_while_revalidate ago: held as it is, and
 * its single lookup queued for one renewal. */
static int held_stale(spotify_exchange *x, item *it, const spotify_rlook *e) {
  if (!spotify_responses_swr(x->m->responses, e->fresh_until, spotify_wall_time())) return 0;
  hold(it, e->text, e->len);
  if (!it->held) return 0;
  x->m->stats.response_stale++;
  spotify_machine_queue_revalidation(x->m, it->url, x->compose->single);
  return 1;
}

/* The process tier: every item's fresh answer, and the stale ones aside. */
spotify_action spotify_compose_look(lua_State *L, spotify_exchange *x) {
  struct spotify_compose *c = x->compose;
  spotify_machine *m = x->m;
  for (int i = 0; i < c->nitems; i++) {
    item *it = &c->items[i];
    spotify_rlook e;
    if (!spotify_responses_find(L, m->responses, it->akey, &e)) continue;
    if (e.fresh_until > spotify_wall_time()) {
      hold(it, e.text, e.len);
      if (it->held) m->stats.response_hits++;
    } else if (!held_stale(x, it, &e)) {
      keep_stale(it, &e);
    }
  }
  c->pos = 0;
  x->state = S_COMPOSE_LOOK;
  return 0;
}

/* Every item held: the answer, no request. Else the URL asks only for the
 * missing ones, and the exchange goes on as any GET of that URL. */
static spotify_action decide(spotify_exchange *x) {
  struct spotify_compose *c = x->compose;
  c->nasked = 0;
  size_t len = strlen(c->head) + strlen(c->tail) + 1;
  for (int i = 0; i < c->nitems; i++)
    if (!c->items[i].held) {
      c->asked[c->nasked++] = i;
      len += strlen(c->items[i].id) + 1;
    }
  if (c->nasked == 0) {
    if (!answer_assembled(x)) spotify_error_set(&x->error, "network", 0, "out of memory", -1);
    return done(x);
  }
  char *url = malloc(len), *p = url;
  char *akey = NULL, *rkey = NULL;
  if (url) {
    p += sprintf(p, "%s", c->head);
    for (int k = 0; k < c->nasked; k++)
      p += sprintf(p, "%s%s", k ? "," : "", c->items[c->asked[k]].id);
    strcpy(p, c->tail);
    akey = spotify_exchange_answer_key(x->m, url);
    rkey = akey ? spotify_responses_key(akey) : NULL;
  }
  if (rkey == NULL) { /* out of memory: the caller's URL as it is, kept by no key */
    free(url);
    free(akey);
    spotify_compose_free(c);
    x->compose = NULL;
    x->state = S_COALESCE;
    return 0;
  }
  free(x->url);
  free(x->akey);
  free(x->rkey);
  x->url = url;
  x->akey = akey;
  x->rkey = rkey;
  size_t slen;
  char *stale = assemble(c, 1, &slen);
  if (stale) {
    free(x->stale);
    x->stale = stale;
    x->stale_len = slen;
  }
  x->state = S_COALESCE;
  return 0;
}

/* The shared tier: one look per item the process tier did not hold. */
spotify_action spotify_compose_look_shared(lua_State *L, spotify_exchange *x) {
  struct spotify_compose *c = x->compose;
  if (x->m->responses->store.vt)
    for (; c->pos < c->nitems; c->pos++)
      if (!c->items[c->pos].held)
        return spotify_machine_store_op(L, x, SPOTIFY_CACHE_GET, c->items[c->pos].rkey, 0,
                                        S_COMPOSE_LOOKED);
  return decide(x);
}

spotify_action spotify_compose_looked(lua_State *L, spotify_exchange *x) {
  struct spotify_compose *c = x->compose;
  spotify_machine *m = x->m;
  item *it = &c->items[c->pos++];
  const spotify_cache_result *res = &x->cache_res;
  spotify_rlook e;
  x->state = S_COMPOSE_LOOK;
  if (res->answer != SPOTIFY_ANSWER_STRING || !spotify_responses_parse(res->str, res->len, &e))
    return 0;
  int fresh = e.fresh_until > spotify_wall_time();
  if (fresh || spotify_responses_swr(m->responses, e.fresh_until, spotify_wall_time())) {
    /* what another writer kept is checked as a fresh answer is: an item
     * that does not decode is a miss */
    int top = lua_gettop(L), ok = spotify_json_decode(L, e.text, e.len) == 1 && lua_istable(L, -1);
    lua_settop(L, top);
    if (!ok) return 0;
    if (fresh)
      hold(it, e.text, e.len);
    else if (!held_stale(x, it, &e))
      keep_stale(it, &e);
    if (!it->held) return 0;
    spotify_responses_put(L, m->responses, it->akey, it->text, it->len, e.fresh_until,
                          e.stale_until);
    if (fresh) m->stats.response_shared_hits++;
  } else {
    keep_stale(it, &e);
  }
  return 0;
}

/* The request asked for the caller's IDs, each once and in order: nothing
 * held was put in, so Spotify's text is the answer as it came (a gateway
 * hands it on byte for byte). */
static int asked_as_called(const struct spotify_compose *c) {
  if (c->nasked != c->n) return 0;
  for (int i = 0; i < c->n; i++)
    if (c->asked[i] != c->of[i]) return 0;
  return 1;
}

static int answer_as_sent(spotify_exchange *x, const char *raw, size_t len) {
  char *s = malloc(len + 1);
  if (s) {
    memcpy(s, raw, len);
    s[len] = '\0';
  }
  return take_answer(x, s, len);
}

int spotify_compose_merge(lua_State *L, spotify_exchange *x, const char *raw, size_t len,
                          double fresh_until, double stale_until) {
  (void)L;
  struct spotify_compose *c = x->compose;
  const char *starts[MAX_IDS];
  size_t lens[MAX_IDS];
  if (spotify_json_items(raw, len, c->field, starts, lens, c->nasked) != c->nasked) return 0;
  for (int k = 0; k < c->nasked; k++) {
    item *it = &c->items[c->asked[k]];
    if (lens[k] == 4 && memcmp(starts[k], "null", 4) == 0) continue; /* not found */
    hold(it, starts[k], lens[k]);
    if (!it->held) return 0;
  }
  c->fresh_until = fresh_until;
  c->stale_until = stale_until;
  return asked_as_called(c) ? answer_as_sent(x, raw, len) : answer_assembled(x);
}

/* An item above max_entry_bytes is handed out, not kept. */
static int keepable(const spotify_responses *r, size_t len) {
  return r->max_entry_bytes == 0 || len <= r->max_entry_bytes;
}

void spotify_compose_keep(lua_State *L, spotify_exchange *x) {
  struct spotify_compose *c = x->compose;
  spotify_responses *r = x->m->responses;
  for (int k = 0; k < c->nasked; k++) {
    const item *it = &c->items[c->asked[k]];
    if (it->held && keepable(r, it->len))
      spotify_responses_put(L, r, it->akey, it->text, it->len, c->fresh_until, c->stale_until);
  }
}

const char *spotify_compose_raw(const spotify_exchange *x, size_t *len) {
  if (x->compose == NULL || x->compose->raw == NULL) return NULL;
  *len = x->compose->raw_len;
  return x->compose->raw;
}

/* A 200 to the IDs asked: each item kept (both tiers) and the caller's
 * answer assembled. The text of an answer that has no such array is the
 * caller's as it came where it asked for exactly the caller's IDs (the
 * plural method reports it); else no answer can be assembled. */
void spotify_compose_answered(lua_State *L, spotify_exchange *x, const spotify_outcome *o) {
  struct spotify_compose *c = x->compose;
  spotify_responses *r = x->m->responses;
  double ttl = fmin(c->ttl > 0 ? c->ttl : o->max_age, r->max_ttl);
  double fresh = spotify_wall_time() + ttl, stale = spotify_responses_stale_until(r, fresh);
  char *raw = malloc(o->len + 1);
  if (raw == NULL) {
    spotify_error_set(&x->error, "network", 0, "out of memory", -1);
    return;
  }
  memcpy(raw, o->body, o->len);
  raw[o->len] = '\0';
  free(c->raw);
  c->raw = raw;
  c->raw_len = o->len;
  if (!spotify_compose_merge(L, x, raw, o->len, fresh, stale)) {
    if (c->nasked == c->n) { /* the caller's own IDs, in order */
      x->body = c->raw;
      x->body_len = c->raw_len;
      return;
    }
    spotify_error_set(&x->error, "decode", 200, "batch answer has no array of the IDs asked", -1);
    return;
  }
  /* Decoded before anything is kept: the caller's answer, and the check
   * of every item in it. no-store keeps nothing; private stays here. */
  if (!(ttl > 0) || (o->cache_control & SPOTIFY_CC_NO_STORE) ||
      !spotify_machine_decode_answer(L, x, x->answer, x->answer_len))
    return;
  spotify_compose_keep(L, x);
  if (r->store.vt && !(o->cache_control & SPOTIFY_CC_PRIVATE)) {
    c->pos = 0;
    x->entry_ttl = ceil(spotify_responses_stale_until(r, ttl)); /* ttl from now */
    x->state = S_COMPOSE_STORE;
  }
}

/* Into the store: each item found under its single lookup's key, then the
 * whole answer under the batch URL's (what another process waiting on the
 * same batch, through the store's lock, looks for). */
spotify_action spotify_compose_store(lua_State *L, spotify_exchange *x) {
  struct spotify_compose *c = x->compose;
  while (c->pos <= c->nasked) {
    int k = c->pos++;
    const char *text = c->raw, *key = x->rkey;
    size_t len = c->raw_len;
    if (k == c->nasked && !keepable(x->m->responses, len)) break;
    if (k < c->nasked) {
      item *it = &c->items[c->asked[k]];
      if (!it->held || !keepable(x->m->responses, it->len)) continue;
      text = it->text;
      len = it->len;
      key = it->rkey;
    }
    free(x->entry);
    x->entry = spotify_responses_entry(text, len, c->fresh_until, c->stale_until, &x->entry_len);
    if (x->entry == NULL) break;
    return spotify_machine_store_op(L, x, SPOTIFY_CACHE_SET, key, x->entry_ttl, S_COMPOSE_STORE);
  }
  x->state = S_DONE;
  return 0;
}
