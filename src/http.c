/* libcurl transport and drivers. One easy handle reused for blocking
 * calls, one per multi job, all sharing DNS, TLS sessions and the
 * connection cache, so keep-alive and HTTP/2 multiplexing work across both. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "responses.h"
#include "spotify.h"

#define MAX_HEADERS 100
/* As in the nginx driver (lua/spotify/ngx.lua): a header line, all of them. */
#define MAX_HEADER_LINE (8 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
#define MIN_BODY_CAP 16384

typedef struct curl_failure {
  CURLcode code;
  spotify_failure failure;
} curl_failure;

/* What a CURLcode says happened; the policy decides what it means. */
static const curl_failure curl_failures[] = {
    {CURLE_OPERATION_TIMEDOUT, SPOTIFY_FAIL_TIMEOUT},
    {CURLE_COULDNT_CONNECT, SPOTIFY_FAIL_CONNECT},
    {CURLE_COULDNT_RESOLVE_HOST, SPOTIFY_FAIL_CONNECT},
    {CURLE_COULDNT_RESOLVE_PROXY, SPOTIFY_FAIL_CONNECT},
    {CURLE_SSL_CONNECT_ERROR, SPOTIFY_FAIL_TLS},
    {CURLE_PEER_FAILED_VERIFICATION, SPOTIFY_FAIL_TLS_VERIFY},
    {CURLE_SSL_CACERT_BADFILE, SPOTIFY_FAIL_TLS_VERIFY},
    {CURLE_SSL_CERTPROBLEM, SPOTIFY_FAIL_TLS_VERIFY},
    {CURLE_UNSUPPORTED_PROTOCOL, SPOTIFY_FAIL_UNUSABLE},
    {CURLE_URL_MALFORMAT, SPOTIFY_FAIL_UNUSABLE},
    {CURLE_FILESIZE_EXCEEDED, SPOTIFY_FAIL_TOO_BIG},
    {CURLE_OUT_OF_MEMORY, SPOTIFY_FAIL_NO_MEMORY},
    {CURLE_OK, SPOTIFY_FAIL_BROKEN},
};

static spotify_failure failure_of(CURLcode code) {
  const curl_failure *f = curl_failures;
  while (f->code != CURLE_OK && f->code != code) f++;
  return f->failure;
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

/* A validator's value, trimmed, into dst; one it may not send back is
 * left out (dst ""). */
static void take_validator(char *dst, const char *v, size_t n) {
  while (n > 0 && (*v == ' ' || *v == '\t')) v++, n--;
  while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
  dst[0] = '\0';
  if (!spotify_validator_ok(v, n)) return;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  spotify_xfer *x = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    /* A new response (after 100-continue or a proxy's CONNECT). */
    x->header_count = 0;
    x->header_bytes = len;
    x->headers_ended = 0;
    x->retry_after = -1;
    x->max_age = 0;
    x->cache_control = 0;
    x->etag[0] = x->last_modified[0] = '\0';
    return len;
  }
  if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
    x->headers_ended = 1;
    return len;
  }
  x->header_bytes += len;
  if (++x->header_count > MAX_HEADERS || len > MAX_HEADER_LINE ||
      x->header_bytes > MAX_HEADER_BYTES) {
    x->too_many_headers = 1;
    return 0;
  }
  if (header_is(line, len, "retry-after"))
    x->retry_after = spotify_parse_retry_after(line + 12, len - 12, spotify_wall_time());
  else if (header_is(line, len, "cache-control")) {
    x->max_age = spotify_parse_max_age(line + 14, len - 14);
    x->cache_control = spotify_cache_control_flags(line + 14, len - 14);
  } else if (header_is(line, len, "etag")) {
    take_validator(x->etag, line + 5, len - 5);
  } else if (header_is(line, len, "last-modified")) {
    take_validator(x->last_modified, line + 14, len - 14);
  }
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
  /* gzip alone, as the nginx driver asks: all Spotify sends, and libcurl
   * builds the header faster than its list of every encoding it knows. */
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->opt.max_body);
  if (h->opt.user_agent) curl_easy_setopt(e, CURLOPT_USERAGENT, h->opt.user_agent);
  if (h->opt.ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, h->opt.ca_file);
  /* Only the `proxy` option names a proxy: "" keeps libcurl from taking
   * one from http_proxy / https_proxy / all_proxy, as the nginx driver
   * never does. */
  curl_easy_setopt(e, CURLOPT_PROXY, h->opt.proxy ? h->opt.proxy : "");
  return 0;
}

