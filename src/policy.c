/* Status and failure tables, backoff and Retry-After. */
#include "policy.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spotify.h"

#define BACKOFF_BASE 0.5
#define BACKOFF_CAP 8.0

typedef struct status_rule {
  long lo, hi; /* inclusive status range */
  spotify_verdict verdict;
} status_rule;

/* First match wins; the last row of each table catches the rest. */
static const status_rule api_rules[] = {
    {401, 401, {"auth", 0, 1, NULL}},
    {403, 403, {"forbidden", 0, 0, NULL}},
    {404, 404, {"not_found", 0, 0, NULL}},
    {429, 429, {"rate_limited", 1, 0, NULL}},
    {400, 499, {"bad_request", 0, 0, NULL}},
    {500, 599, {"server", 1, 0, NULL}},
    {LONG_MIN, LONG_MAX, {"bad_request", 0, 0, NULL}},
};

/* The accounts service answers refused credentials with 400/401 (flat OAuth
 * error objects); those are never retried. */
static const status_rule token_rules[] = {
    {400, 401, {"auth", 0, 0, NULL}},
    {403, 403, {"auth", 0, 0, NULL}},
    {429, 429, {"rate_limited", 1, 0, NULL}},
    {500, 599, {"server", 1, 0, NULL}},
    {LONG_MIN, LONG_MAX, {"bad_request", 0, 0, NULL}},
};

spotify_verdict spotify_policy_status(long status, int token_endpoint) {
  const status_rule *r = token_endpoint ? token_rules : api_rules;
  while (!(status >= r->lo && status <= r->hi)) r++;
  return r->verdict;
}

static const char *const quota_reasons[] = {"QUOTA_EXCEEDED", NULL};

const char *spotify_policy_quota(long status, const char *reason) {
  if (status != 429 || reason == NULL) return NULL;
  for (const char *const *r = quota_reasons; *r; r++)
    if (strcmp(*r, reason) == 0) return *r;
  return NULL;
}

typedef struct failure_rule {
  const char *name;
  spotify_verdict verdict;
} failure_rule;

/* Indexed by spotify_failure. A refused certificate or an unusable URL
 * fails the same way every time, so those are not retried. */
static const failure_rule failure_rules[SPOTIFY_FAIL_COUNT] = {
    [SPOTIFY_FAIL_NONE] = {"none", {"network", 1, 0, NULL}},
    [SPOTIFY_FAIL_TIMEOUT] = {"timeout", {"timeout", 1, 0, NULL}},
    [SPOTIFY_FAIL_CONNECT] = {"connect", {"network", 1, 0, NULL}},
    [SPOTIFY_FAIL_BROKEN] = {"broken", {"network", 1, 0, NULL}},
    [SPOTIFY_FAIL_TLS] = {"tls", {"network", 1, 0, NULL}},
    [SPOTIFY_FAIL_TLS_VERIFY] = {"tls_verify", {"network", 0, 0, NULL}},
    [SPOTIFY_FAIL_TOO_BIG] = {"too_big", {"decode", 0, 0, "response body larger than max_body"}},
    [SPOTIFY_FAIL_TOO_MANY_HEADERS] = {"too_many_headers",
                                       {"decode", 0, 0,
                                        "response headers too many or too large (over 100 lines, "
                                        "8 KiB a line or 64 KiB in all)"}},
    [SPOTIFY_FAIL_UNUSABLE] = {"unusable", {"network", 0, 0, NULL}},
    [SPOTIFY_FAIL_NO_MEMORY] = {"no_memory", {"network", 0, 0, "out of memory"}},
};

spotify_verdict spotify_policy_failure(spotify_failure f) {
  if ((int)f < 0 || f >= SPOTIFY_FAIL_COUNT) f = SPOTIFY_FAIL_BROKEN;
  return failure_rules[f].verdict;
}

spotify_failure spotify_failure_named(const char *name) {
  for (int i = 1; i < SPOTIFY_FAIL_COUNT; i++)
    if (strcmp(failure_rules[i].name, name) == 0) return (spotify_failure)i;
  return SPOTIFY_FAIL_BROKEN;
}

/* Our own generator: rand() state belongs to the program (Lua 5.1's
 * math.random uses it), so the core must not reseed or consume it. */
static unsigned long long jitter_state;

