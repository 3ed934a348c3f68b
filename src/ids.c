/* Spotify IDs, URIs and open.spotify.com URLs; percent-encoding and query
 * strings. Everything that ends up in a request path or query passes here,
 * so a hostile ID can never add a path segment or a parameter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spotify.h"

#define MAX_ID_INPUT 512
#define BASE62_LEN 22

typedef int (*id_check)(const char *s, size_t len);

static int is_base62(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int check_base62(const char *s, size_t len) {
  if (len != BASE62_LEN) return 0;
  for (size_t i = 0; i < len; i++)
    if (!is_base62((unsigned char)s[i])) return 0;
  return 1;
}

/* User and category IDs are not base-62: allow the characters they use,
 * none of which has a meaning in a URL path. */
static int check_word(const char *s, size_t len, const char *extra, size_t max) {
  if (len == 0 || len > max) return 0;
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)s[i];
    if (!is_base62(c) && strchr(extra, c) == NULL) return 0;
  }
  return 1;
}

/* "." and ".." would be dot segments once in the path (/users/..). */
static int check_user(const char *s, size_t len) {
  if (len <= 2 && strspn(s, ".") >= len) return 0;
  return check_word(s, len, "._-", 128);
}

static int check_category(const char *s, size_t len) {
  return check_word(s, len, "_-", 64);
}

typedef struct id_kind {
  const char *name;
  id_check check;
} id_kind;

static const id_kind kinds[] = {
    {"track", check_base62},
    {"album", check_base62},
    {"artist", check_base62},
    {"playlist", check_base62},
    {"show", check_base62},
    {"episode", check_base62},
    {"audiobook", check_base62},
    {"chapter", check_base62},
    {"user", check_user},
    {"category", check_category},
    {NULL, NULL},
};

static const id_kind *find_kind(const char *name) {
  for (const id_kind *k = kinds; k->name; k++)
    if (strcmp(k->name, name) == 0) return k;
  return NULL;
}

static int starts_with(const char *s, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(s, prefix, n) == 0;
}

/* Match "<kind>:" or "<kind>/" at s; return bytes consumed or 0. */
static size_t match_kind(const char *s, size_t len, const char *kind, char sep) {
  size_t n = strlen(kind);
  if (len > n && memcmp(s, kind, n) == 0 && s[n] == sep) return n + 1;
  return 0;
}

/* spotify:track:ID, or the old spotify:user:NAME:playlist:ID */
static int from_uri(const char *s, size_t len, const char *kind, const char **id, size_t *id_len) {
  const char *p = s + 8;
  size_t rest = len - 8, n;
  if (strcmp(kind, "playlist") == 0 && (n = match_kind(p, rest, "user", ':'))) {
    const char *colon = memchr(p + n, ':', rest - n);
    if (colon == NULL) return 0;
    rest -= (size_t)(colon + 1 - p);
    p = colon + 1;
  }
  if ((n = match_kind(p, rest, kind, ':')) == 0) return 0;
  *id = p + n;
  *id_len = rest - n;
  return 1;
}

/* https://open.spotify.com[/intl-xx][/embed]/track/ID[?...|#...] */
static int from_url(const char *s, size_t len, const char *kind, const char **id, size_t *id_len) {
  static const char *hosts[] = {"https://open.spotify.com/", "http://open.spotify.com/",
                                "https://play.spotify.com/", NULL};
  const char *p = NULL;
  for (int i = 0; hosts[i]; i++)
    if (starts_with(s, len, hosts[i])) p = s + strlen(hosts[i]);
  if (p == NULL) return 0;
  size_t rest = len - (size_t)(p - s), n;
  if (starts_with(p, rest, "intl-")) {
    const char *slash = memchr(p, '/', rest);
    if (slash == NULL || slash - p > 12) return 0;
    rest -= (size_t)(slash + 1 - p);
    p = slash + 1;
  }
  if ((n = match_kind(p, rest, "embed", '/'))) p += n, rest -= n;
  if ((n = match_kind(p, rest, kind, '/')) == 0) return 0;
  p += n;
  rest -= n;
  size_t end = 0;
  while (end < rest && p[end] != '?' && p[end] != '#') end++;
  *id = p;
  *id_len = end;
  return 1;
}

