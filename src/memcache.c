/* The native memory cache: a hash table of entries in this process; an
 * expired one goes when met. Bounded in bytes: to make room it drops the
 * response cache's answers (SPOTIFY_ANSWER_PREFIX), least recently used
 * first, never a token, a lock, a penalty or pacing, which are small and
 * which the clients cannot do without. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_native.h"
#include "spotify.h"

typedef enum entry_kind { ENTRY_VALUE, ENTRY_LOCK, ENTRY_COUNTER } entry_kind;

typedef struct mem_entry {
  struct mem_entry *next;
  entry_kind kind;
  int answer; /* an answer: on the recency list, dropped to make room */
  char *key, *value;
  size_t len;
  double number, expires;          /* monotonic seconds */
  struct mem_entry *newer, *older; /* the recency list of answers */
} mem_entry;

typedef struct memory_cache {
  mem_entry **buckets;
  size_t nbuckets, count;
  size_t max_bytes, bytes;    /* the bound, and what the entries hold */
  mem_entry *newest, *oldest; /* answers only */
} memory_cache;

static size_t entry_hash(entry_kind kind, const char *key) {
  size_t h = 2166136261u ^ (size_t)kind; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 16777619u;
  return h;
}

static size_t entry_size(const mem_entry *e) {
  return sizeof *e + strlen(e->key) + 1 + (e->value ? e->len + 1 : 0);
}

static void unlink_answer(memory_cache *m, mem_entry *e) {
  if (!e->answer) return;
  if (e->newer)
    e->newer->older = e->older;
  else
    m->newest = e->older;
  if (e->older)
    e->older->newer = e->newer;
  else
    m->oldest = e->newer;
  e->newer = e->older = NULL;
}

static void link_answer(memory_cache *m, mem_entry *e) {
  if (!e->answer) return;
  e->older = m->newest;
  e->newer = NULL;
  if (m->newest) m->newest->newer = e;
  m->newest = e;
  if (m->oldest == NULL) m->oldest = e;
}

/* e is already out of its bucket's chain. */
static void free_entry(memory_cache *m, mem_entry *e) {
  unlink_answer(m, e);
  m->bytes -= entry_size(e);
  m->count--;
  free(e->key);
  free(e->value);
  free(e);
}

/* The live entry for (kind, key); expired entries met on the way go. */
static mem_entry *mem_find(memory_cache *m, entry_kind kind, const char *key, double now) {
  if (m->nbuckets == 0) return NULL;
  mem_entry **link = &m->buckets[entry_hash(kind, key) & (m->nbuckets - 1)];
  while (*link) {
    mem_entry *e = *link;
    if (e->expires <= now) {
      *link = e->next;
      free_entry(m, e);
    } else if (e->kind == kind && strcmp(e->key, key) == 0) {
      return e;
    } else {
      link = &e->next;
    }
  }
  return NULL;
}

/* Take e out of its bucket's chain. */
static void unchain(memory_cache *m, mem_entry *e) {
  mem_entry **link = &m->buckets[entry_hash(e->kind, e->key) & (m->nbuckets - 1)];
  while (*link != e) link = &(*link)->next;
  *link = e->next;
}

/* Drop the least recently used answer other than keep; 0 when none is left. */
static int evict_one(memory_cache *m, const mem_entry *keep) {
  mem_entry *e = m->oldest;
  if (e == keep) e = e->newer;
  if (e == NULL) return 0;
  unchain(m, e);
  free_entry(m, e);
  return 1;
}

