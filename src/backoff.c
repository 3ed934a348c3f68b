/* Backoff schedule and Retry-After parsing. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spotify.h"

#define BACKOFF_BASE 0.5
#define BACKOFF_CAP 8.0

/* attempt 1 -> 0.5 s, doubling up to 8 s, times a jitter in [0.5, 1.0];
 * the server's Retry-After wins when it is longer. */
static double backoff_delay(int attempt, double retry_after, double unit) {
  double d = BACKOFF_BASE;
  for (int i = 1; i < attempt && d < BACKOFF_CAP; i++) d *= 2;
  if (d > BACKOFF_CAP) d = BACKOFF_CAP;
  d *= 0.5 + 0.5 * unit;
  return retry_after > d ? retry_after : d;
}

static int parse_seconds(const char *s, size_t len, double *out) {
  char *end;
  char tmp[32];
  if (len == 0 || len >= sizeof tmp) return 0;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  double v = strtod(tmp, &end);
  if (end == tmp || *end != '\0' || v != v) return 0;
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

double spotify_parse_retry_after(const char *value, size_t len, double now) {
  double v;
  while (len > 0 && isspace((unsigned char)*value)) value++, len--;
  while (len > 0 && isspace((unsigned char)value[len - 1])) len--;
  if (parse_seconds(value, len, &v)) return v;
  if (parse_http_date(value, len, now, &v)) return v;
  return -1;
}

/* Our own generator: rand() state belongs to the program (Lua 5.1's
 * math.random uses it), so the core must not reseed or consume it. */
static unsigned long long jitter_state;

static double jitter_unit(void) {
  unsigned long long x = jitter_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  jitter_state = x;
  return (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
}

/* core.backoff(attempt, retry_after_or_nil) -> seconds */
static int l_backoff(lua_State *L) {
  int attempt = (int)luaL_checkinteger(L, 1);
  double ra = luaL_optnumber(L, 2, 0);
  lua_pushnumber(L, backoff_delay(attempt < 1 ? 1 : attempt, ra, jitter_unit()));
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

void spotify_open_backoff(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"backoff", l_backoff}, {"parse_retry_after", l_parse_retry_after}, {NULL, NULL}};
  if (jitter_state == 0) jitter_state = (unsigned long long)(spotify_wall_time() * 1e6) | 1u;
  spotify_setfuncs(L, fns);
}
