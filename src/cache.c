/* Token caches: the vtable, the native memory and file caches, and the
 * adapter for any other object (shdict, redis, a custom table). */
#include "cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "filecache.h"
#include "spotify.h"

#define MEMORY_MT "spotify.cache.memory"
#define FILE_MT "spotify.cache.file"

const char *const spotify_cache_op_names[SPOTIFY_CACHE_OPS] = {"get",    "set",  "lock",
                                                               "unlock", "incr", "pace"};

void spotify_cache_result_clear(spotify_cache_result *r) {
  free(r->str);
  free(r->note);
  memset(r, 0, sizeof *r);
}

static void answer(spotify_cache_result *out, spotify_cache_answer a, const char *s, size_t len) {
  spotify_cache_result_clear(out);
  out->answer = a;
  if (s == NULL) return;
  out->str = malloc(len + 1);
  if (out->str == NULL) {
    out->answer = SPOTIFY_ANSWER_FAILED; /* message-less: "out of memory" when reported */
    return;
  }
  memcpy(out->str, s, len);
  out->str[len] = '\0';
  out->len = len;
}

static void answer_failed(spotify_cache_result *out, const char *message) {
  answer(out, SPOTIFY_ANSWER_FAILED, message, strlen(message));
}

static void answer_number(spotify_cache_result *out, double n) {
  answer(out, SPOTIFY_ANSWER_NUMBER, NULL, 0);
  out->number = n;
}

static double expiry(double now, double ttl) {
  return ttl > 0 ? now + ttl : HUGE_VAL;
}

/* ---- memory: a hash table of entries; an expired one goes when met ---- */

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
      answer(out, e ? SPOTIFY_ANSWER_STRING : SPOTIFY_ANSWER_NONE, e ? e->value : NULL,
             e ? e->len : 0);
      return;
    case SPOTIFY_CACHE_SET: {
      char *v = malloc(rq->len + 1);
      e = v ? mem_slot(m, ENTRY_VALUE, rq->key, now) : NULL;
      if (e == NULL) {
        free(v);
        answer_failed(out, "memory cache: out of memory");
        return;
      }
      memcpy(v, rq->value, rq->len);
      v[rq->len] = '\0';
      free(e->value);
      e->value = v;
      e->len = rq->len;
      e->expires = expiry(now, rq->ttl);
      answer(out, SPOTIFY_ANSWER_NONE, NULL, 0);
      return;
    }
    case SPOTIFY_CACHE_LOCK:
      if (mem_find(m, ENTRY_LOCK, rq->key, now)) {
        answer(out, SPOTIFY_ANSWER_FALSE, NULL, 0);
        return;
      }
      e = mem_slot(m, ENTRY_LOCK, rq->key, now);
      if (e == NULL) {
        answer_failed(out, "memory cache: out of memory");
        return;
      }
      e->expires = expiry(now, rq->ttl);
      answer(out, SPOTIFY_ANSWER_TRUE, NULL, 0);
      return;
    case SPOTIFY_CACHE_UNLOCK:
      e = mem_find(m, ENTRY_LOCK, rq->key, now);
      if (e) e->expires = 0;
      answer(out, SPOTIFY_ANSWER_NONE, NULL, 0);
      return;
    case SPOTIFY_CACHE_INCR:
      e = mem_find(m, ENTRY_COUNTER, rq->key, now);
      if (e == NULL) {
        e = mem_slot(m, ENTRY_COUNTER, rq->key, now);
        if (e == NULL) {
          answer_failed(out, "memory cache: out of memory");
          return;
        }
        e->expires = expiry(now, rq->ttl);
      }
      e->number += rq->delta;
      answer_number(out, e->number);
      return;
    default:
      answer(out, SPOTIFY_ANSWER_UNSUPPORTED, NULL, 0);
  }
}

static const spotify_cache_vtable memory_vt = {"memory", memory_run};

/* ---- file: one JSON object {key: {value, expires} | {count, expires}} ---- */

typedef struct held_lock {
  char *key;
  int fd;
} held_lock;

