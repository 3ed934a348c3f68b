/* The native memory cache: a hash table of entries in this process; an
 * expired one goes when met. */
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
  char *key, *value;
  size_t len;
  double number, expires; /* monotonic seconds */
} mem_entry;

typedef struct memory_cache {
  mem_entry **buckets;
  size_t nbuckets, count;
} memory_cache;

static size_t entry_hash(entry_kind kind, const char *key) {
  size_t h = 2166136261u ^ (size_t)kind; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 16777619u;
  return h;
}

static void free_entry(mem_entry *e) {
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
      free_entry(e);
      m->count--;
    } else if (e->kind == kind && strcmp(e->key, key) == 0) {
      return e;
    } else {
      link = &e->next;
    }
  }
  return NULL;
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
  size_t h = entry_hash(kind, key) & (m->nbuckets - 1);
  e->next = m->buckets[h];
  m->buckets[h] = e;
  m->count++;
  return e;
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
      spotify_cache_answer_as(out, e ? SPOTIFY_ANSWER_STRING : SPOTIFY_ANSWER_NONE,
                              e ? e->value : NULL, e ? e->len : 0);
      return;
    case SPOTIFY_CACHE_SET: {
      char *v = malloc(rq->len + 1);
      e = v ? mem_slot(m, ENTRY_VALUE, rq->key, now) : NULL;
      if (e == NULL) {
        free(v);
        spotify_cache_answer_failed(out, "memory cache: out of memory");
        return;
      }
      memcpy(v, rq->value, rq->len);
      v[rq->len] = '\0';
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
      e = mem_find(m, ENTRY_LOCK, rq->key, now);
      if (e) e->expires = 0;
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
      free_entry(e);
      e = next;
    }
  }
  free(m->buckets);
  memset(m, 0, sizeof *m);
  return 0;
}

/* core.memory_cache() -> cache */
int spotify_memory_cache_new(lua_State *L) {
  memory_cache *m = lua_newuserdata(L, sizeof *m);
  memset(m, 0, sizeof *m);
  luaL_getmetatable(L, SPOTIFY_MEMORY_MT);
  lua_setmetatable(L, -2);
  return 1;
}
