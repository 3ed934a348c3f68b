/* Shared by the fuzz targets: one Lua 5.4 state per process with the core
 * (compiled into the fuzzer from the src/ C files, never core.so) preloaded as
 * "spotify.core" and the project's lua/ on package.path. Lua is linked into
 * the fuzzer binary only. */
#ifndef SPOTIFY_FUZZ_HARNESS_H
#define SPOTIFY_FUZZ_HARNESS_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_spotify_core(lua_State *L);

static lua_State *fuzz_L;

static lua_State *fuzz_lua(void) {
  if (fuzz_L) return fuzz_L;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, SPOTIFY_ROOT "/lua/?.lua;" SPOTIFY_ROOT "/lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_spotify_core);
  lua_setfield(L, -2, "spotify.core");
  lua_pop(L, 2);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "spotify.core");
  if (lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "cannot load spotify.core: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setglobal(L, "core");
  fuzz_L = L;
  return L;
}

/* Call the global Lua function `name` defined by fuzz_define with the
 * arguments already pushed; a Lua error is a crash (none of the parsers
 * may raise on any input). Leaves `nres` results on the stack. */
static void fuzz_call(lua_State *L, int nargs, int nres) {
  if (lua_pcall(L, nargs, nres, 0) != 0) {
    fprintf(stderr, "raised: %s\n", lua_tostring(L, -1));
    abort();
  }
}

/* Run a target's Lua file once; it defines the global check(data) and sees
 * `core` as a global. */
static void fuzz_load_script(const char *path) {
  lua_State *L = fuzz_lua();
  if (luaL_dofile(L, path) != 0) {
    fprintf(stderr, "cannot load %s: %s\n", path, lua_tostring(L, -1));
    abort();
  }
}

/* Run the Lua function `fn` on the input as one string. */
static void fuzz_check(const char *fn, const uint8_t *data, size_t size) {
  lua_State *L = fuzz_lua();
  lua_getglobal(L, fn);
  lua_pushlstring(L, (const char *)data, size);
  fuzz_call(L, 1, 0);
}

#endif