typedef struct file_cache {
  char *path;
  held_lock *held;
  size_t nheld;
  int untrusted;                      /* an untrusted file or lock file was met */
  int told;                           /* ... and said so (once) */
  char why[SPOTIFY_FILE_ERRLEN + 16]; /* what was met */
} file_cache;

/* An untrusted file is a miss, never an error: remembered, to be said once. */
static void met_untrusted(file_cache *f, const char *why) {
  if (f->untrusted) return;
  f->untrusted = 1;
  snprintf(f->why, sizeof f->why, "file cache: %s", why);
}

/* Hand the note to the first answer after an untrusted file was met. */
static void tell(file_cache *f, spotify_cache_result *out) {
  if (!f->untrusted || f->told) return;
  out->note = strdup(f->why);
  f->told = out->note != NULL;
}

/* The file's object at the top of the stack ({} when missing, corrupt or
 * untrusted). */
static void push_file_object(lua_State *L, file_cache *f) {
  char err[SPOTIFY_FILE_ERRLEN];
  void **slot = spotify_scratch(L);
  size_t len;
  int top = lua_gettop(L);
  int r = spotify_file_read(f->path, (char **)slot, &len, err);
  if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  if (r == 0 && spotify_json_decode(L, *slot, len) == 1 && lua_istable(L, -1)) {
    lua_replace(L, top);
    return;
  }
  lua_settop(L, top - 1);
  lua_newtable(L);
}

/* A field of the entry table at the top of the stack. */
static int entry_field(lua_State *L, const char *name, int type) {
  lua_pushstring(L, name);
  lua_rawget(L, -2);
  if (lua_type(L, -1) == type) return 1;
  lua_pop(L, 1);
  return 0;
}

/* file_merge(cache, key, value|nil, ttl, delta) -> encoded file, count:
 * the file's object without what has expired, plus the new entry. Runs
 * under pcall while the caller holds the file's flock. */
static int file_merge(lua_State *L) {
  file_cache *f = lua_touserdata(L, 1);
  double now = spotify_wall_time(), ttl = lua_tonumber(L, 4);
  push_file_object(L, f);
  int t = lua_gettop(L);
  double count = lua_tonumber(L, 5);
  lua_pushnil(L);
  while (lua_next(L, t)) { /* drop what has expired, and anything malformed */
    int keep = lua_istable(L, -1) && entry_field(L, "expires", LUA_TNUMBER);
    if (keep) {
      keep = lua_tonumber(L, -1) > now;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!keep) {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, t);
    }
  }
  if (lua_isnil(L, 3)) { /* incr: a live counter keeps its expiry */
    lua_pushvalue(L, 2);
    lua_rawget(L, t);
    double expires = expiry(now, ttl);
    if (lua_istable(L, -1) && entry_field(L, "count", LUA_TNUMBER)) {
      count += lua_tonumber(L, -1);
      lua_pop(L, 1);
      if (entry_field(L, "expires", LUA_TNUMBER)) expires = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    lua_settop(L, t);
    lua_pushvalue(L, 2);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, count);
    lua_setfield(L, -2, "count");
    lua_pushnumber(L, isinf(expires) ? 1e300 : expires);
    lua_setfield(L, -2, "expires");
  } else {
    lua_pushvalue(L, 2);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "value");
    lua_pushnumber(L, ttl > 0 ? now + ttl : 1e300);
    lua_setfield(L, -2, "expires");
  }
  lua_rawset(L, t);
  spotify_json_push_encoder(L);
  lua_pushvalue(L, t);
  lua_call(L, 1, 1);
  lua_pushnumber(L, count);
  return 2;
}

