/* Clocks and sleeping: wall time for token expiry shared between processes,
 * monotonic time for backoff, timers and deadlines.
 *
 * The virtual mode exists for specs that retry a lot: a sleep records the
 * wait and moves the monotonic clock on instead of blocking, so real
 * backoff values run in no time while network time stays real. */
#include <errno.h>
#include <time.h>

#include "spotify.h"

/* Waits recorded between two resets: a spec asks for a handful. A fixed
 * array, since memory malloc'd here would outlive the module once Lua
 * unloads it. */
#define MAX_WAITS 4096

static struct {
  int on;
  double skipped;      /* all the time skipped: the monotonic clock keeps it */
  double skipped_wall; /* skipped since the virtual mode went on */
  double waits[MAX_WAITS];
  size_t n;
} virt;

/* While the virtual mode is on, both clocks move on by what it skips, so
 * what is kept in wall time (token expiry, a shared penalty, pacing) agrees
 * with the waits. Off, the wall clock is the real one again: other
 * processes read it. */
double spotify_wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + (virt.on ? virt.skipped_wall : 0);
}

double spotify_monotonic_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + virt.skipped;
}

static void record_wait(double s) {
  if (virt.n < MAX_WAITS) virt.waits[virt.n++] = s;
}

void spotify_sleep(double s) {
  if (virt.on) {
    record_wait(s);
    if (s > 0) {
      virt.skipped += s;
      virt.skipped_wall += s;
    }
    return;
  }
  if (!(s > 0)) return;
  if (s > 86400 * 2) s = 86400 * 2;
  struct timespec ts;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
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
  spotify_sleep(luaL_checknumber(L, 1));
  return 0;
}

/* core.virtual_clock(on): switch the virtual mode (specs only). */
static int l_virtual_clock(lua_State *L) {
  virt.on = lua_toboolean(L, 1);
  virt.skipped_wall = 0;
  return 0;
}

/* core.virtual_waits() -> {seconds...}: every sleep since the last reset. */
static int l_virtual_waits(lua_State *L) {
  lua_createtable(L, (int)virt.n, 0);
  for (size_t i = 0; i < virt.n; i++) {
    lua_pushnumber(L, virt.waits[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static int l_virtual_reset(lua_State *L) {
  (void)L;
  virt.n = 0;
  return 0;
}

/* Each load of the module starts on the real clock (a spec runner loads it
 * anew for every file); the time skipped so far stays, so the monotonic
 * clock never runs backwards. */
void spotify_open_clock(lua_State *L) {
  virt.on = 0;
  virt.skipped_wall = 0;
  static const luaL_Reg fns[] = {{"time", l_time},
                                 {"now", l_now},
                                 {"sleep", l_sleep},
                                 {"virtual_clock", l_virtual_clock},
                                 {"virtual_waits", l_virtual_waits},
                                 {"virtual_reset", l_virtual_reset},
                                 {NULL, NULL}};
  spotify_setfuncs(L, fns);
}
