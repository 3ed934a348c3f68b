/* The one error type and the HTTP status -> error kind table. */
#include <limits.h>
#include <string.h>

#include "spotify.h"

typedef struct status_rule {
  int lo, hi;       /* inclusive status range */
  const char *kind; /* error kind for the caller */
  int retry;        /* worth another attempt after backoff */
  int renew;        /* a new token may fix it */
} status_rule;

/* First match wins; the last row of each table catches the rest. */
static const status_rule api_rules[] = {
    {401, 401, "auth", 0, 1},
    {403, 403, "forbidden", 0, 0},
    {404, 404, "not_found", 0, 0},
    {429, 429, "rate_limited", 1, 0},
    {400, 499, "bad_request", 0, 0},
    {500, 599, "server", 1, 0},
    {INT_MIN, INT_MAX, "bad_request", 0, 0},
};

/* The accounts service answers refused credentials with 400/401 (flat OAuth
 * error objects); those are never retried. */
static const status_rule token_rules[] = {
    {400, 401, "auth", 0, 0},
    {403, 403, "auth", 0, 0},
    {429, 429, "rate_limited", 1, 0},
    {500, 599, "server", 1, 0},
    {INT_MIN, INT_MAX, "bad_request", 0, 0},
};

static const status_rule *find_rule(const status_rule *rules, int status) {
  while (!(status >= rules->lo && status <= rules->hi)) rules++;
  return rules;
}

/* core.classify(status, is_token) -> nil for 2xx, else kind, retry, renew */
static int l_classify(lua_State *L) {
  int status = (int)luaL_checkinteger(L, 1);
  int is_token = lua_toboolean(L, 2);
  if (status >= 200 && status < 300) return 0;
  const status_rule *r = find_rule(is_token ? token_rules : api_rules, status);
  lua_pushstring(L, r->kind);
  lua_pushboolean(L, r->retry);
  lua_pushboolean(L, r->renew);
  return 3;
}

static int field_is_text(lua_State *L, const char *name) {
  lua_getfield(L, 1, name);
  int t = lua_type(L, -1);
  lua_pop(L, 1);
  return t == LUA_TSTRING || t == LUA_TNUMBER;
}

/* Nothing may sit above the buffer while it grows, and a number's string
 * form lives only on the stack: the value goes in through luaL_addvalue,
 * which pops it. */
static void append_field(luaL_Buffer *b, lua_State *L, const char *name, const char *before,
                         const char *after) {
  if (!field_is_text(L, name)) return;
  luaL_addstring(b, before);
  lua_getfield(L, 1, name);
  luaL_addvalue(b);
  luaL_addstring(b, after);
}

/* "spotify: not_found (404): non existing id [GET https://...]" */
static int l_error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "spotify: ");
  if (field_is_text(L, "kind"))
    append_field(&b, L, "kind", "", "");
  else
    luaL_addstring(&b, "error");
  append_field(&b, L, "status", " (", ")");
  append_field(&b, L, "message", ": ", "");
  append_field(&b, L, "retry_after", " (retry after ", " s)");
  lua_getfield(L, 1, "method");
  int has_method = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (has_method) {
    append_field(&b, L, "method", " [", "");
    append_field(&b, L, "url", " ", "]");
  }
  luaL_pushresult(&b);
  return 1;
}

/* The message inside an error body: the API's {"error":{"message"}} or the
 * accounts service's flat {"error","error_description"}. */
static int push_body_message(lua_State *L, int t) {
  lua_getfield(L, t, "error");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "message");
    return lua_type(L, -1) == LUA_TSTRING;
  }
  if (lua_type(L, -1) != LUA_TSTRING) return 0;
  lua_getfield(L, t, "error_description");
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_pushliteral(L, ": ");
    lua_insert(L, -2);
    lua_concat(L, 3);
  } else {
    lua_pop(L, 1);
  }
  return 1;
}

/* core.error_message(body) -> message | nil */
static int l_error_message(lua_State *L) {
  size_t len;
  const char *body = luaL_optlstring(L, 1, "", &len);
  if (len == 0 || spotify_json_decode(L, body, len) != 1 || !lua_istable(L, -1)) return 0;
  return push_body_message(L, lua_gettop(L)) ? 1 : 0;
}

void spotify_open_errors(lua_State *L) {
  lua_pushcfunction(L, l_error_message);
  lua_setfield(L, -2, "error_message");
  luaL_newmetatable(L, SPOTIFY_ERROR_MT);
  lua_pushcfunction(L, l_error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, SPOTIFY_ERROR_MT);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "error_mt");
  lua_pushcfunction(L, l_classify);
  lua_setfield(L, -2, "classify");
}
