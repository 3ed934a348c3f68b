/* The floor for a C binding on one interpreter: what a careful C programmer
 * writes to GET JSON through libcurl for Lua, and nothing more. One reused
 * easy handle (a multi handle with reused easy handles for concurrency),
 * bodies gathered into one growing buffer per handle and handed to Lua as a
 * string. No retries, no token renewal, no error objects: bench/floor.lua
 * decodes with cjson, so a row of this module against this floor on the
 * same interpreter has the interpreter's own cost on both sides.
 *
 * Built per interpreter by bench/run.sh; never part of the module. */
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_IN_FLIGHT 64

#if LUA_VERSION_NUM >= 502
#define lua_objlen lua_rawlen
#endif

typedef struct {
  char *data;
  size_t len, cap;
} body;

typedef struct {
  CURL *easy[MAX_IN_FLIGHT];
  body bodies[MAX_IN_FLIGHT];
  CURLM *multi;
  struct curl_slist *headers;
  long connections;
} session;

static size_t on_write(char *data, size_t size, size_t n, void *ud) {
  body *b = ud;
  size_t len = size * n;
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 256 * 1024;
    while (b->len + len > cap) cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) return 0;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return len;
}

/* FLOOR_OPTS=a,b,...: also set these of the module's libcurl options
 * (src/http.c), to measure what each costs a request; unset, none. */
static size_t on_header(char *line, size_t size, size_t n, void *ud) {
  (void)line;
  (void)ud;
  return size * n;
}

static int wanted(const char *name) {
  const char *v = getenv("FLOOR_OPTS");
  size_t n = strlen(name);
  for (const char *p = v; p && (p = strstr(p, name)) != NULL; p += n)
    if ((p == v || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
  return 0;
}

static void module_options(CURL *e) {
  static char errbuf[CURL_ERROR_SIZE];
  static CURLSH *share;
  if (wanted("header")) curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  if (wanted("errorbuffer")) curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  if (wanted("share")) {
    if (share == NULL) {
      share = curl_share_init();
      curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
      curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
      curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    }
    curl_easy_setopt(e, CURLOPT_SHARE, share);
  }
  if (wanted("timeout")) {
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  }
  if (wanted("protocols")) curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (wanted("encoding")) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  if (wanted("gzip")) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
  if (wanted("keepalive")) curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  if (wanted("maxfilesize")) curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)16 << 20);
  if (wanted("useragent")) curl_easy_setopt(e, CURLOPT_USERAGENT, "lua-spotify/0.1.0");
  if (wanted("proxy")) curl_easy_setopt(e, CURLOPT_PROXY, "");
}

static CURL *new_easy(body *b, struct curl_slist *headers, const char *ca_file) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  if (ca_file && *ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  module_options(e);
  return e;
}

/* Status check and connection count after a transfer; pushes the body. */
static void finish(lua_State *L, session *s, int slot) {
  long status = 0, connects = 0;
  curl_easy_getinfo(s->easy[slot], CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(s->easy[slot], CURLINFO_NUM_CONNECTS, &connects);
  s->connections += connects;
  body *b = &s->bodies[slot];
  size_t len = b->len;
  b->len = 0;
  if (status != 200) luaL_error(L, "floor: HTTP %d", (int)status);
  lua_pushlstring(L, b->data, len);
}

static session *check_session(lua_State *L) { return luaL_checkudata(L, 1, "bench.floor"); }

static int session_gc(lua_State *L) {
  session *s = check_session(L);
  for (int i = 0; i < MAX_IN_FLIGHT; i++) {
    if (s->easy[i]) curl_easy_cleanup(s->easy[i]);
    free(s->bodies[i].data);
    s->easy[i] = NULL;
    s->bodies[i].data = NULL;
  }
  if (s->multi) curl_multi_cleanup(s->multi);
  s->multi = NULL;
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  return 0;
}

/* floor.session(authorization_header, ca_file) */
static int l_session(lua_State *L) {
  const char *auth = luaL_checkstring(L, 1);
  const char *ca_file = luaL_optstring(L, 2, NULL);
  session *s = lua_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_getmetatable(L, "bench.floor");
  lua_setmetatable(L, -2);
  s->headers = curl_slist_append(curl_slist_append(NULL, "Accept: application/json"), auth);
  for (int i = 0; i < MAX_IN_FLIGHT; i++) s->easy[i] = new_easy(&s->bodies[i], s->headers, ca_file);
  s->multi = curl_multi_init();
  curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  return 1;
}

/* s:get(url [, post_body]) -> body */
static int l_get(lua_State *L) {
  session *s = check_session(L);
  CURL *e = s->easy[0];
  curl_easy_setopt(e, CURLOPT_URL, luaL_checkstring(L, 2));
  if (lua_isstring(L, 3)) curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, lua_tostring(L, 3));
  else curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) return luaL_error(L, "floor: %s", curl_easy_strerror(rc));
  finish(L, s, 0);
  return 1;
}

static int slot_of(session *s, CURL *e) {
  for (int i = 0; i < MAX_IN_FLIGHT; i++)
    if (s->easy[i] == e) return i;
  return -1;
}

/* s:get_many(urls, in_flight) -> bodies in the order of urls */
static int l_get_many(lua_State *L) {
  session *s = check_session(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  int count = (int)lua_objlen(L, 2);
  int in_flight = (int)luaL_checkinteger(L, 3);
  if (in_flight < 1 || in_flight > MAX_IN_FLIGHT) return luaL_error(L, "floor: in_flight out of range");
  int index_of[MAX_IN_FLIGHT];
  int started = 0, done = 0;
  lua_createtable(L, count, 0);
  for (; started < count && started < in_flight; started++) {
    lua_rawgeti(L, 2, started + 1);
    curl_easy_setopt(s->easy[started], CURLOPT_URL, lua_tostring(L, -1));
    lua_pop(L, 1);
    index_of[started] = started + 1;
    curl_multi_add_handle(s->multi, s->easy[started]);
  }
  while (done < count) {
    int running, left;
    curl_multi_perform(s->multi, &running);
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *e = msg->easy_handle;
      int slot = slot_of(s, e);
      if (msg->data.result != CURLE_OK) return luaL_error(L, "floor: %s", curl_easy_strerror(msg->data.result));
      curl_multi_remove_handle(s->multi, e);
      finish(L, s, slot);
      lua_rawseti(L, -2, index_of[slot]);
      done++;
      if (started < count) {
        lua_rawgeti(L, 2, ++started);
        curl_easy_setopt(e, CURLOPT_URL, lua_tostring(L, -1));
        lua_pop(L, 1);
        index_of[slot] = started;
        curl_multi_add_handle(s->multi, e);
      }
    }
    if (done < count) curl_multi_poll(s->multi, NULL, 0, 1000, NULL);
  }
  return 1;
}

static int l_connections(lua_State *L) {
  lua_pushnumber(L, (lua_Number)check_session(L)->connections);
  return 1;
}

/* Monotonic seconds, for wall time on interpreters without an FFI. */
static int l_wall(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

int luaopen_floor(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"get", l_get}, {"get_many", l_get_many}, {"connections", l_connections}, {"__gc", session_gc}, {NULL, NULL}};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  luaL_newmetatable(L, "bench.floor");
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  for (const luaL_Reg *m = methods; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_session);
  lua_setfield(L, -2, "session");
  lua_pushcfunction(L, l_wall);
  lua_setfield(L, -2, "wall");
  return 1;
}