/* set and incr: read, merge and write the file under its flock. */
static void file_update(lua_State *L, file_cache *f, const spotify_cache_req *rq,
                        spotify_cache_result *out) {
  char err[SPOTIFY_FILE_ERRLEN];
  int top = lua_gettop(L);
  const char *lock_path = lua_pushfstring(L, "%s.lock", f->path);
  lua_pushcfunction(L, file_merge);
  lua_pushlightuserdata(L, f);
  lua_pushstring(L, rq->key);
  if (rq->op == SPOTIFY_CACHE_SET)
    lua_pushlstring(L, rq->value, rq->len);
  else
    lua_pushnil(L);
  lua_pushnumber(L, rq->ttl);
  lua_pushnumber(L, rq->delta);
  /* Everything that can raise before the lock is pushed: the fd is never
   * held across a raise. */
  int fd, r = spotify_file_lock(lock_path, 1, 0, &fd, err);
  if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  if (r != 1) {
    lua_settop(L, top);
    if (r == SPOTIFY_FILE_UNTRUSTED)
      answer(out, SPOTIFY_ANSWER_NONE, NULL, 0); /* not stored: a miss later */
    else
      answer_failed(out, err);
    return;
  }
  if (lua_pcall(L, 5, 2, 0) != 0) {
    spotify_file_unlock(fd);
    answer_failed(out, lua_isstring(L, -1) ? lua_tostring(L, -1) : "file cache: cannot encode");
    lua_settop(L, top);
    return;
  }
  size_t len;
  const char *text = lua_tolstring(L, -2, &len);
  r = spotify_file_write(f->path, text, len, err);
  spotify_file_unlock(fd);
  if (r == SPOTIFY_FILE_UNTRUSTED) {
    met_untrusted(f, err);
    answer(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  } else if (r != 0)
    answer_failed(out, err);
  else if (rq->op == SPOTIFY_CACHE_INCR)
    answer_number(out, lua_tonumber(L, -1));
  else
    answer(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  lua_settop(L, top);
}

static void file_get(lua_State *L, file_cache *f, const char *key, spotify_cache_result *out) {
  int top = lua_gettop(L);
  push_file_object(L, f);
  lua_getfield(L, -1, key);
  answer(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  if (lua_istable(L, -1) && entry_field(L, "expires", LUA_TNUMBER) &&
      lua_tonumber(L, -1) > spotify_wall_time()) {
    lua_pop(L, 1);
    size_t len;
    if (entry_field(L, "value", LUA_TSTRING)) {
      const char *s = lua_tolstring(L, -1, &len);
      answer(out, SPOTIFY_ANSWER_STRING, s, len);
    }
  }
  lua_settop(L, top);
}

/* path .. ".renew-" .. the key percent-encoded, malloc'd. */
static char *renew_path(const char *path, const char *key) {
  size_t n = strlen(path), k = strlen(key);
  char *p = malloc(n + sizeof ".renew-" + 3 * k);
  if (p == NULL) return NULL;
  char *w = p + sprintf(p, "%s.renew-", path);
  for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
    int plain = (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                *s == '_' || *s == '-';
    w += plain ? sprintf(w, "%c", *s) : sprintf(w, "%%%02X", *s);
  }
  return p;
}

static held_lock *find_held(file_cache *f, const char *key) {
  for (size_t i = 0; i < f->nheld; i++)
    if (strcmp(f->held[i].key, key) == 0) return &f->held[i];
  return NULL;
}

static void file_lock(file_cache *f, const char *key, double ttl, spotify_cache_result *out) {
  char err[SPOTIFY_FILE_ERRLEN];
  if (find_held(f, key)) { /* held by this very cache: another client of it renews */
    answer(out, SPOTIFY_ANSWER_FALSE, NULL, 0);
    return;
  }
  char *path = renew_path(f->path, key), *k = strdup(key);
  held_lock *held = realloc(f->held, (f->nheld + 1) * sizeof *held);
  if (held) f->held = held;
  if (path == NULL || k == NULL || held == NULL) {
    free(path);
    free(k);
    answer_failed(out, "file cache: out of memory");
    return;
  }
  int fd, r = spotify_file_lock(path, 0, ttl, &fd, err);
  free(path);
  if (r != 1) {
    free(k);
    if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
    if (r == 0)
      answer(out, SPOTIFY_ANSWER_FALSE, NULL, 0);
    else if (r == SPOTIFY_FILE_UNTRUSTED) /* no single flight: fetch without waiting */
      answer(out, SPOTIFY_ANSWER_NONE, NULL, 0);
    else
      answer_failed(out, err);
    return;
  }
  f->held[f->nheld].key = k;
  f->held[f->nheld].fd = fd;
  f->nheld++;
  answer(out, SPOTIFY_ANSWER_TRUE, NULL, 0);
}

static void file_unlock(file_cache *f, const char *key) {
  held_lock *h = find_held(f, key);
  if (h == NULL) return;
  spotify_file_unlock(h->fd);
  free(h->key);
  *h = f->held[--f->nheld];
}

static void file_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                     spotify_cache_result *out) {
  file_cache *f = c->self;
  switch (rq->op) {
    case SPOTIFY_CACHE_GET:
      file_get(L, f, rq->key, out);
      return;
    case SPOTIFY_CACHE_SET:
    case SPOTIFY_CACHE_INCR:
      file_update(L, f, rq, out);
      return;
    case SPOTIFY_CACHE_LOCK:
      file_lock(f, rq->key, rq->ttl, out);
      return;
    case SPOTIFY_CACHE_UNLOCK:
      file_unlock(f, rq->key);
      answer(out, SPOTIFY_ANSWER_NONE, NULL, 0);
      return;
    default:
      answer(out, SPOTIFY_ANSWER_UNSUPPORTED, NULL, 0);
  }
}

static void file_run_and_tell(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                              spotify_cache_result *out) {
  file_run(L, c, rq, out);
  tell(c->self, out);
}

static const spotify_cache_vtable file_vt = {"file", file_run_and_tell};

/* ---- any other object, through its Lua methods ---- */

static const char unsupported_key = 'u'; /* marks "no such method" */

/* adapter_call(obj, op, args...) -> the method's first result, or the
 * unsupported marker. Runs under pcall: indexing may raise too. */
static int adapter_call(lua_State *L) {
  lua_pushvalue(L, 2);
  lua_gettable(L, 1);
  if (lua_isnil(L, -1)) {
    lua_pushlightuserdata(L, (void *)&unsupported_key);
    return 1;
  }
  lua_replace(L, 2); /* obj, f, args... -> f, obj, args... */
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_replace(L, 1);
  lua_replace(L, 2);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

int spotify_cache_push_args(lua_State *L, const spotify_cache_req *rq) {
  lua_pushstring(L, rq->key);
  switch (rq->op) {
    case SPOTIFY_CACHE_SET:
      lua_pushlstring(L, rq->value, rq->len);
      lua_pushnumber(L, rq->ttl);
      return 3;
    case SPOTIFY_CACHE_LOCK:
      lua_pushnumber(L, rq->ttl);
      return 2;
    case SPOTIFY_CACHE_INCR:
      lua_pushnumber(L, rq->delta);
      lua_pushnumber(L, rq->ttl);
      return 3;
    case SPOTIFY_CACHE_PACE:
      lua_pushstring(L, rq->pace_key);
      lua_createtable(L, 0, 4);
      lua_pushinteger(L, rq->requests);
      lua_setfield(L, -2, "requests");
      lua_pushnumber(L, rq->window);
      lua_setfield(L, -2, "window");
      lua_pushnumber(L, rq->margin);
      lua_setfield(L, -2, "margin");
      lua_pushnumber(L, rq->now);
      lua_setfield(L, -2, "now");
      return 3;
    default:
      return 1;
  }
}

void spotify_cache_result_from_lua(lua_State *L, spotify_cache_op op, int ok, int i,
                                   spotify_cache_result *out) {
  int t = lua_type(L, i);
  if (ok < 0 || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == &unsupported_key)) {
    answer(out, SPOTIFY_ANSWER_UNSUPPORTED, NULL, 0);
  } else if (!ok) {
    answer_failed(out, t == LUA_TSTRING || t == LUA_TNUMBER
                           ? lua_tostring(L, i)
                           : "the cache raised a non-string error");
  } else if (op == SPOTIFY_CACHE_GET) {
    size_t len;
    const char *s = t == LUA_TSTRING ? lua_tolstring(L, i, &len) : NULL;
    answer(out, s ? SPOTIFY_ANSWER_STRING : SPOTIFY_ANSWER_NONE, s, s ? len : 0);
  } else if (op == SPOTIFY_CACHE_LOCK) {
    answer(out,
           t == LUA_TNIL         ? SPOTIFY_ANSWER_UNSUPPORTED
           : lua_toboolean(L, i) ? SPOTIFY_ANSWER_TRUE
                                 : SPOTIFY_ANSWER_FALSE,
           NULL, 0);
  } else if (op == SPOTIFY_CACHE_INCR) {
    if (t == LUA_TNUMBER)
      answer_number(out, lua_tonumber(L, i));
    else
      answer_failed(out, "incr answered something that is not a number");
  } else if (op == SPOTIFY_CACHE_PACE) {
    size_t len = 0;
    const char *s = t == LUA_TSTRING ? lua_tolstring(L, i, &len) : NULL;
    if (t == LUA_TNUMBER)
      answer_number(out, lua_tonumber(L, i));
    else if (s)
      answer(out, SPOTIFY_ANSWER_STRING, s, len);
    else
      answer_failed(out, "pace answered neither a start time nor a penalty");
  } else {
    answer(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  }
}

static void adapter_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                        spotify_cache_result *out) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, adapter_call);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  lua_pushstring(L, spotify_cache_op_names[rq->op]);
  int n = spotify_cache_push_args(L, rq);
  int ok = lua_pcall(L, 2 + n, 1, 0) == 0;
  spotify_cache_result_from_lua(L, rq->op, ok, -1, out);
  lua_settop(L, top);
}