static void release_xfer(spotify_http *h, spotify_xfer *x) {
  if (x->easy) {
    if (x->in_multi) curl_multi_remove_handle(h->multi, x->easy);
    curl_easy_cleanup(x->easy);
  }
  curl_slist_free_all(x->headers);
  curl_slist_free_all(x->cond);
  free(x->auth);
  free(x->body);
  memset(x, 0, sizeof *x);
}

/* The handles hold far more memory (libcurl's buffers, a connection) than
 * the userdata the collector sees: a GC step the size of that memory keeps
 * dropped clients from piling up before they are collected. */
#define HANDLES_KIB 128

/* The handles, made on first use; -1 when that fails (what was made is
 * kept for the next try). */
static int ready(lua_State *L, spotify_http *h) {
  if (h->multi) return 0;
  lua_gc(L, LUA_GCSTEP, HANDLES_KIB);
  if (h->share == NULL) {
    h->share = curl_share_init();
    if (h->share == NULL) return -1;
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  }
  h->multi = curl_multi_init();
  if (h->multi == NULL) return -1;
  curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  return 0;
}

static void release_jobs(lua_State *L, spotify_http *h);

void spotify_http_release(lua_State *L, spotify_http *h) {
  release_jobs(L, h);
  release_xfer(h, &h->sync);
  if (h->multi) curl_multi_cleanup(h->multi);
  if (h->share) curl_share_cleanup(h->share);
  h->multi = NULL;
  h->share = NULL;
  free(h->opt.ca_file);
  free(h->opt.proxy);
  free(h->opt.user_agent);
  free(h->opt.api_key);
  memset(&h->opt, 0, sizeof h->opt);
}

/* Appends "name: value" to l; NULL when out of memory (l is then freed). */
static struct curl_slist *append_header(struct curl_slist *l, const char *name, const char *value) {
  size_t n = strlen(name), v = strlen(value);
  char *line = malloc(n + 2 + v + 1);
  struct curl_slist *l2 = NULL;
  if (line) {
    memcpy(line, name, n);
    memcpy(line + n, ": ", 2);
    memcpy(line + n + 2, value, v + 1);
    l2 = curl_slist_append(l, line);
  }
  free(line);
  if (l2 == NULL) curl_slist_free_all(l);
  return l2;
}

/* Builds the header list for `auth` (and `language`, API requests only); on
 * failure the list is left empty so nothing is ever sent without the
 * Authorization it was asked to carry. */
static int set_auth(spotify_xfer *x, const char *auth, const char *language, const char *api_key) {
  int with_language = language != NULL;
  if (x->headers && x->language == with_language &&
      ((x->auth == NULL && auth == NULL) || (x->auth && auth && strcmp(x->auth, auth) == 0)))
    return 0;
  curl_slist_free_all(x->headers);
  free(x->auth);
  x->headers = NULL;
  x->auth = NULL;
  struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
  if (l && language) l = append_header(l, "Accept-Language", language);
  /* A gateway's client names its caller key instead of a token: the same
   * on every request of the client, so the cached list stays valid. */
  if (l && api_key) l = append_header(l, "X-Api-Key", api_key);
  if (l == NULL) return -1;
  if (auth) {
    size_t n = strlen(auth);
    char *line = malloc(n + sizeof "Authorization: ");
    char *copy = strdup(auth);
    struct curl_slist *l2 = NULL;
    if (line && copy) {
      memcpy(line, "Authorization: ", 15);
      memcpy(line + 15, auth, n + 1);
      l2 = curl_slist_append(l, line);
    }
    free(line);
    if (l2 == NULL) {
      free(copy);
      curl_slist_free_all(l);
      return -1;
    }
    l = l2;
    x->auth = copy;
  }
  x->headers = l;
  x->language = with_language;
  return 0;
}

/* The headers of a conditional request: the usual ones and the validators
 * (x->cond, made per request: they change with every answer asked about). */
