/* libcurl transport. One easy handle reused for blocking calls, a pool of
 * easy handles for the multi handle, all sharing DNS, TLS sessions and the
 * connection cache, so keep-alive works across both. */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spotify.h"

#define MAX_HEADERS 100
#define MIN_BODY_CAP 16384

typedef struct curl_kind {
  CURLcode code;
  const char *kind;
  int retry;
} curl_kind;

/* Transport failures by CURLcode; anything else is a retryable "network". */
static const curl_kind curl_kinds[] = {
    {CURLE_OPERATION_TIMEDOUT, "timeout", 1},
    {CURLE_PEER_FAILED_VERIFICATION, "network", 0},
    {CURLE_SSL_CACERT_BADFILE, "network", 0},
    {CURLE_SSL_CERTPROBLEM, "network", 0},
    {CURLE_UNSUPPORTED_PROTOCOL, "network", 0},
    {CURLE_URL_MALFORMAT, "network", 0},
    {CURLE_FILESIZE_EXCEEDED, "decode", 0},
    {CURLE_OUT_OF_MEMORY, "network", 0},
    {CURLE_OK, "network", 1},
};

static const curl_kind *find_curl_kind(CURLcode code) {
  const curl_kind *k = curl_kinds;
  while (k->code != CURLE_OK && k->code != code) k++;
  return k;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  spotify_xfer *x = ud;
  size_t len = size * n;
  if (x->len + len > x->max_body) {
    x->too_big = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (x->len + len > x->cap) {
    size_t cap = x->cap ? x->cap : MIN_BODY_CAP;
    while (cap < x->len + len) cap *= 2;
    char *p = realloc(x->body, cap);
    if (p == NULL) return 0;
    x->body = p;
    x->cap = cap;
  }
  memcpy(x->body + x->len, data, len);
  x->len += len;
  return len;
}

static int header_is(const char *line, size_t len, const char *name) {
  size_t n = strlen(name);
  return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  spotify_xfer *x = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    /* A new response (after 100-continue or a proxy's CONNECT). */
    x->header_count = 0;
    x->retry_after = -1;
    return len;
  }
  if (++x->header_count > MAX_HEADERS) {
    x->too_many_headers = 1;
    return 0;
  }
  if (header_is(line, len, "retry-after"))
    x->retry_after = spotify_parse_retry_after(line + 12, len - 12, spotify_wall_time());
  return len;
}

static int setup_easy(spotify_http *h, spotify_xfer *x) {
  CURL *e = curl_easy_init();
  if (e == NULL) return -1;
  x->easy = e;
  x->max_body = h->opt.max_body;
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_SHARE, h->share);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->opt.timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->opt.connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->opt.max_body);
  if (h->opt.user_agent) curl_easy_setopt(e, CURLOPT_USERAGENT, h->opt.user_agent);
  if (h->opt.ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, h->opt.ca_file);
  if (h->opt.proxy) curl_easy_setopt(e, CURLOPT_PROXY, h->opt.proxy);
  return 0;
}

static void release_xfer(spotify_http *h, spotify_xfer *x) {
  if (x->easy) {
    if (x->busy) curl_multi_remove_handle(h->multi, x->easy);
    curl_easy_cleanup(x->easy);
  }
  curl_slist_free_all(x->headers);
  free(x->auth);
  free(x->body);
  memset(x, 0, sizeof *x);
}

int spotify_http_init(spotify_http *h) {
  h->share = curl_share_init();
  h->multi = curl_multi_init();
  if (h->share == NULL || h->multi == NULL) return -1;
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  return 0;
}

void spotify_http_release(spotify_http *h) {
  release_xfer(h, &h->sync);
  for (int i = 0; i < h->npool; i++) {
    release_xfer(h, h->pool[i]);
    free(h->pool[i]);
  }
  free(h->pool);
  h->pool = NULL;
  h->npool = 0;
  if (h->multi) curl_multi_cleanup(h->multi);
  if (h->share) curl_share_cleanup(h->share);
  h->multi = NULL;
  h->share = NULL;
  free(h->opt.ca_file);
  free(h->opt.proxy);
  free(h->opt.user_agent);
  memset(&h->opt, 0, sizeof h->opt);
}

/* The headers list is rebuilt only when the token changes. */
static const char *set_auth(spotify_xfer *x, const char *auth) {
  if (x->auth && auth && strcmp(x->auth, auth) == 0) return NULL;
  curl_slist_free_all(x->headers);
  free(x->auth);
  x->headers = NULL;
  x->auth = NULL;
  struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
  if (l == NULL) return "out of memory";
  x->headers = l;
  if (auth == NULL) return NULL;
  size_t n = strlen(auth);
  char *line = malloc(n + sizeof "Authorization: ");
  x->auth = strdup(auth);
  if (line == NULL || x->auth == NULL) {
    free(line);
    return "out of memory";
  }
  memcpy(line, "Authorization: ", 15);
  memcpy(line + 15, auth, n + 1);
  l = curl_slist_append(x->headers, line);
  free(line);
  if (l == NULL) return "out of memory";
  x->headers = l;
  return NULL;
}

const char *spotify_xfer_prepare(spotify_http *h, spotify_xfer *x, const char *method,
                                 const char *url, const char *auth, const char *body,
                                 size_t body_len) {
  if (x->easy == NULL && setup_easy(h, x) != 0) return "cannot create a libcurl handle";
  const char *err = set_auth(x, auth);
  if (err) return err;
  CURL *e = x->easy;
  x->len = 0;
  x->retry_after = -1;
  x->header_count = x->too_big = x->too_many_headers = x->done = 0;
  x->errbuf[0] = '\0';
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  return NULL;
}

void spotify_xfer_finish(spotify_http *h, spotify_xfer *x, CURLcode code, spotify_outcome *out) {
  curl_off_t total_us = 0;
  long connects = 0;
  curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total_us);
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
  h->requests++;
  h->connections_opened += connects;
  h->bytes_received += (long long)x->len;
  out->elapsed = (double)total_us / 1e6;
  out->status = 0;
  out->retry = 0;
  if (code == CURLE_OK) {
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &out->status);
    return;
  }
  if (x->too_big || code == CURLE_FILESIZE_EXCEEDED) {
    out->kind = "decode";
    out->message = "response body larger than max_body";
  } else if (x->too_many_headers) {
    out->kind = "decode";
    out->message = "response has too many header lines";
  } else {
    const curl_kind *k = find_curl_kind(code);
    out->kind = k->kind;
    out->retry = k->retry;
    out->message = x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
  }
}

spotify_xfer *spotify_http_idle_xfer(spotify_http *h) {
  for (int i = 0; i < h->npool; i++)
    if (!h->pool[i]->busy && !h->pool[i]->done) return h->pool[i];
  spotify_xfer **pool = realloc(h->pool, sizeof *pool * (size_t)(h->npool + 1));
  if (pool == NULL) return NULL;
  h->pool = pool;
  spotify_xfer *x = calloc(1, sizeof *x);
  if (x == NULL) return NULL;
  pool[h->npool++] = x;
  return x;
}

int spotify_http_drain(spotify_http *h) {
  int running = 0, left;
  CURLMsg *m;
  curl_multi_perform(h->multi, &running);
  while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    spotify_xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    x->result = m->data.result;
    curl_multi_remove_handle(h->multi, x->easy);
    x->busy = 0;
    x->done = 1;
  }
  return running;
}
