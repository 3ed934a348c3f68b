/* Token state, the token endpoint's answers and the cache entry format. */
#include "token.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "digest.h"
#include "spotify.h"

#define MAX_TOKEN_LEN 4096

int spotify_token_fresh(const spotify_token *t, double refresh_buffer, double now) {
  if (t->none) return 1; /* the gateway holds the token, never its client */
  if (t->auth == NULL) return 0;
  return t->fixed || now < t->expires_at - refresh_buffer;
}

int spotify_token_adopt(spotify_token *t, const char *value, size_t len, double expires_at) {
  char *v = malloc(len + 1), *auth = malloc(len + sizeof "Bearer ");
  if (v == NULL || auth == NULL) {
    free(v);
    free(auth);
    return -1;
  }
  memcpy(v, value, len);
  v[len] = '\0';
  memcpy(auth, "Bearer ", 7);
  memcpy(auth + 7, value, len + 1);
  free(t->value);
  free(t->auth);
  free(t->scope);
  t->scope = NULL;
  t->value = v;
  t->auth = auth;
  t->expires_at = expires_at;
  t->serial++;
  return 0;
}

void spotify_token_refuse(spotify_token *t, unsigned serial) {
  if (t->fixed || t->auth == NULL || t->serial != serial) return;
  free(t->refused);
  t->refused = t->value;
  t->refused_expires_at = t->expires_at;
  free(t->auth);
  t->value = t->auth = NULL;
  t->expires_at = 0;
}

int spotify_token_acceptable(const spotify_token *t, const char *value, double expires_at,
                             double refresh_buffer, double now) {
  if (t->refused && strcmp(value, t->refused) == 0) return 0;
  if (!(now < expires_at - refresh_buffer)) return 0;
  /* After a 401, a token issued before the refused one (another process's
   * older token) is likely refused too: only a later one is taken. */
  return !(t->refused && expires_at <= t->refused_expires_at);
}

void spotify_token_release(spotify_token *t) {
  free(t->value);
  free(t->auth);
  free(t->refused);
  free(t->scope);
  spotify_error_clear(&t->failure);
  memset(t, 0, sizeof *t);
}

const char *spotify_token_scope(spotify_token *t) {
  if (!t->fixed || t->value == NULL) return NULL;
  if (t->scope == NULL) {
    static const char tag[] = "lua-spotify answers"; /* this digest is no other key's */
    char hex[SPOTIFY_DIGEST_HEX];
    spotify_sha256 s;
    spotify_sha256_init(&s);
    spotify_sha256_update(&s, tag, sizeof tag);
    spotify_sha256_update(&s, t->value, strlen(t->value));
    spotify_sha256_hex(&s, hex);
    t->scope = strdup(hex);
  }
  return t->scope;
}

/* A token goes into a header line: only visible ASCII, so a hostile
 * endpoint cannot smuggle a header break into our requests. */
static int token_is_safe(const char *s, size_t len) {
  if (len == 0 || len > MAX_TOKEN_LEN) return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= 32 || (unsigned char)s[i] >= 127) return 0;
  return 1;
}

const char *spotify_token_parse(lua_State *L, const char *body, size_t len, double *expires_in) {
  int top = lua_gettop(L);
  const char *why = NULL;
  if (spotify_json_decode(L, body, len) != 1 || !lua_istable(L, -1)) {
    why = "token endpoint answered with something that is not a JSON object";
    goto out;
  }
  lua_getfield(L, top + 1, "token_type");
  if (!lua_isnil(L, -1) &&
      (lua_type(L, -1) != LUA_TSTRING || strcasecmp(lua_tostring(L, -1), "bearer") != 0)) {
    why = "token endpoint answered with a token type other than Bearer";
    goto out;
  }
  lua_getfield(L, top + 1, "expires_in");
  double e = lua_tonumber(L, -1);
  /* An infinite lifetime would never be renewed nor fit any cache's TTL. */
  if (lua_type(L, -1) != LUA_TNUMBER || !(e > 0) || isinf(e)) {
    why = "token endpoint answered without a positive expires_in";
    goto out;
  }
  lua_getfield(L, top + 1, "access_token");
  size_t n;
  const char *tok = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  if (tok == NULL || !token_is_safe(tok, n)) {
    why = "token endpoint answered without a usable access_token";
    goto out;
  }
  *expires_in = e;
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return NULL;
out:
  lua_settop(L, top);
  return why;
}

