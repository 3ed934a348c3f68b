/* Token caches behind one vtable. The memory and file caches are native
 * (C data, never yield, callable from any driver at any time); any other
 * object is reached through the Lua adapter, under pcall, and only between
 * libcurl calls, never inside one. */
#ifndef SPOTIFY_CACHE_H
#define SPOTIFY_CACHE_H

#include <stddef.h>

#include "compat.h"

typedef enum spotify_cache_op {
  SPOTIFY_CACHE_GET,
  SPOTIFY_CACHE_SET,
  SPOTIFY_CACHE_LOCK,
  SPOTIFY_CACHE_UNLOCK,
  SPOTIFY_CACHE_INCR,
  SPOTIFY_CACHE_PACE,
  SPOTIFY_CACHE_OPS
} spotify_cache_op;

extern const char *const spotify_cache_op_names[SPOTIFY_CACHE_OPS];

/* Keys of the response cache's answers (and their locks) start with this:
 * a cache that must make room drops them, never a token, a penalty or
 * pacing (memcache.c; the shared dict, lua/spotify/cache/shdict.lua). */
#define SPOTIFY_ANSWER_PREFIX "response:"

typedef struct spotify_cache_req {
  spotify_cache_op op;
  const char *key;
  const char *value; /* set */
  size_t len;
  double ttl;   /* set, lock, incr: seconds */
  double delta; /* incr */
  /* pace: key is the penalty's, pace_key the base of the pacing keys */
  const char *pace_key;
  int requests;
  double window, margin, now;
} spotify_cache_req;

typedef enum spotify_cache_answer {
  SPOTIFY_ANSWER_NONE,        /* nil: a miss, or done */
  SPOTIFY_ANSWER_STRING,      /* get; pace: the penalty that holds the request */
  SPOTIFY_ANSWER_TRUE,        /* lock taken */
  SPOTIFY_ANSWER_FALSE,       /* lock held elsewhere */
  SPOTIFY_ANSWER_NUMBER,      /* incr; pace: the start time taken */
  SPOTIFY_ANSWER_UNSUPPORTED, /* the object has no such method */
  SPOTIFY_ANSWER_FAILED       /* it raised or answered nonsense: `str` says why */
} spotify_cache_answer;

typedef struct spotify_cache_result {
  spotify_cache_answer answer;
  char *str; /* owned: the value, or the failure's message */
  size_t len;
  double number;
  char *note; /* owned, NULL mostly: said once, why the cache is not used */
} spotify_cache_result;

void spotify_cache_result_clear(spotify_cache_result *r);

struct spotify_cache;

typedef struct spotify_cache_vtable {
  const char *name;
  void (*run)(lua_State *L, const struct spotify_cache *c, const spotify_cache_req *rq,
              spotify_cache_result *out);
} spotify_cache_vtable;

/* A client's handle on its cache. */
typedef struct spotify_cache {
  const spotify_cache_vtable *vt; /* NULL: no cache bound */
  void *self;                     /* native data, or NULL for a Lua object */
  int ref;                        /* registry ref to the object: keeps it alive */
  int may_yield;                  /* a Lua object: inside nginx only the Lua driver calls it */
} spotify_cache;

/* Bind the object at index i (native or any table/userdata with get/set). */
void spotify_cache_bind(lua_State *L, spotify_cache *c, int i);
void spotify_cache_unbind(lua_State *L, spotify_cache *c);
void spotify_cache_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                       spotify_cache_result *out);
/* Push the key and the arguments of rq as the cache method takes them
 * (get(key), set(key, value, ttl), lock(key, ttl), unlock(key),
 * incr(key, delta, ttl), pace(penalty_key, pace_key, {requests, window,
 * margin, now})); returns how many. */
int spotify_cache_push_args(lua_State *L, const spotify_cache_req *rq);
/* The Lua driver's half of the adapter: what a Lua cache call gave
 * (pcall's ok and first result at index i) as a result. */
void spotify_cache_result_from_lua(lua_State *L, spotify_cache_op op, int ok, int i,
                                   spotify_cache_result *out);

#endif