static const spotify_cache_vtable adapter_vt = {"lua", adapter_run};

void spotify_cache_bind(lua_State *L, spotify_cache *c, int i) {
  i = spotify_absindex(L, i);
  void *m = spotify_testudata(L, i, MEMORY_MT), *f = spotify_testudata(L, i, FILE_MT);
  c->vt = m ? &memory_vt : f ? &file_vt : &adapter_vt;
  c->self = m ? m : f;
  c->may_yield = c->self == NULL;
  lua_pushvalue(L, i);
  c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void spotify_cache_unbind(lua_State *L, spotify_cache *c) {
  if (c->vt) luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
  memset(c, 0, sizeof *c);
  c->ref = LUA_NOREF;
}

void spotify_cache_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                       spotify_cache_result *out) {
  c->vt->run(L, c, rq, out);
}

/* ---- the native caches as Lua objects ---- */

/* A request from Lua arguments (self, key, ...) for op. */
static spotify_cache_req request_from_args(lua_State *L, spotify_cache_op op) {
  spotify_cache_req rq;
  memset(&rq, 0, sizeof rq);
  rq.op = op;
  rq.key = luaL_checkstring(L, 2);
  if (op == SPOTIFY_CACHE_SET) {
    rq.value = luaL_checklstring(L, 3, &rq.len);
    rq.ttl = luaL_optnumber(L, 4, 0);
  } else if (op == SPOTIFY_CACHE_LOCK) {
    rq.ttl = luaL_optnumber(L, 3, 10);
  } else if (op == SPOTIFY_CACHE_INCR) {
    rq.delta = luaL_optnumber(L, 3, 1);
    rq.ttl = luaL_optnumber(L, 4, 0);
  }
  return rq;
}