static int mem_grow(memory_cache *m) {
  size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
  mem_entry **b = calloc(n, sizeof *b);
  if (b == NULL) return -1;
  for (size_t i = 0; i < m->nbuckets; i++) {
    mem_entry *e = m->buckets[i];
    while (e) {
      mem_entry *next = e->next;
      size_t h = entry_hash(e->kind, e->key) & (n - 1);
      e->next = b[h];
      b[h] = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
  return 0;
}

/* A live entry for (kind, key) if there is one, else a new one. */
static mem_entry *mem_slot(memory_cache *m, entry_kind kind, const char *key, double now) {
  mem_entry *e = mem_find(m, kind, key, now);
  if (e) return e;
  if (m->count >= m->nbuckets && mem_grow(m) != 0) return NULL;
  e = calloc(1, sizeof *e);
  char *k = strdup(key);
  if (e == NULL || k == NULL) {
    free(e);
    free(k);
    return NULL;
  }
  e->kind = kind;
  e->key = k;
  e->answer = kind == ENTRY_VALUE &&
              strncmp(key, SPOTIFY_ANSWER_PREFIX, sizeof SPOTIFY_ANSWER_PREFIX - 1) == 0;
  size_t h = entry_hash(kind, key) & (m->nbuckets - 1);
  e->next = m->buckets[h];
  m->buckets[h] = e;
  m->count++;
  m->bytes += entry_size(e);
  link_answer(m, e);
  return e;
}

/* Room for `more` bytes, made by dropping answers (never keep); whether
 * the bound holds then. */
static int make_room(memory_cache *m, size_t more, const mem_entry *keep) {
  while (m->bytes + more > m->max_bytes)
    if (!evict_one(m, keep)) return 0;
  return 1;
}

/* Remove the entry for (kind, key) at once: an unlocked lock, an answer
 * that is no longer the answer. (An expired entry left to go when met
 * would hold its bytes, which only answers give back.) */
static void forget(memory_cache *m, entry_kind kind, const char *key, double now) {
  mem_entry *e = mem_find(m, kind, key, now);
  if (e == NULL) return;
  unchain(m, e);
  free_entry(m, e);
}

static void memory_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                       spotify_cache_result *out) {
  (void)L;
  memory_cache *m = c->self;
  double now = spotify_monotonic_time();
  mem_entry *e;
  switch (rq->op) {
    case SPOTIFY_CACHE_GET:
      e = mem_find(m, ENTRY_VALUE, rq->key, now);
      if (e && e->answer) { /* recently used */
        unlink_answer(m, e);
        link_answer(m, e);
      }
      spotify_cache_answer_as(out, e ? SPOTIFY_ANSWER_STRING : SPOTIFY_ANSWER_NONE,
                              e ? e->value : NULL, e ? e->len : 0);
      return;
    case SPOTIFY_CACHE_SET: {
      int answer = strncmp(rq->key, SPOTIFY_ANSWER_PREFIX, sizeof SPOTIFY_ANSWER_PREFIX - 1) == 0;
      if (answer && sizeof *e + strlen(rq->key) + rq->len + 2 > m->max_bytes) {
        forget(m, ENTRY_VALUE, rq->key, now);
        spotify_cache_answer_failed(out, "memory cache: entry larger than max_bytes");
        return;
      }
      char *v = malloc(rq->len + 1);
      e = v ? mem_slot(m, ENTRY_VALUE, rq->key, now) : NULL;
      if (e == NULL) {
        free(v);
        spotify_cache_answer_failed(out, "memory cache: out of memory");
        return;
      }
      size_t old = e->value ? e->len + 1 : 0;
      /* a token or a penalty is kept over the bound rather than lost */
      make_room(m, rq->len + 1 > old ? rq->len + 1 - old : 0, e);
      memcpy(v, rq->value, rq->len);
      v[rq->len] = '\0';
      m->bytes = m->bytes - old + rq->len + 1;
      free(e->value);
      e->value = v;
      e->len = rq->len;
      e->expires = spotify_cache_expiry(now, rq->ttl);
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
      return;
    }
    case SPOTIFY_CACHE_LOCK:
      if (mem_find(m, ENTRY_LOCK, rq->key, now)) {
        spotify_cache_answer_as(out, SPOTIFY_ANSWER_FALSE, NULL, 0);
        return;
      }
      e = mem_slot(m, ENTRY_LOCK, rq->key, now);
      if (e == NULL) {
        spotify_cache_answer_failed(out, "memory cache: out of memory");
        return;
      }
      e->expires = spotify_cache_expiry(now, rq->ttl);
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_TRUE, NULL, 0);
      return;
    case SPOTIFY_CACHE_UNLOCK:
      forget(m, ENTRY_LOCK, rq->key, now);
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
      return;
    case SPOTIFY_CACHE_INCR:
      e = mem_find(m, ENTRY_COUNTER, rq->key, now);
      if (e == NULL) {
        e = mem_slot(m, ENTRY_COUNTER, rq->key, now);
        if (e == NULL) {
          spotify_cache_answer_failed(out, "memory cache: out of memory");
          return;
        }
        e->expires = spotify_cache_expiry(now, rq->ttl);
      }
      e->number += rq->delta;
      spotify_cache_answer_number(out, e->number);
      return;
    default:
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_UNSUPPORTED, NULL, 0);
  }
}

const spotify_cache_vtable spotify_memory_vt = {"memory", memory_run};

int spotify_memory_cache_gc(lua_State *L) {
  memory_cache *m = luaL_checkudata(L, 1, SPOTIFY_MEMORY_MT);
  for (size_t i = 0; i < m->nbuckets; i++) {
    mem_entry *e = m->buckets[i];
    while (e) {
      mem_entry *next = e->next;
      free_entry(m, e);
      e = next;
    }
  }
  free(m->buckets);
  memset(m, 0, sizeof *m);
  return 0;
}

/* core.memory_cache(max_bytes) -> cache; max_bytes checked in Lua (memory.lua) */
int spotify_memory_cache_new(lua_State *L) {
  double max_bytes = luaL_optnumber(L, 1, 64.0 * 1024 * 1024);
  memory_cache *m = lua_newuserdata(L, sizeof *m);
  memset(m, 0, sizeof *m);
  m->max_bytes = max_bytes > 0 ? (size_t)max_bytes : 0;
  luaL_getmetatable(L, SPOTIFY_MEMORY_MT);
  lua_setmetatable(L, -2);
  return 1;
}
