/* The one error type: built in C by the exchange machine, in Lua for
 * argument checks; both carry the metatable "spotify.error". */
#ifndef SPOTIFY_ERRORS_H
#define SPOTIFY_ERRORS_H

#include "compat.h"

typedef struct spotify_error {
  const char *kind;   /* static string; NULL: no error */
  long status;        /* HTTP status, 0 when none */
  char *message;      /* owned; NULL falls back to a plain description */
  double retry_after; /* seconds, < 0 when none */
  int at_token;       /* it came from the token endpoint */
  char *reason;       /* owned: Spotify's error.reason, NULL when none */
} spotify_error;

void spotify_error_clear(spotify_error *e);
/* Replace e with kind/status/message (copied) and retry_after. */
void spotify_error_set(spotify_error *e, const char *kind, long status, const char *message,
                       double retry_after);
void spotify_error_copy(spotify_error *dst, const spotify_error *src);
/* Set (a copy of) Spotify's reason on e; NULL clears it. */
/* Replace the message only (kind, status, reason and retry_after stay). */
void spotify_error_set_message(spotify_error *e, const char *message);
void spotify_error_set_reason(spotify_error *e, const char *reason);
/* The error for a non-2xx answer, with Spotify's message and reason from
 * its body. */
void spotify_error_from_response(lua_State *L, spotify_error *e, const char *kind, long status,
                                 const char *body, size_t len, double retry_after);
/* The one "closed" error: every path that finds its client closed says it
 * alike. _push_closed pushes nil and it, and returns 2. */
void spotify_error_closed(spotify_error *e);
int spotify_push_closed(lua_State *L);
/* Push e as a Lua error object naming the request. */
void spotify_push_error(lua_State *L, const spotify_error *e, const char *method, const char *url);
/* Push s with every form of secret in it (raw, JSON-escaped, URL-encoded)
 * replaced by "<token>"; s as is when secret is NULL or empty. */
void spotify_push_redacted(lua_State *L, const char *s, const char *secret);

#endif