/* Run op on the native cache at index 1 and push its answer; raises when
 * it failed, as the cache contract says. */
static int native_method(lua_State *L, spotify_cache_op op) {
  spotify_cache c;
  memset(&c, 0, sizeof c);
  c.self = spotify_testudata(L, 1, MEMORY_MT);
  c.vt = &memory_vt;
  if (c.self == NULL) {
    c.self = luaL_checkudata(L, 1, FILE_MT);
    c.vt = &file_vt;
  }
  spotify_cache_req rq = request_from_args(L, op);
  spotify_cache_result r;
  memset(&r, 0, sizeof r);
  spotify_cache_run(L, &c, &rq, &r);
  /* Move the answer into Lua before anything can raise. */
  int n = 1;
  switch (r.answer) {
    case SPOTIFY_ANSWER_STRING:
    case SPOTIFY_ANSWER_FAILED:
      if (r.str)
        lua_pushlstring(L, r.str, r.len);
      else
        lua_pushliteral(L, "cache: out of memory");
      break;
    case SPOTIFY_ANSWER_TRUE:
    case SPOTIFY_ANSWER_FALSE:
      lua_pushboolean(L, r.answer == SPOTIFY_ANSWER_TRUE);
      break;
    case SPOTIFY_ANSWER_NUMBER: /* a counter: an integer where Lua has them */
      if (r.number == floor(r.number) && fabs(r.number) < 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)r.number);
      else
        lua_pushnumber(L, r.number);
      break;
    default:
      n = 0;
  }
  if (r.note && r.answer != SPOTIFY_ANSWER_FAILED) { /* nil or the answer, then the note */
    if (n == 0) lua_pushnil(L);
    lua_pushstring(L, r.note);
    n = 2;
  }
  spotify_cache_answer a = r.answer;
  spotify_cache_result_clear(&r);
  if (a == SPOTIFY_ANSWER_FAILED) return lua_error(L);
  return n;
}

