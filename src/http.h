/* libcurl transport: transfers and the handles they share. No Lua here:
 * libcurl callbacks only fill C buffers, so no Lua error can ever unwind
 * through a libcurl frame. */
#ifndef SPOTIFY_HTTP_H
#define SPOTIFY_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

typedef struct spotify_http_options {
  long timeout_ms, connect_timeout_ms;
  size_t max_body;
  char *ca_file, *proxy, *user_agent; /* owned, may be NULL */
} spotify_http_options;

typedef struct spotify_xfer {
  CURL *easy;
  struct curl_slist *headers;
  char *auth; /* the Authorization value `headers` was built for */
  char *body;
  size_t len, cap, max_body;
  double retry_after; /* -1: no usable Retry-After */
  int header_count, too_big, too_many_headers, busy, done;
  CURLcode result;
  long long tag;
  char errbuf[CURL_ERROR_SIZE];
} spotify_xfer;

typedef struct spotify_http {
  CURLSH *share;
  CURLM *multi;
  spotify_xfer sync;
  spotify_xfer **pool;
  int npool;
  spotify_http_options opt;
  long long requests, bytes_received, connections_opened;
} spotify_http;

typedef struct spotify_outcome {
  long status;         /* 0 when the transfer failed */
  const char *kind;    /* error kind when status == 0 */
  const char *message; /* points into the xfer or a static string */
  int retry;           /* worth another attempt */
  double elapsed;      /* seconds */
} spotify_outcome;

int spotify_http_init(spotify_http *h);
void spotify_http_release(spotify_http *h);
/* Prepare x for one request; returns 0 or a static message on failure. */
const char *spotify_xfer_prepare(spotify_http *h, spotify_xfer *x, const char *method,
                                 const char *url, const char *auth, const char *body,
                                 size_t body_len);
void spotify_xfer_finish(spotify_http *h, spotify_xfer *x, CURLcode code, spotify_outcome *out);
spotify_xfer *spotify_http_idle_xfer(spotify_http *h);
/* Move finished multi transfers to done; returns how many are running. */
int spotify_http_drain(spotify_http *h);

#endif
