/* The one error type: construction, Spotify's message, __tostring. */
#include "errors.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spotify.h"

void spotify_error_clear(spotify_error *e) {
  free(e->message);
  free(e->reason);
  e->message = e->reason = NULL;
  e->kind = NULL;
  e->status = 0;
  e->retry_after = -1;
  e->at_token = 0;
}

void spotify_error_set(spotify_error *e, const char *kind, long status, const char *message,
                       double retry_after) {
  char *copy = message ? strdup(message) : NULL; /* NULL on OOM: plain text later */
  spotify_error_clear(e);
  e->kind = kind;
  e->status = status;
  e->message = copy;
  e->retry_after = retry_after;
}

void spotify_error_closed(spotify_error *e) {
  spotify_error_set(e, "closed", 0, NULL, -1); /* the plain text: "client is closed" */
}

int spotify_push_closed(lua_State *L) {
  spotify_error e = {NULL, 0, NULL, -1, 0, NULL};
  spotify_error_closed(&e);
  lua_pushnil(L);
  spotify_push_error(L, &e, NULL, NULL);
  spotify_error_clear(&e);
  return 2;
}

void spotify_error_copy(spotify_error *dst, const spotify_error *src) {
  spotify_error_set(dst, src->kind, src->status, src->message, src->retry_after);
  spotify_error_set_reason(dst, src->reason);
  dst->at_token = src->at_token;
}

void spotify_error_set_message(spotify_error *e, const char *message) {
  char *copy = message ? strdup(message) : NULL; /* NULL on OOM: plain text later */
  free(e->message);
  e->message = copy;
}

void spotify_error_set_reason(spotify_error *e, const char *reason) {
  free(e->reason);
  e->reason = reason ? strdup(reason) : NULL; /* NULL on OOM: no reason */
}

typedef struct plain_text {
  const char *kind, *text;
} plain_text;

static const plain_text plain[] = {
    {"auth", "credentials or token refused"},
    {"forbidden", "forbidden"},
    {"not_found", "not found"},
    {"bad_request", "bad request"},
    {"rate_limited", "rate limited"},
    {"server", "server error"},
    {"closed", "client is closed"},
    {NULL, "error"},
};