static int l_get(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_GET);
}
static int l_set(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_SET);
}
static int l_lock(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_LOCK);
}
static int l_unlock(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_UNLOCK);
}
static int l_incr(lua_State *L) {
  return native_method(L, SPOTIFY_CACHE_INCR);
}

static int memory_gc(lua_State *L) {
  memory_cache *m = luaL_checkudata(L, 1, MEMORY_MT);
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

static int file_gc(lua_State *L) {
  file_cache *f = luaL_checkudata(L, 1, FILE_MT);
  for (size_t i = 0; i < f->nheld; i++) {
    spotify_file_unlock(f->held[i].fd);
    free(f->held[i].key);
  }
  free(f->held);
  free(f->path);
  memset(f, 0, sizeof *f);
  return 0;
}

/* core.memory_cache() -> cache */
static int l_memory_cache(lua_State *L) {
  memory_cache *m = lua_newuserdata(L, sizeof *m);
  memset(m, 0, sizeof *m);
  luaL_getmetatable(L, MEMORY_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* core.file_cache(path) -> cache */
static int l_file_cache(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  file_cache *f = lua_newuserdata(L, sizeof *f);
  memset(f, 0, sizeof *f);
  luaL_getmetatable(L, FILE_MT);
  lua_setmetatable(L, -2);
  f->path = strdup(path);
  if (f->path == NULL) return luaL_error(L, "spotify.cache.file: out of memory");
  return 1;
}

static void new_cache_mt(lua_State *L, const char *name, lua_CFunction gc) {
  static const luaL_Reg methods[] = {{"get", l_get},       {"set", l_set},   {"lock", l_lock},
                                     {"unlock", l_unlock}, {"incr", l_incr}, {NULL, NULL}};
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_newtable(L);
  spotify_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* core.digest(s) -> SHA-256 of s, hex: how the cache keys name credentials. */
static int l_digest(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[SPOTIFY_DIGEST_HEX];
  spotify_sha256 d;
  spotify_sha256_init(&d);
  spotify_sha256_update(&d, s, len);
  spotify_sha256_hex(&d, hex);
  lua_pushstring(L, hex);
  return 1;
}

void spotify_open_cache(lua_State *L) {
  lua_pushcfunction(L, l_digest);
  lua_setfield(L, -2, "digest");
  new_cache_mt(L, MEMORY_MT, memory_gc);
  new_cache_mt(L, FILE_MT, file_gc);
  lua_pushcfunction(L, l_memory_cache);
  lua_setfield(L, -2, "memory_cache");
  lua_pushcfunction(L, l_file_cache);
  lua_setfield(L, -2, "file_cache");
}