static int set_conditional(spotify_xfer *x, const spotify_send *s) {
  curl_slist_free_all(x->cond);
  x->cond = NULL;
  if (s->if_none_match == NULL && s->if_modified_since == NULL) return 0;
  struct curl_slist *l = NULL;
  for (const struct curl_slist *p = x->headers; p; p = p->next) {
    struct curl_slist *l2 = curl_slist_append(l, p->data);
    if (l2 == NULL) {
      curl_slist_free_all(l);
      return -1;
    }
    l = l2;
  }
  if (s->if_none_match && (l = append_header(l, "If-None-Match", s->if_none_match)) == NULL)
    return -1;
  if (s->if_modified_since &&
      (l = append_header(l, "If-Modified-Since", s->if_modified_since)) == NULL)
    return -1;
  x->cond = l;
  return 0;
}

static int prepare(spotify_http *h, spotify_xfer *x, const spotify_send *s) {
  if (x->easy == NULL && setup_easy(h, x) != 0) return -1;
  if (set_auth(x, s->auth, s->language, h->opt.api_key) != 0) return -1;
  if (set_conditional(x, s) != 0) return -1;
  CURL *e = x->easy;
  x->len = 0;
  x->retry_after = -1;
  x->max_age = 0;
  x->cache_control = 0;
  x->etag[0] = x->last_modified[0] = '\0';
  x->header_count = x->too_big = x->too_many_headers = x->headers_ended = 0;
  x->header_bytes = 0;
  x->errbuf[0] = '\0';
  curl_easy_setopt(e, CURLOPT_URL, s->url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->cond ? x->cond : x->headers);
  if (strcmp(s->method, "POST") == 0) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body_len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, s->body ? s->body : "");
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  return 0;
}

/* A connect that failed for want of file descriptors says so, rather than
 * libcurl's plain "Couldn't connect to server". */
static void describe_errno(spotify_xfer *x, CURLcode code) {
  long err = 0;
  if (code != CURLE_COULDNT_CONNECT) return;
  curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &err);
  if (err != EMFILE && err != ENFILE) { /* libcurl may not keep socket()'s errno: ask again */
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0)
      close(probe);
    else
      err = errno;
  }
  if (err == EMFILE || err == ENFILE) {
    if (x->errbuf[0] == '\0') snprintf(x->errbuf, sizeof x->errbuf, "%s", curl_easy_strerror(code));
    size_t n = strlen(x->errbuf);
    snprintf(x->errbuf + n, sizeof x->errbuf - n, " (out of file descriptors: %s)",
             strerror((int)err));
  }
}

static void outcome_of(spotify_xfer *x, CURLcode code, spotify_outcome *o) {
  curl_off_t total_us = 0;
  long connects = 0;
  memset(o, 0, sizeof *o);
  curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total_us);
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
  o->elapsed = (double)total_us / 1e6;
  o->connections = (int)connects;
  o->body = x->body ? x->body : "";
  o->len = x->len;
  o->retry_after = x->retry_after;
  o->max_age = x->max_age;
  o->cache_control = x->cache_control;
  o->etag = x->etag[0] ? x->etag : NULL;
  o->last_modified = x->last_modified[0] ? x->last_modified : NULL;
  if (code == CURLE_OK && x->headers_ended) {
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &o->status);
    return;
  }
  o->len = 0;
  if (x->too_big) {
    o->failure = SPOTIFY_FAIL_TOO_BIG;
  } else if (x->too_many_headers || (code == CURLE_OUT_OF_MEMORY && x->header_count > 0)) {
    /* libcurl refuses a header line over 100 KB as "out of memory" */
    o->failure = SPOTIFY_FAIL_TOO_MANY_HEADERS;
  } else if (code == CURLE_OK) { /* closed before the end of the headers */
    o->failure = SPOTIFY_FAIL_BROKEN;
    o->detail = "connection closed before the end of the response headers";
    return;
  } else {
    o->failure = failure_of(code);
  }
  describe_errno(x, code);
  o->detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
}

static void prepare_failed(spotify_outcome *o) {
  memset(o, 0, sizeof *o);
  o->failure = SPOTIFY_FAIL_NO_MEMORY;
  o->retry_after = -1;
  o->body = "";
}

