/* Every decision the exchange machine takes from a table: what an HTTP
 * status or a transport failure means, how long to back off, whether one
 * more attempt fits. No I/O, no Lua. */
#ifndef SPOTIFY_POLICY_H
#define SPOTIFY_POLICY_H

#include <stddef.h>

/* What went wrong below HTTP, as every driver names it. */
typedef enum spotify_failure {
  SPOTIFY_FAIL_NONE = 0,
  SPOTIFY_FAIL_TIMEOUT,    /* connect, send or receive took too long */
  SPOTIFY_FAIL_CONNECT,    /* refused, unreachable, DNS */
  SPOTIFY_FAIL_BROKEN,     /* reset, closed early, truncated, malformed */
  SPOTIFY_FAIL_TLS,        /* handshake failed for a passing reason */
  SPOTIFY_FAIL_TLS_VERIFY, /* the peer's certificate was refused */
  SPOTIFY_FAIL_TOO_BIG,    /* body above max_body */
  SPOTIFY_FAIL_TOO_MANY_HEADERS,
  SPOTIFY_FAIL_UNUSABLE, /* bad URL, unsupported scheme, bad proxy */
  SPOTIFY_FAIL_NO_MEMORY,
  SPOTIFY_FAIL_COUNT
} spotify_failure;

typedef struct spotify_verdict {
  const char *kind;          /* error kind for the caller */
  int retry;                 /* worth another attempt after a wait */
  int renew;                 /* a new token may cure it */
  const char *fixed_message; /* NULL: the driver's own description */
} spotify_verdict;

/* For a status that is not 2xx; `token_endpoint` picks the accounts rules. */
spotify_verdict spotify_policy_status(long status, int token_endpoint);
spotify_verdict spotify_policy_failure(spotify_failure f);
/* "timeout", "connect", ... -> the failure; SPOTIFY_FAIL_BROKEN when unknown. */
spotify_failure spotify_failure_named(const char *name);

/* Spotify's reasons for a 429 that means a quota is spent (since July
 * 2026: an app's daily quota, or a developer's): a ban of hours, so the
 * call fails at once, never retried nor waited for, and the cooldown is
 * shared. Returns the reason's static copy, or NULL for any other answer. */
const char *spotify_policy_quota(long status, const char *reason);
#define SPOTIFY_QUOTA_RETRY_AFTER 3600.0 /* seconds, when a quota's 429 has no Retry-After */

/* Seconds before attempt `attempt` + 1: 0.5 s doubling to 8 s, times a
 * jitter in [0.5, 1.0], or the server's Retry-After when that is longer. */
double spotify_backoff(int attempt, double retry_after);
/* The longest Retry-After Spotify sends, and so the longest penalty kept
 * or waited for: a longer value is taken as this long. */
#define SPOTIFY_RETRY_AFTER_MAX 86400.0
/* Retry-After header value -> seconds (0 to SPOTIFY_RETRY_AFTER_MAX), or
 * -1 when absent or not a time (non-finite, not a decimal number). */
double spotify_parse_retry_after(const char *value, size_t len, double now_epoch);

typedef struct spotify_limits {
  int max_retries;
  double max_retry_after;
  double deadline; /* seconds from the call's start; <= 0: none */
} spotify_limits;

/* The wait before another attempt, or -1 when the call must give up:
 * out of retries, Retry-After above max_retry_after, or past the deadline. */
double spotify_retry_delay(const spotify_limits *lim, int attempt, double retry_after, double now,
                           double started);
/* May the call wait `wait` seconds for an earlier 429 penalty? */
int spotify_penalty_fits(const spotify_limits *lim, double wait, double now, double started);

#endif
