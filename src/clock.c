/* Clocks and sleeping: wall time for token expiry shared between processes,
 * monotonic time for backoff and deadlines. */
#include <errno.h>
#include <time.h>

#include "spotify.h"

double spotify_wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double spotify_monotonic_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, spotify_wall_time());
  return 1;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, spotify_monotonic_time());
  return 1;
}

static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  if (s <= 0) return 0;
  struct timespec ts;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return 0;
}

void spotify_open_clock(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"time", l_time}, {"now", l_now}, {"sleep", l_sleep}, {NULL, NULL}};
  spotify_setfuncs(L, fns);
}
