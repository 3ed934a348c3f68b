/* The token endpoint's side of the client-credentials flow: the Basic
 * header and the checks on what the endpoint hands back. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "spotify.h"

#define MAX_TOKEN_LEN 4096

static void add_base64(luaL_Buffer *b, const unsigned char *s, size_t len) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < len; i += 3) {
    unsigned v = (unsigned)s[i] << 16;
    if (i + 1 < len) v |= (unsigned)s[i + 1] << 8;
    if (i + 2 < len) v |= s[i + 2];
    luaL_addchar(b, tbl[(v >> 18) & 63]);
    luaL_addchar(b, tbl[(v >> 12) & 63]);
    luaL_addchar(b, i + 1 < len ? tbl[(v >> 6) & 63] : '=');
    luaL_addchar(b, i + 2 < len ? tbl[v & 63] : '=');
  }
}

/* core.basic_auth(id, secret) -> "Basic base64(id:secret)" */
static int l_basic_auth(lua_State *L) {
  luaL_checkstring(L, 1);
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_pushliteral(L, ":");
  lua_insert(L, 2);
  lua_concat(L, 3);
  size_t len;
  const unsigned char *s = (const unsigned char *)lua_tolstring(L, 1, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "Basic ");
  add_base64(&b, s, len);
  luaL_pushresult(&b);
  return 1;
}

/* A token goes into a header line: only visible ASCII, so a hostile
 * endpoint cannot smuggle a header break into our requests. */
static int token_is_safe(const char *s, size_t len) {
  if (len == 0 || len > MAX_TOKEN_LEN) return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= 32 || (unsigned char)s[i] >= 127) return 0;
  return 1;
}

static int fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* core.parse_token(body) -> access_token, expires_in | nil, message */
static int l_parse_token(lua_State *L) {
  size_t len;
  const char *body = luaL_checklstring(L, 1, &len);
  if (spotify_json_decode(L, body, len) != 1 || !lua_istable(L, -1))
    return fail(L, "token endpoint answered with something that is not a JSON object");
  int t = lua_gettop(L);
  lua_getfield(L, t, "token_type");
  if (!lua_isnil(L, -1) &&
      (lua_type(L, -1) != LUA_TSTRING || strcasecmp(lua_tostring(L, -1), "bearer") != 0))
    return fail(L, "token endpoint answered with a token type other than Bearer");
  lua_getfield(L, t, "expires_in");
  double expires_in = lua_tonumber(L, -1);
  /* An infinite lifetime would never be renewed nor fit any cache's TTL. */
  if (lua_type(L, -1) != LUA_TNUMBER || !(expires_in > 0) || isinf(expires_in))
    return fail(L, "token endpoint answered without a positive expires_in");
  lua_getfield(L, t, "access_token");
  const char *tok = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (tok == NULL || !token_is_safe(tok, len))
    return fail(L, "token endpoint answered without a usable access_token");
  lua_pushnumber(L, expires_in);
  return 2;
}

void spotify_open_token(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"basic_auth", l_basic_auth}, {"parse_token", l_parse_token}, {NULL, NULL}};
  spotify_setfuncs(L, fns);
}