static void push_invalid(lua_State *L, const char *kind, const char *s, size_t len) {
  lua_pushnil(L);
  lua_pushlstring(L, s, len > 64 ? 64 : len);
  lua_pushfstring(L, "invalid %s id: '%s%s'", kind, lua_tostring(L, -1), len > 64 ? "..." : "");
  lua_remove(L, -2);
}

/* The ID in the string at index i, or 0 with the message pushed. */
static int parse_at(lua_State *L, int i, const char *kind_name, const id_kind *kind,
                    const char **id, size_t *id_len) {
  if (lua_type(L, i) != LUA_TSTRING) {
    lua_pushfstring(L, "%s id must be a string, got %s", kind_name, luaL_typename(L, i));
    return 0;
  }
  size_t len;
  const char *s = lua_tolstring(L, i, &len);
  *id = s, *id_len = len;
  int ok = len <= MAX_ID_INPUT && strlen(s) == len; /* no embedded NUL */
  if (ok && starts_with(s, len, "spotify:"))
    ok = from_uri(s, len, kind_name, id, id_len);
  else if (ok && memchr(s, '/', len) != NULL)
    ok = from_url(s, len, kind_name, id, id_len);
  if (!ok || !kind->check(*id, *id_len)) {
    push_invalid(L, kind_name, s, len);
    lua_remove(L, -2); /* push_invalid's nil */
    return 0;
  }
  return 1;
}

static const id_kind *check_kind(lua_State *L, int i) {
  const id_kind *kind = find_kind(luaL_checkstring(L, i));
  if (kind == NULL) luaL_argerror(L, i, "unknown id kind");
  return kind;
}

/* core.parse_id(input, kind) -> id | nil, message */
static int l_parse_id(lua_State *L) {
  const char *kind_name = luaL_checkstring(L, 2), *id;
  const id_kind *kind = check_kind(L, 2);
  size_t id_len;
  if (!parse_at(L, 1, kind_name, kind, &id, &id_len)) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (id == lua_tostring(L, 1) && id_len == spotify_rawlen(L, 1))
    lua_pushvalue(L, 1);
  else
    lua_pushlstring(L, id, id_len);
  return 1;
}

/* core.parse_ids(list, kind[, before, after]) -> ids, urls | nil, message:
 * every input of a plural call at once; with `before`, urls[i] is
 * before .. ids[i] .. after (its single lookup's URL). */
static int l_parse_ids(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *kind_name = luaL_checkstring(L, 2);
  const id_kind *kind = check_kind(L, 2);
  int with_urls = !lua_isnoneornil(L, 3);
  size_t before_len = 0, after_len = 0;
  const char *before = with_urls ? luaL_checklstring(L, 3, &before_len) : NULL;
  const char *after = with_urls ? luaL_optlstring(L, 4, "", &after_len) : NULL;
  int n = (int)spotify_rawlen(L, 1);
  lua_settop(L, 4);
  lua_createtable(L, n, 0);                 /* 5: ids */
  lua_createtable(L, with_urls ? n : 0, 0); /* 6: urls */
  for (int i = 1; i <= n; i++) {
    const char *id;
    size_t id_len;
    lua_rawgeti(L, 1, i);
    if (!parse_at(L, 7, kind_name, kind, &id, &id_len)) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s (at position %d)", lua_tostring(L, -2), i);
      return 2;
    }
    lua_pushlstring(L, id, id_len);
    lua_rawseti(L, 5, i);
    if (with_urls) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      luaL_addlstring(&b, before, before_len);
      luaL_addlstring(&b, id, id_len);
      luaL_addlstring(&b, after, after_len);
      luaL_pushresult(&b);
      lua_rawseti(L, 6, i);
    }
    lua_pop(L, 1);
  }
  return 2;
}

static const char hexdigits[] = "0123456789ABCDEF";

static int unreserved(int c) {
  return is_base62(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void add_encoded(luaL_Buffer *b, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      luaL_addchar(b, (char)c);
    } else {
      luaL_addchar(b, '%');
      luaL_addchar(b, hexdigits[c >> 4]);
      luaL_addchar(b, hexdigits[c & 15]);
    }
  }
}

