/* libcurl: the transport and the two drivers of the exchange machine that
 * run on it. libcurl callbacks only fill C buffers, so no Lua error can ever
 * unwind through a libcurl frame; Lua (hooks, Lua caches) is called only
 * between libcurl calls. */
#ifndef SPOTIFY_HTTP_H
#define SPOTIFY_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "compat.h"
#include "engine.h"
#include "responses.h"

typedef struct spotify_http_options {
  long timeout_ms, connect_timeout_ms;
  size_t max_body;
  char *ca_file, *proxy, *user_agent; /* owned, may be NULL */
  char *api_key;                      /* X-Api-Key of a gateway's client, owned, may be NULL */
} spotify_http_options;

typedef struct spotify_xfer {
  CURL *easy;
  struct curl_slist *headers;
  char *auth; /* the Authorization value `headers` was built for */
  char *body;
  size_t len, cap, max_body;
  double retry_after;     /* -1: no usable Retry-After */
  double max_age;         /* Cache-Control max-age; 0: none */
  unsigned cache_control; /* its no-store and private (SPOTIFY_CC_ flags) */
  char etag[SPOTIFY_VALIDATOR_MAX + 1], last_modified[SPOTIFY_VALIDATOR_MAX + 1]; /* "": none */
  struct curl_slist *cond; /* `headers` and a conditional request's validators, or NULL */
  int header_count, too_big, too_many_headers, in_multi;
  size_t header_bytes; /* of the current response's header lines */
  int headers_ended;   /* its blank line came: a close before it is not an answer */
  char errbuf[CURL_ERROR_SIZE];
  int language; /* `headers` carry Accept-Language */
} spotify_xfer;

/* One exchange on the multi handle. */
typedef enum spotify_job_phase {
  SPOTIFY_JOB_FREE,
  SPOTIFY_JOB_QUEUED, /* submitted, not started yet */
  SPOTIFY_JOB_SENDING,
  SPOTIFY_JOB_WAITING, /* a timer: backoff, Retry-After, a renewal elsewhere */
  SPOTIFY_JOB_FINISHED
} spotify_job_phase;

typedef struct spotify_job {
  spotify_exchange x;
  spotify_xfer xfer;
  lua_Integer tag;
  spotify_job_phase phase;
  struct spotify_job *next_queued;
  double wake_at;
} spotify_job;

/* The multi driver's jobs; the queued ones wait in submission order. */
typedef struct spotify_multi {
  spotify_job **jobs;
  int n;
  spotify_job *queued, *queued_last; /* a FIFO through spotify_job.next_queued */
} spotify_multi;

/* The transport: what the drivers move bytes with. It never sees the
 * machine's state, only the exchanges it drives. */
typedef struct spotify_http {
  CURLSH *share;
  CURLM *multi;
  spotify_xfer sync;
  spotify_multi work;
  spotify_http_options opt;
} spotify_http;

/* Frees the handles and the jobs (abandoning their exchanges), keeps
 * nothing; the options too. */
void spotify_http_release(lua_State *L, spotify_http *h);

/* Blocking driver: the whole exchange, retries and waits included. */
void spotify_drive_blocking(lua_State *L, spotify_http *h, spotify_exchange *x);

/* Multi driver. A job for an exchange the caller then initializes, or
 * NULL when out of memory; spotify_multi_queue hands it to the driver. */
spotify_job *spotify_multi_job(lua_State *L, spotify_http *h);
void spotify_multi_queue(spotify_http *h, spotify_job *j, lua_Integer tag);
/* Advance every job for at most `wait` seconds, returning early once one
 * finishes; finished jobs are handed to `each` and freed. Returns how many
 * are still pending. */
int spotify_multi_run(lua_State *L, spotify_http *h, double wait,
                      void (*each)(lua_State *L, spotify_job *j, void *ud), void *ud);
int spotify_multi_cancel(lua_State *L, spotify_http *h, lua_Integer tag);

#endif
