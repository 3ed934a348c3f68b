/* The response cache (spotify.responses{...}): a process tier of answers
 * (least recently used dropped first) in front of a shared tier, any cache
 * object (the token cache vtable), holding the JSON text. The exchange
 * machine decides when to look and when to store (engine.c); this file
 * only keeps entries. One object may serve several clients. */
#ifndef SPOTIFY_RESPONSES_H
#define SPOTIFY_RESPONSES_H

#include <stddef.h>

#include "cache.h"

#define SPOTIFY_RESPONSES_MT "spotify.responses"

typedef struct spotify_rentry spotify_rentry;

typedef struct spotify_ttl_rule {
  char *name;
  double ttl;
} spotify_ttl_rule;

/* A plural method whose answers are kept per item (endpoints.lua's batch
 * rows): its GET's items are the single lookups' answers. */
typedef struct spotify_batch_row {
  char *name;           /* the plural's method name: its exchanges are named so */
  char *single;         /* the single lookup's method name (its ttl) */
  char *path;           /* the plural's path: "/tracks" */
  char *before, *after; /* the single lookup's path around its ID: "/tracks/", "" */
  char *field;          /* the answer's array: "tracks" */
} spotify_batch_row;

typedef struct spotify_responses {
  spotify_cache store; /* vt NULL: no shared tier */
  spotify_batch_row *rows;
  int nrows;
  spotify_ttl_rule *rules;
  int nrules;
  double ttl_default;     /* < 0: none, Cache-Control max-age decides */
  double stale;           /* stale_if_error: seconds an expired answer may stand in */
  double swr;             /* stale_while_revalidate: seconds an expired answer is handed out */
  double max_ttl;         /* no answer is fresh longer */
  size_t max_entry_bytes; /* a longer answer is not kept; 0: no bound */
  int lru_max, count;
  size_t lru_bytes, bytes; /* the process tier's bound in bytes, and what it holds */
  spotify_rentry **buckets;
  size_t nbuckets;
  spotify_rentry *newest, *oldest;
} spotify_responses;

/* The longest validator kept; a longer one is not used. */
#define SPOTIFY_VALIDATOR_MAX 256

/* The answer kept for a key: its text (valid until the next store into
 * r) and the wall-clock times it is fresh and usable stale until; an
 * answer that came with a validator (ETag, Last-Modified) is kept until
 * keep_until (later) to be asked about with a conditional request. */
typedef struct spotify_rlook {
  const char *text;
  size_t len;
  double fresh_until, stale_until, keep_until;
  const char *etag, *last_modified;                                            /* NULL: none */
  char etag_buf[SPOTIFY_VALIDATOR_MAX + 1], lm_buf[SPOTIFY_VALIDATOR_MAX + 1]; /* parse's copies */
} spotify_rlook;
/* Whether a header value may be kept and sent back as a validator:
 * visible ASCII and spaces, at most SPOTIFY_VALIDATOR_MAX bytes. */
int spotify_validator_ok(const char *v, size_t len);

/* Until when an answer fresh until fresh_until may be handed out expired:
 * standing in for a failure (stale_if_error) or while a request renews it
 * (stale_while_revalidate), whichever is longer. */
double spotify_responses_stale_until(const spotify_responses *r, double fresh_until);
/* Whether an answer that was fresh until fresh_until is handed out now,
 * expired, while a request renews it (stale_while_revalidate). */
int spotify_responses_swr(const spotify_responses *r, double fresh_until, double now);
/* The ttl of a method name (NULL: of an unnamed GET): > 0 seconds, 0 never
 * cached, < 0 whatever the answer's max-age says. */
double spotify_responses_ttl(const spotify_responses *r, const char *name);
/* The process tier: 1 and *out when an entry (fresh or stale) is kept. */
int spotify_responses_find(lua_State *L, spotify_responses *r, const char *key, spotify_rlook *out);
void spotify_responses_put(lua_State *L, spotify_responses *r, const char *key, const char *text,
                           size_t len, double fresh_until, double stale_until);
/* As _put, with the answer's validators (NULL: none) and the time it is
 * kept until for a conditional request. */
void spotify_responses_put_validated(lua_State *L, spotify_responses *r, const char *key,
                                     const char *text, size_t len, double fresh_until,
                                     double stale_until, double keep_until, const char *etag,
                                     const char *last_modified);
/* A 304: the entry for key is fresh again (its decoded answer kept); 0
 * when there is none, or it holds another text than the one asked about. */
int spotify_responses_renew(spotify_responses *r, const char *key, const char *text, size_t len,
                            double fresh_until, double stale_until, double keep_until);
/* Push a copy of the decoded answer kept for key; 0 (nothing pushed) when
 * there is none to copy. */
int spotify_responses_push_copy(lua_State *L, spotify_responses *r, const char *key);
/* Push a copy of a fresh process-tier answer for key; 0 when there is none. */
int spotify_responses_peek(lua_State *L, spotify_responses *r, const char *key);
/* The shared tier's value: "fresh_until stale_until\n" then the text
 * (malloc'd; NULL when out of memory), and its parse. With a validator:
 * "fresh_until stale_until keep_until\n", then "etag VALUE\n" and/or
 * "lm VALUE\n", then the text (an entry without the third time has no
 * validators: entries written before validators were kept read as such). */
char *spotify_responses_entry(const char *text, size_t len, double fresh_until, double stale_until,
                              size_t *out_len);
char *spotify_responses_entry_validated(const char *text, size_t len, const spotify_rlook *e,
                                        size_t *out_len);
int spotify_responses_parse(const char *s, size_t len, spotify_rlook *out);
/* The key of an answer: its URL, the language it was asked in (a
 * localized answer is another answer) and, for a caller's own token, the
 * token's digest (`scope`; NULL for the app token), malloc'd. */
char *spotify_responses_variant(const char *url, const char *language, const char *scope);
/* The store key of an answer's key, malloc'd. */
char *spotify_responses_key(const char *variant);

/* The batch row of a method name, or NULL. */
const spotify_batch_row *spotify_responses_batch_row(const spotify_responses *r, const char *name);

/* The items of the array `field` of a JSON object's text: up to max items'
 * texts (starts, lens; a null item is the text "null"). Returns their
 * number, or -1 when the text is not such an object (or holds more). The
 * scan checks the structure (brackets, strings, scalars), not the values. */
int spotify_json_items(const char *s, size_t len, const char *field, const char **starts,
                       size_t *lens, int max);

/* Cache-Control's max-age in seconds (a header value of len bytes); 0
 * when absent or when the answer may not be kept (no-store, no-cache). */
double spotify_parse_max_age(const char *value, size_t len);
/* What Cache-Control forbids whatever ttl is configured: no-store (never
 * kept) and private (never in the shared tier). */
#define SPOTIFY_CC_NO_STORE 1u
#define SPOTIFY_CC_PRIVATE 2u
unsigned spotify_cache_control_flags(const char *value, size_t len);

spotify_responses *spotify_check_responses(lua_State *L, int i);

#endif