static double jitter_unit(void) {
  if (jitter_state == 0) jitter_state = (unsigned long long)(spotify_wall_time() * 1e6) | 1u;
  unsigned long long x = jitter_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  jitter_state = x;
  return (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
}

double spotify_backoff(int attempt, double retry_after) {
  double d = BACKOFF_BASE;
  for (int i = 1; i < attempt && d < BACKOFF_CAP; i++) d *= 2;
  if (d > BACKOFF_CAP) d = BACKOFF_CAP;
  d *= 0.5 + 0.5 * jitter_unit();
  return retry_after > d ? retry_after : d;
}

double spotify_retry_delay(const spotify_limits *lim, int attempt, double retry_after, double now,
                           double started) {
  if (attempt > lim->max_retries) return -1;
  if (retry_after > lim->max_retry_after) return -1;
  double delay = spotify_backoff(attempt < 1 ? 1 : attempt, retry_after);
  if (lim->deadline > 0 && now + delay > started + lim->deadline) return -1;
  return delay;
}

int spotify_penalty_fits(const spotify_limits *lim, double wait, double now, double started) {
  if (wait > lim->max_retry_after) return 0;
  return !(lim->deadline > 0 && now + wait > started + lim->deadline);
}

/* A decimal number of seconds. strtod alone would also take "inf", "nan"
 * and hex: a Retry-After of "inf" would hold the fleet for the longest
 * penalty there is, so anything but digits, a point and an exponent is no
 * Retry-After at all. */
static int parse_seconds(const char *s, size_t len, double *out) {
  char *end;
  char tmp[32];
  if (len == 0 || len >= sizeof tmp) return 0;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  if (tmp[strspn(tmp, "0123456789.eE+-")] != '\0') return 0;
  double v = strtod(tmp, &end);
  if (end == tmp || *end != '\0' || !isfinite(v)) return 0;
  *out = v < 0 ? 0 : v;
  return 1;
}

/* IMF-fixdate only ("Sun, 06 Nov 1994 08:49:37 GMT"), the form RFC 9110
 * requires senders to use. */
static int parse_http_date(const char *s, size_t len, double now, double *out) {
  char tmp[64];
  struct tm tm;
  if (len >= sizeof tmp) return 0;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  memset(&tm, 0, sizeof tm);
  const char *end = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == NULL || *end != '\0') return 0;
  double when = (double)timegm(&tm);
  *out = when > now ? when - now : 0;
  return 1;
}

/* Every Retry-After the drivers read comes through here: one place that
 * refuses what is not a time and caps what is longer than any penalty. */
double spotify_parse_retry_after(const char *value, size_t len, double now) {
  double v;
  while (len > 0 && isspace((unsigned char)*value)) value++, len--;
  while (len > 0 && isspace((unsigned char)value[len - 1])) len--;
  if (!parse_seconds(value, len, &v) && !parse_http_date(value, len, now, &v)) return -1;
  return v > SPOTIFY_RETRY_AFTER_MAX ? SPOTIFY_RETRY_AFTER_MAX : v;
}

/* core.classify(status, is_token) -> nil for 2xx, else kind, retry, renew */
static int l_classify(lua_State *L) {
  lua_Integer status = luaL_checkinteger(L, 1);
  if (status >= 200 && status < 300) return 0;
  spotify_verdict v = spotify_policy_status((long)status, lua_toboolean(L, 2));
  lua_pushstring(L, v.kind);
  lua_pushboolean(L, v.retry);
  lua_pushboolean(L, v.renew);
  return 3;
}

/* core.backoff(attempt, retry_after_or_nil) -> seconds */
static int l_backoff(lua_State *L) {
  lua_Integer attempt = luaL_checkinteger(L, 1);
  double ra = luaL_optnumber(L, 2, 0);
  int a = attempt < 1 ? 1 : attempt > 64 ? 64 : (int)attempt;
  lua_pushnumber(L, spotify_backoff(a, ra));
  return 1;
}

/* core.parse_retry_after(header_value) -> seconds or nil */
static int l_parse_retry_after(lua_State *L) {
  size_t len;
  const char *s = luaL_optlstring(L, 1, NULL, &len);
  double v = s ? spotify_parse_retry_after(s, len, spotify_wall_time()) : -1;
  if (v < 0) return 0;
  lua_pushnumber(L, v);
  return 1;
}

void spotify_open_policy(lua_State *L) {
  static const luaL_Reg fns[] = {{"classify", l_classify},
                                 {"backoff", l_backoff},
                                 {"parse_retry_after", l_parse_retry_after},
                                 {NULL, NULL}};
  spotify_setfuncs(L, fns);
}