/* core.urlencode(s) -> RFC 3986 percent-encoded s */
static int l_urlencode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  add_encoded(&b, s, len);
  luaL_pushresult(&b);
  return 1;
}

/* Replace the string at the top of the stack by its percent-encoding.
 * No luaL_Buffer here: the caller holds one open. */
static void encode_top(lua_State *L) {
  size_t len, n = 0;
  const char *s = lua_tolstring(L, -1, &len);
  for (size_t i = 0; i < len; i++) n += unreserved((unsigned char)s[i]) ? 1 : 3;
  if (n == len) return;
  char *out = lua_newuserdata(L, n);
  char *o = out;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hexdigits[c >> 4];
      *o++ = hexdigits[c & 15];
    }
  }
  lua_pushlstring(L, out, n);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* Replace the scalar at the top by its encoded text; 0 if not a scalar.
 * Integers print without a fraction on every Lua version. */
static int encode_scalar(lua_State *L) {
  char num[64];
  switch (lua_type(L, -1)) {
    case LUA_TSTRING:
      break;
    case LUA_TNUMBER: {
      double d = lua_tonumber(L, -1);
      if (d != d || isinf(d)) return 0;
      if (d == floor(d) && fabs(d) < 9007199254740992.0)
        snprintf(num, sizeof num, "%.0f", d);
      else
        snprintf(num, sizeof num, "%.14g", d);
      lua_pop(L, 1);
      lua_pushstring(L, num);
      break;
    }
    case LUA_TBOOLEAN: {
      int v = lua_toboolean(L, -1);
      lua_pop(L, 1);
      lua_pushstring(L, v ? "true" : "false");
      break;
    }
    default:
      return 0;
  }
  encode_top(L);
  return 1;
}

/* Replace the value at the top (scalar or list of scalars) by its encoded
 * text, list items joined with commas; 0 if the value has no such form. */
static int encode_value(lua_State *L) {
  if (lua_type(L, -1) != LUA_TTABLE) return encode_scalar(L);
  int list = lua_gettop(L), n = (int)spotify_rawlen(L, list);
  if (n == 0) return 0;
  for (int i = 1; i <= n; i++) {
    if (i > 1) lua_pushliteral(L, ",");
    lua_rawgeti(L, list, i);
    if (!encode_scalar(L)) return 0;
    if (i > 1) lua_concat(L, 3);
  }
  lua_replace(L, list);
  return 1;
}

static int compare_keys(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define MAX_PARAMS 64

/* core.query(tbl) -> "a=1&b=x,y" (keys sorted, lists comma-joined, values
 * percent-encoded) | nil, message naming the bad key */
static int l_query(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *keys[MAX_PARAMS];
  int n = 0;
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    size_t key_len = 0;
    /* A name with a NUL would be cut short below and could collide. */
    if (lua_type(L, -1) != LUA_TSTRING || strlen(lua_tolstring(L, -1, &key_len)) != key_len ||
        n == MAX_PARAMS) {
      lua_pushnil(L);
      lua_pushstring(L, n == MAX_PARAMS ? "too many query parameters"
                                        : "query parameter names must be strings");
      return 2;
    }
    keys[n++] = lua_tostring(L, -1); /* kept alive by the table */
  }
  qsort(keys, (size_t)n, sizeof keys[0], compare_keys);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; i < n; i++) {
    if (i > 0) luaL_addchar(&b, '&');
    add_encoded(&b, keys[i], strlen(keys[i]));
    luaL_addchar(&b, '=');
    lua_getfield(L, 1, keys[i]);
    if (!encode_value(L)) {
      lua_pushnil(L);
      lua_pushfstring(L,
                      "query parameter '%s' must be a string, number, "
                      "boolean or non-empty list of those",
                      keys[i]);
      return 2;
    }
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  return 1;
}

void spotify_open_ids(lua_State *L) {
  static const luaL_Reg fns[] = {{"parse_id", l_parse_id},
                                 {"parse_ids", l_parse_ids},
                                 {"urlencode", l_urlencode},
                                 {"query", l_query},
                                 {NULL, NULL}};
  spotify_setfuncs(L, fns);
}