char *spotify_token_entry(const char *value, double expires_at, size_t *len) {
  size_t n = strlen(value);
  char *s = malloc(2 * n + 80);
  if (s == NULL) return NULL;
  char *w = s + sprintf(s, "{\"access_token\":\"");
  for (size_t i = 0; i < n; i++) { /* safe tokens: only " and \ need escaping */
    if (value[i] == '"' || value[i] == '\\') *w++ = '\\';
    *w++ = value[i];
  }
  w += sprintf(w, "\",\"expires_at\":%.17g}", expires_at);
  *len = (size_t)(w - s);
  return s;
}

int spotify_token_entry_parse(lua_State *L, const char *s, size_t len, double *expires_at) {
  int top = lua_gettop(L);
  if (spotify_json_decode(L, s, len) != 1 || !lua_istable(L, -1)) goto out;
  lua_getfield(L, top + 1, "expires_at");
  if (lua_type(L, -1) != LUA_TNUMBER) goto out;
  *expires_at = lua_tonumber(L, -1);
  lua_getfield(L, top + 1, "access_token");
  size_t n;
  if (lua_type(L, -1) != LUA_TSTRING) goto out;
  const char *tok = lua_tolstring(L, -1, &n);
  if (!token_is_safe(tok, n)) goto out;
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 1;
out:
  lua_settop(L, top);
  return 0;
}

static void base64(char *out, const unsigned char *s, size_t len) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < len; i += 3) {
    unsigned v = (unsigned)s[i] << 16;
    if (i + 1 < len) v |= (unsigned)s[i + 1] << 8;
    if (i + 2 < len) v |= s[i + 2];
    *out++ = tbl[(v >> 18) & 63];
    *out++ = tbl[(v >> 12) & 63];
    *out++ = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
    *out++ = i + 2 < len ? tbl[v & 63] : '=';
  }
  *out = '\0';
}

char *spotify_basic_auth(const char *id, const char *secret) {
  size_t a = strlen(id), b = strlen(secret), n = a + 1 + b;
  char *plain = malloc(n + 1), *out = malloc(sizeof "Basic " + 4 * (n / 3 + 1));
  if (plain == NULL || out == NULL) {
    free(plain);
    free(out);
    return NULL;
  }
  sprintf(plain, "%s:%s", id, secret);
  memcpy(out, "Basic ", 6);
  base64(out + 6, (const unsigned char *)plain, n);
  memset(plain, 0, n); /* the secret does not linger in freed memory */
  free(plain);
  return out;
}

/* core.basic_auth(id, secret) -> "Basic base64(id:secret)" */
static int l_basic_auth(lua_State *L) {
  const char *id = luaL_checkstring(L, 1), *secret = luaL_checkstring(L, 2);
  void **slot = spotify_scratch(L);
  *slot = spotify_basic_auth(id, secret);
  if (*slot == NULL) return luaL_error(L, "spotify: out of memory");
  lua_pushstring(L, *slot);
  return 1;
}

/* core.parse_token(body) -> access_token, expires_in | nil, message */
static int l_parse_token(lua_State *L) {
  size_t len;
  const char *body = luaL_checklstring(L, 1, &len);
  double expires_in;
  const char *why = spotify_token_parse(L, body, len, &expires_in);
  if (why) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  lua_pushnumber(L, expires_in);
  return 2;
}

void spotify_open_token(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"basic_auth", l_basic_auth}, {"parse_token", l_parse_token}, {NULL, NULL}};
  spotify_setfuncs(L, fns);
}