static const char *plain_for(const char *kind) {
  const plain_text *p = plain;
  while (p->kind && strcmp(p->kind, kind) != 0) p++;
  return p->text;
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

/* Pushes the message of an error body, or nothing; returns how many. */
static int body_message(lua_State *L, const char *body, size_t len) {
  int top = lua_gettop(L);
  if (len == 0 || spotify_json_decode(L, body, len) != 1 || !lua_istable(L, -1) ||
      !push_body_message(L, top + 1) || spotify_rawlen(L, -1) == 0) {
    lua_settop(L, top);
    return 0;
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 1;
}

/* Pushes the API's {"error":{"reason"}} of an error body (a short word such
 * as "QUOTA_EXCEEDED" or "PREMIUM_REQUIRED"), or nothing; returns how many. */
static int body_reason(lua_State *L, const char *body, size_t len) {
  int top = lua_gettop(L);
  if (len == 0 || spotify_json_decode(L, body, len) != 1 || !lua_istable(L, -1)) {
    lua_settop(L, top);
    return 0;
  }
  lua_getfield(L, -1, "error");
  /* Only the API's {"error": {"reason": ...}}: the token endpoint's
   * {"error": "invalid_client"} is a code, not a reason. */
  if (!lua_istable(L, -1)) {
    lua_settop(L, top);
    return 0;
  }
  lua_getfield(L, -1, "reason");
  size_t n = 0;
  if (lua_type(L, -1) != LUA_TSTRING || (lua_tolstring(L, -1, &n), n == 0 || n > 64)) {
    lua_settop(L, top);
    return 0;
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 1;
}

void spotify_error_from_response(lua_State *L, spotify_error *e, const char *kind, long status,
                                 const char *body, size_t len, double retry_after) {
  char fallback[96];
  const char *message = fallback;
  int pushed = body_message(L, body, len);
  if (pushed)
    message = lua_tostring(L, -1);
  else
    snprintf(fallback, sizeof fallback, "%s (HTTP %ld)", plain_for(kind), status);
  spotify_error_set(e, kind, status, message, retry_after);
  lua_pop(L, pushed);
  pushed = body_reason(L, body, len);
  spotify_error_set_reason(e, pushed ? lua_tostring(L, -1) : NULL);
  lua_pop(L, pushed);
}

void spotify_push_error(lua_State *L, const spotify_error *e, const char *method, const char *url) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, e->kind ? e->kind : "network");
  lua_setfield(L, -2, "kind");
  if (e->status > 0) {
    lua_pushinteger(L, (lua_Integer)e->status);
    lua_setfield(L, -2, "status");
  }
  lua_pushstring(L, e->message ? e->message : plain_for(e->kind ? e->kind : ""));
  lua_setfield(L, -2, "message");
  if (e->retry_after >= 0) {
    lua_pushnumber(L, e->retry_after);
    lua_setfield(L, -2, "retry_after");
  }
  if (e->reason) {
    lua_pushstring(L, e->reason);
    lua_setfield(L, -2, "reason");
  }
  if (method) {
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
  }
  if (url) {
    lua_pushstring(L, url);
    lua_setfield(L, -2, "url");
  }
  luaL_getmetatable(L, SPOTIFY_ERROR_MT);
  lua_setmetatable(L, -2);
}

static int field_is_text(lua_State *L, const char *name) {
  lua_getfield(L, 1, name);
  int t = lua_type(L, -1);
  lua_pop(L, 1);
  return t == LUA_TSTRING || t == LUA_TNUMBER;
}

/* A number the same way on every interpreter (Lua 5.3+ would print a
 * float such as a Retry-After of 600 as "600.0"): whole numbers without a
 * fraction, others to the millisecond without trailing zeros (a penalty's
 * time left reads "2.5", not "2.49979972839"), huge ones as "%.14g". */
static void append_number(luaL_Buffer *b, lua_Number v) {
  char text[64];
  double d = (double)v;
  if (!(d > -1e15 && d < 1e15)) {
    snprintf(text, sizeof text, "%.14g", d);
  } else {
    snprintf(text, sizeof text, "%.3f", d);
    char *end = text + strlen(text);
    while (end[-1] == '0') *--end = '\0';
    if (end[-1] == '.') *--end = '\0';
    if (strcmp(text, "-0") == 0) strcpy(text, "0");
  }
  luaL_addstring(b, text);
}

/* Nothing may sit above the buffer while it grows: a number is read and
 * popped before it is added, a string goes in through luaL_addvalue, which
 * pops it. */
static void append_field(luaL_Buffer *b, lua_State *L, const char *name, const char *before,
                         const char *after) {
  if (!field_is_text(L, name)) return;
  luaL_addstring(b, before);
  lua_getfield(L, 1, name);
  if (lua_type(L, -1) == LUA_TNUMBER) {
    lua_Number v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    append_number(b, v);
  } else {
    luaL_addvalue(b);
  }
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

/* Push s with every occurrence of needle replaced by "<token>". */
static void push_replaced(lua_State *L, const char *s, const char *needle) {
  luaL_Buffer b;
  size_t n = strlen(needle);
  luaL_buffinit(L, &b);
  const char *hit;
  while (n > 0 && (hit = strstr(s, needle)) != NULL) {
    luaL_addlstring(&b, s, (size_t)(hit - s));
    luaL_addstring(&b, "<token>");
    s = hit + n;
  }
  luaL_addstring(&b, s);
  luaL_pushresult(&b);
}

/* The forms a secret takes in foreign text: JSON-escaped or not (with "/"
 * as is and as "\/", lua-cjson's way), then percent-encoded or not (upper-
 * or lower-case hex): a cache may quote its JSON entry URL-encoded. */
enum { JSON_NONE, JSON_PLAIN, JSON_SLASH, JSON_FORMS };
enum { URL_NONE, URL_UPPER, URL_LOWER, URL_FORMS };

/* Writes into out, which has room for 2 * strlen(s) + 1. */
static void json_form(const char *s, int form, char *out) {
  for (; *s; s++) {
    if (form != JSON_NONE && (*s == '"' || *s == '\\' || (*s == '/' && form == JSON_SLASH)))
      *out++ = '\\';
    *out++ = *s;
  }
  *out = '\0';
}

/* Writes into out, which has room for 3 * strlen(s) + 1. */
static void url_form(const char *s, int form, char *out) {
  const char *hex = form == URL_LOWER ? "0123456789abcdef" : "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (form == URL_NONE || isalnum(ch) || strchr("-._~", ch)) {
      *out++ = (char)ch;
    } else {
      *out++ = '%';
      *out++ = hex[ch >> 4];
      *out++ = hex[ch & 15];
    }
  }
  *out = '\0';
}

void spotify_push_redacted(lua_State *L, const char *s, const char *secret) {
  size_t n = secret ? strlen(secret) : 0;
  /* userdata: collected even if a push raises */
  char *json = lua_newuserdata(L, 2 * n + 1 + 6 * n + 1), *form = json + 2 * n + 1;
  lua_pushstring(L, s);
  for (int j = 0; n > 0 && j < JSON_FORMS; j++) {
    json_form(secret, j, json);
    for (int u = 0; u < URL_FORMS; u++) {
      url_form(json, u, form);
      push_replaced(L, lua_tostring(L, -1), form);
      lua_remove(L, -2);
    }
  }
  lua_remove(L, -2);
}

/* core.error_message(body) -> message | nil */
static int l_error_message(lua_State *L) {
  size_t len;
  const char *body = luaL_optlstring(L, 1, "", &len);
  return body_message(L, body, len);
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
}
