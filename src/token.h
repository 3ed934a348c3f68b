/* The client's token: what it holds, when it is fresh, and the single
 * flight of its renewal, whose outcome (success or failure) every waiter
 * shares. */
#ifndef SPOTIFY_TOKEN_H
#define SPOTIFY_TOKEN_H

#include <stddef.h>

#include "errors.h"

typedef struct spotify_token {
  int fixed;         /* a token given by the user: never renewed */
  int none;          /* a gateway's client: no token and no Authorization at all */
  char *value;       /* the access token, owned */
  char *auth;        /* "Bearer <value>", owned */
  double expires_at; /* wall clock seconds; 0 for a fixed token */
  unsigned serial;   /* bumps on every adopt: which token a request carried */
  char *refused;     /* the token the API last refused, owned */
  double refused_expires_at;
  /* single flight */
  const void *renewer;        /* the exchange renewing now, or NULL */
  double renewer_alive_until; /* monotonic: past it, a waiter takes over (a lost renewer) */
  unsigned round;             /* bumps when a renewal ends */
  spotify_error failure;      /* the last round's error; kind NULL: it succeeded */
  char *scope;                /* a fixed token's digest, made on first use, owned */
} spotify_token;

int spotify_token_fresh(const spotify_token *t, double refresh_buffer, double now);
/* Take value (len bytes) as the token; -1 when out of memory. */
int spotify_token_adopt(spotify_token *t, const char *value, size_t len, double expires_at);
/* The API refused the token of `serial`: forget it, remember it refused. */
void spotify_token_refuse(spotify_token *t, unsigned serial);
/* May a cache entry (token, expiry) be taken after what was refused? */
int spotify_token_acceptable(const spotify_token *t, const char *value, double expires_at,
                             double refresh_buffer, double now);
void spotify_token_release(spotify_token *t);
/* Whose answers a request with this token gets: NULL for an app token
 * (client credentials: the same for every holder of the app's token), a
 * digest of a fixed token (a user's: its answers are that user's alone).
 * NULL also when out of memory: the caller then keeps nothing. */
const char *spotify_token_scope(spotify_token *t);

/* The token endpoint's answer: on success pushes the token string and
 * returns NULL with *expires_in set; else returns why, pushing nothing. */
const char *spotify_token_parse(lua_State *L, const char *body, size_t len, double *expires_in);
/* A cache entry {"access_token","expires_at"}, malloc'd; NULL on OOM. */
char *spotify_token_entry(const char *value, double expires_at, size_t *len);
/* Decode an entry: pushes the token string and returns 1 with *expires_at,
 * or returns 0 pushing nothing. */
int spotify_token_entry_parse(lua_State *L, const char *s, size_t len, double *expires_at);
/* "Basic base64(id:secret)", malloc'd; NULL on OOM. */
char *spotify_basic_auth(const char *id, const char *secret);

#endif