/* ---- blocking ---- */

void spotify_drive_blocking(lua_State *L, spotify_http *h, spotify_exchange *x) {
  spotify_outcome o;
  for (;;) {
    switch (spotify_exchange_next(L, x)) {
      case SPOTIFY_ACT_SEND: {
        spotify_xfer *xf = &h->sync;
        if (ready(L, h) != 0 || prepare(h, xf, &x->send) != 0) {
          prepare_failed(&o);
        } else {
          CURLcode code = curl_easy_perform(xf->easy);
          outcome_of(xf, code, &o);
        }
        spotify_exchange_outcome(L, x, &o);
        break;
      }
      case SPOTIFY_ACT_WAIT:
        spotify_sleep(x->wait);
        break;
      case SPOTIFY_ACT_CACHE: /* never: a C driver lets the machine call Lua caches inline */
      case SPOTIFY_ACT_DONE:
        return;
    }
  }
}

/* ---- multi ---- */

spotify_job *spotify_multi_job(lua_State *L, spotify_http *h) {
  if (ready(L, h) != 0) return NULL;
  spotify_multi *m = &h->work;
  for (int i = 0; i < m->n; i++)
    if (m->jobs[i]->phase == SPOTIFY_JOB_FREE) return m->jobs[i];
  spotify_job **jobs = realloc(m->jobs, sizeof *jobs * (size_t)(m->n + 1));
  if (jobs == NULL) return NULL;
  m->jobs = jobs;
  spotify_job *j = calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->x.error.retry_after = -1;
  jobs[m->n++] = j;
  return j;
}

void spotify_multi_queue(spotify_http *h, spotify_job *j, lua_Integer tag) {
  spotify_multi *m = &h->work;
  j->tag = tag;
  j->phase = SPOTIFY_JOB_QUEUED;
  j->next_queued = NULL;
  if (m->queued_last)
    m->queued_last->next_queued = j;
  else
    m->queued = j;
  m->queued_last = j;
}

static int count_phase(const spotify_multi *m, spotify_job_phase p) {
  int n = 0;
  for (int i = 0; i < m->n; i++) n += m->jobs[i]->phase == p;
  return n;
}

static int pending(const spotify_multi *m) {
  return m->n - count_phase(m, SPOTIFY_JOB_FREE) - count_phase(m, SPOTIFY_JOB_FINISHED);
}

/* Drive j's machine to its next action and put the job where it belongs. */
static void advance_job(lua_State *L, spotify_http *h, spotify_job *j) {
  for (;;) {
    spotify_action a = spotify_exchange_next(L, &j->x);
    if (a == SPOTIFY_ACT_SEND) {
      spotify_outcome o;
      if (prepare(h, &j->xfer, &j->x.send) != 0 ||
          curl_multi_add_handle(h->multi, j->xfer.easy) != CURLM_OK) {
        prepare_failed(&o);
        spotify_exchange_outcome(L, &j->x, &o);
        continue;
      }
      j->xfer.in_multi = 1;
      j->phase = SPOTIFY_JOB_SENDING;
    } else if (a == SPOTIFY_ACT_WAIT) {
      j->wake_at = spotify_monotonic_time() + j->x.wait;
      j->phase = SPOTIFY_JOB_WAITING;
    } else { /* done (never a cache action: Lua caches run inline here) */
      j->phase = SPOTIFY_JOB_FINISHED;
    }
    return;
  }
}

/* Start queued jobs, first come first served. (core.gather, gather.c,
 * queues at most `concurrency` of a list at a time; the started requests
 * of a client are independent of each other.) */
static void start_queued(lua_State *L, spotify_http *h) {
  spotify_multi *m = &h->work;
  while (m->queued) {
    spotify_job *j = m->queued;
    m->queued = j->next_queued;
    if (m->queued == NULL) m->queued_last = NULL;
    j->next_queued = NULL;
    advance_job(L, h, j);
  }
}

static void finish_transfers(lua_State *L, spotify_http *h) {
  int running, left;
  CURLMsg *msg;
  curl_multi_perform(h->multi, &running);
  while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    spotify_xfer *xf = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&xf);
    CURLcode code = msg->data.result;
    curl_multi_remove_handle(h->multi, xf->easy);
    xf->in_multi = 0;
    spotify_job *j = (spotify_job *)((char *)xf - offsetof(spotify_job, xfer));
    spotify_outcome o;
    outcome_of(xf, code, &o);
    spotify_exchange_outcome(L, &j->x, &o);
    advance_job(L, h, j);
  }
}

/* Wake the jobs whose timer is due; returns seconds to the next timer. */
static double fire_timers(lua_State *L, spotify_http *h) {
  spotify_multi *m = &h->work;
  double t = spotify_monotonic_time(), next = 1e9;
  for (int i = 0; i < m->n; i++) {
    spotify_job *j = m->jobs[i];
    if (j->phase != SPOTIFY_JOB_WAITING) continue;
    if (j->wake_at <= t) advance_job(L, h, j);
    if (j->phase == SPOTIFY_JOB_WAITING && j->wake_at - t < next) next = j->wake_at - t;
  }
  return next;
}

static void free_job_exchange(spotify_job *j) {
  spotify_exchange_free(&j->x);
  j->phase = SPOTIFY_JOB_FREE;
}

int spotify_multi_run(lua_State *L, spotify_http *h, double wait,
                      void (*each)(lua_State *L, spotify_job *j, void *ud), void *ud) {
  spotify_multi *m = &h->work;
  double until = spotify_monotonic_time() + (wait > 0 ? wait : 0);
  if (m->n == 0) return 0;
  for (;;) {
    start_queued(L, h);
    if (count_phase(m, SPOTIFY_JOB_SENDING) > 0) finish_transfers(L, h);
    double next_timer = fire_timers(L, h);
    start_queued(L, h);
    if (count_phase(m, SPOTIFY_JOB_FINISHED) > 0 || pending(m) == 0) break;
    double left = until - spotify_monotonic_time();
    if (left <= 0) break;
    double t = next_timer < left ? next_timer : left;
    if (count_phase(m, SPOTIFY_JOB_SENDING) > 0)
      curl_multi_poll(h->multi, NULL, 0, (int)(t * 1000) + 1, NULL);
    else
      spotify_sleep(t);
  }
  for (int i = 0; i < m->n; i++) {
    spotify_job *j = m->jobs[i];
    if (j->phase != SPOTIFY_JOB_FINISHED) continue;
    each(L, j, ud);
    free_job_exchange(j);
  }
  return pending(m);
}

static void unqueue(spotify_multi *m, spotify_job *j) {
  spotify_job **p = &m->queued, *prev = NULL;
  while (*p && *p != j) prev = *p, p = &(*p)->next_queued;
  if (*p == NULL) return;
  *p = j->next_queued;
  if (m->queued_last == j) m->queued_last = prev;
  j->next_queued = NULL;
}

static void drop_job(lua_State *L, spotify_http *h, spotify_job *j) {
  if (j->phase == SPOTIFY_JOB_QUEUED) unqueue(&h->work, j);
  if (j->xfer.in_multi) {
    curl_multi_remove_handle(h->multi, j->xfer.easy);
    j->xfer.in_multi = 0;
  }
  spotify_exchange_abandon(L, &j->x);
  free_job_exchange(j);
}

int spotify_multi_cancel(lua_State *L, spotify_http *h, lua_Integer tag) {
  int found = 0;
  for (int i = 0; i < h->work.n; i++) {
    spotify_job *j = h->work.jobs[i];
    if (j->phase != SPOTIFY_JOB_FREE && j->tag == tag) {
      drop_job(L, h, j);
      found = 1;
    }
  }
  return found;
}

static void release_jobs(lua_State *L, spotify_http *h) {
  spotify_multi *m = &h->work;
  for (int i = 0; i < m->n; i++) {
    spotify_job *j = m->jobs[i];
    if (j->phase != SPOTIFY_JOB_FREE) drop_job(L, h, j);
    spotify_exchange_free(&j->x); /* a job whose exchange failed to start */
    release_xfer(h, &j->xfer);
    free(j);
  }
  free(m->jobs);
  memset(m, 0, sizeof *m);
}
