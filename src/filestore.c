/* The native file cache. The file itself holds one JSON object {key:
 * {value, expires} | {count, expires}}, read and written whole under its
 * flock: tokens, penalties and pacing, few and small. Answers (the
 * response cache's keys) are many and large: each gets a file of its own
 * in a directory beside it (path .. ".d", mode 0700), so storing one is a
 * write of its own size, however many are kept, and never puts the token
 * at risk. Names there are SHA-256 digests of the keys: none shows a URL
 * or a query. Every key's lock is a byte of one lock file there ("locks"),
 * so locking makes and removes no file. The file primitives: filecache.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_native.h"
#include "digest.h"
#include "filecache.h"
#include "spotify.h"

/* The response cache's store keys (SPOTIFY_ANSWER_PREFIX) get files of
 * their own. */
/* The directory beside the file. */
#define DIR_SUFFIX ".d"
/* The file is kept within this many bytes (entries are dropped to fit,
 * see encode_within_bound), so it can always be read back. */
#define FILE_BOUND (1024 * 1024)
/* Expired answers are swept from the directory on a cache object's first
 * write of one and then at most this often (seconds). */
#define PRUNE_EVERY 60.0
/* A temporary file older than this (seconds) was left by a writer that
 * died before its rename. */
#define TMP_AGE 600
/* An answer's file name: its key's digest in hex. */
#define HEX_DIGITS (SPOTIFY_DIGEST_HEX - 1)
/* The lock file in the directory: every key's lock, none of them a file. */
#define LOCKS_NAME "locks"

/* Entries the file never drops to fit its bound: what the machine keeps
 * there (client.c names them), small and few. */
static const char *const kept_prefixes[] = {"token:", "penalty:", "pace:", NULL};

typedef struct held_lock {
  char *key;
  int fd;       /* the lock file (a dup: the cache's may be opened again meanwhile) */
  long long at; /* the byte held */
} held_lock;

typedef struct file_cache {
  char *path; /* the file */
  char *dir;  /* the directory beside it */
  int dirfd;  /* ... open, once it was made (-1 before) */
  int locks;  /* the lock file in it, open (-1 before) */
  pid_t pid;  /* the process the fds and locks are of */
  held_lock *held;
  size_t nheld;
  double next_prune;                  /* wall time of the next sweep */
  int untrusted;                      /* an untrusted file or lock file was met */
  int told;                           /* ... and said so (once) */
  char why[SPOTIFY_FILE_ERRLEN + 16]; /* what was met */
} file_cache;

/* An untrusted file is a miss, never an error: remembered, to be said once. */
static void met_untrusted(file_cache *f, const char *why) {
  if (f->untrusted) return;
  f->untrusted = 1;
  snprintf(f->why, sizeof f->why, "file cache: %s", why);
}

/* Hand the note to the first answer after an untrusted file was met. */
static void tell(file_cache *f, spotify_cache_result *out) {
  if (!f->untrusted || f->told) return;
  out->note = strdup(f->why);
  f->told = out->note != NULL;
}

static int has_prefix(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The SHA-256 of key in hex: the name of its file in the directory. */
static void name_of(const char *key, char name[SPOTIFY_DIGEST_HEX]) {
  spotify_sha256 d;
  spotify_sha256_init(&d);
  spotify_sha256_update(&d, key, strlen(key));
  spotify_sha256_hex(&d, name);
}

/* The directory, made when missing and create is set: an fd that stays
 * the cache's, or -1 (said in err) or SPOTIFY_FILE_UNTRUSTED (noted). Once
 * open it is checked and opened once; opened again only when it was
 * removed meanwhile. */
static int open_dir(file_cache *f, int create, char *err) {
  struct stat st;
  if (f->dirfd >= 0 && fstat(f->dirfd, &st) == 0 && st.st_nlink > 0) return f->dirfd;
  if (f->dirfd >= 0) close(f->dirfd);
  f->dirfd = spotify_file_dir(f->dir, create, err);
  if (f->dirfd == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  int dir = f->dirfd;
  if (dir < 0) f->dirfd = -1;
  return dir;
}

/* The lock file, made when missing: an fd that stays the cache's, or -1
 * (said in err) or SPOTIFY_FILE_UNTRUSTED (noted). Each cache object opens
 * it for itself, so two objects, even in one process, are two holders. */
static int open_locks(file_cache *f, char *err) {
  struct stat st;
  if (f->locks >= 0 && fstat(f->locks, &st) == 0 && st.st_nlink > 0) return f->locks;
  if (f->locks >= 0) close(f->locks);
  f->locks = -1;
  int dir = open_dir(f, 1, err);
  if (dir < 0) return dir;
  int fd = spotify_file_open_lock(dir, LOCKS_NAME, err);
  if (fd == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  if (fd >= 0) f->locks = fd;
  return fd;
}

/* A process forked from the one that made the cache shares its open files
 * (and so its locks): it opens its own and forgets the locks it did not
 * take, leaving them to their holder. */
static void own_process(file_cache *f) {
  pid_t pid = getpid();
  if (f->pid == pid) return;
  f->pid = pid;
  for (size_t i = 0; i < f->nheld; i++) {
    close(f->held[i].fd);
    free(f->held[i].key);
  }
  f->nheld = 0;
  if (f->locks >= 0) close(f->locks);
  f->locks = -1;
}

/* ---- the file: one JSON object ---- */

/* The file's object at the top of the stack ({} when missing, corrupt or
 * untrusted). */
static void push_file_object(lua_State *L, file_cache *f) {
  char err[SPOTIFY_FILE_ERRLEN];
  void **slot = spotify_scratch(L);
  size_t len;
  int top = lua_gettop(L);
  int r = spotify_file_read(AT_FDCWD, f->path, (char **)slot, &len, err);
  if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  if (r == 0 && spotify_json_decode(L, *slot, len) == 1 && lua_istable(L, -1)) {
    lua_replace(L, top);
    return;
  }
  lua_settop(L, top - 1);
  lua_newtable(L);
}

/* A field of the entry table at the top of the stack. */
static int entry_field(lua_State *L, const char *name, int type) {
  lua_pushstring(L, name);
  lua_rawget(L, -2);
  if (lua_type(L, -1) == type) return 1;
  lua_pop(L, 1);
  return 0;
}

/* Drop from the object at t what has expired, anything malformed, and
 * answers (kept in the file by earlier versions: they have files of their
 * own now). */
static void drop_stale(lua_State *L, int t, double now) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int keep = lua_type(L, -2) == LUA_TSTRING &&
               !has_prefix(lua_tostring(L, -2), SPOTIFY_ANSWER_PREFIX) && lua_istable(L, -1) &&
               entry_field(L, "expires", LUA_TNUMBER);
    if (keep) {
      keep = lua_tonumber(L, -1) > now;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!keep) {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, t);
    }
  }
}

/* An entry that may be dropped to fit the bound. */
typedef struct candidate {
  double size; /* about what it takes in the file */
  int last;    /* the entry being written: dropped only when nothing else is left */
  int ref;     /* its key in the keys table */
} candidate;

static int drop_order(const void *a, const void *b) {
  const candidate *x = a, *y = b;
  if (x->last != y->last) return x->last - y->last;
  return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

static int kept(const char *key) {
  for (const char *const *p = kept_prefixes; *p; p++)
    if (has_prefix(key, *p)) return 1;
  return 0;
}

/* Push the object at t encoded. */
static size_t encode(lua_State *L, int t) {
  size_t len;
  spotify_json_push_encoder(L);
  lua_pushvalue(L, t);
  lua_call(L, 1, 1);
  lua_tolstring(L, -1, &len);
  return len;
}

/* Push the object at t encoded within FILE_BOUND: while it is over, the
 * largest entries go first, the kept ones never, the one being written
 * (key at index k) last. A file over the bound could not be read back,
 * and the next write would keep only itself. */
static void encode_within_bound(lua_State *L, int t, int k) {
  size_t len = encode(L, t);
  if (len <= FILE_BOUND) return;
  lua_pop(L, 1);
  size_t n = 0, i = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    n++;
    lua_pop(L, 1);
  }
  lua_newtable(L); /* keys */
  int keys = lua_gettop(L);
  candidate *c = lua_newuserdata(L, (n ? n : 1) * sizeof *c);
  n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) { /* every key is a string: the object came from JSON */
    size_t klen, vlen = 0;
    const char *key = lua_tolstring(L, -2, &klen);
    if (!kept(key)) {
      if (entry_field(L, "value", LUA_TSTRING)) {
        lua_tolstring(L, -1, &vlen);
        lua_pop(L, 1);
      }
      c[n].size = (double)(klen + vlen) + 48;
      c[n].last = lua_rawequal(L, -2, k);
      c[n].ref = (int)n + 1;
      lua_pushvalue(L, -2);
      lua_rawseti(L, keys, c[n].ref);
      n++;
    }
    lua_pop(L, 1);
  }
  qsort(c, n, sizeof *c, drop_order);
  double over = (double)len - FILE_BOUND;
  for (;;) {
    for (; i < n && over > 0; i++) {
      lua_rawgeti(L, keys, c[i].ref);
      lua_pushnil(L);
      lua_rawset(L, t);
      over -= c[i].size;
    }
    len = encode(L, t);
    if (len <= FILE_BOUND || i >= n) break;
    over = (double)len - FILE_BOUND;
    lua_pop(L, 1);
  }
  lua_replace(L, keys);
  lua_settop(L, keys);
}

/* file_merge(cache, key, value|nil, ttl, delta) -> encoded file, count:
 * the file's object without what has expired, plus the new entry, within
 * its bound. Runs under pcall while the caller holds the file's flock. */
static int file_merge(lua_State *L) {
  file_cache *f = lua_touserdata(L, 1);
  double now = spotify_wall_time(), ttl = lua_tonumber(L, 4);
  push_file_object(L, f);
  int t = lua_gettop(L);
  double count = lua_tonumber(L, 5);
  drop_stale(L, t, now);
  if (lua_isnil(L, 3)) { /* incr: a live counter keeps its expiry */
    lua_pushvalue(L, 2);
    lua_rawget(L, t);
    double expires = spotify_cache_expiry(now, ttl);
    if (lua_istable(L, -1) && entry_field(L, "count", LUA_TNUMBER)) {
      count += lua_tonumber(L, -1);
      lua_pop(L, 1);
      if (entry_field(L, "expires", LUA_TNUMBER)) expires = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    lua_settop(L, t);
    lua_pushvalue(L, 2);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, count);
    lua_setfield(L, -2, "count");
    lua_pushnumber(L, isinf(expires) ? 1e300 : expires);
    lua_setfield(L, -2, "expires");
  } else {
    lua_pushvalue(L, 2);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "value");
    lua_pushnumber(L, ttl > 0 ? now + ttl : 1e300);
    lua_setfield(L, -2, "expires");
  }
  lua_rawset(L, t);
  encode_within_bound(L, t, 2);
  lua_pushnumber(L, count);
  return 2;
}

/* set and incr: read, merge and write the file under its flock. */
static void file_update(lua_State *L, file_cache *f, const spotify_cache_req *rq,
                        spotify_cache_result *out) {
  char err[SPOTIFY_FILE_ERRLEN];
  int top = lua_gettop(L);
  const char *lock_path = lua_pushfstring(L, "%s.lock", f->path);
  lua_pushcfunction(L, file_merge);
  lua_pushlightuserdata(L, f);
  lua_pushstring(L, rq->key);
  if (rq->op == SPOTIFY_CACHE_SET)
    lua_pushlstring(L, rq->value, rq->len);
  else
    lua_pushnil(L);
  lua_pushnumber(L, rq->ttl);
  lua_pushnumber(L, rq->delta);
  /* Everything that can raise before the lock is pushed: the fd is never
   * held across a raise. */
  int fd, r = spotify_file_lock(AT_FDCWD, lock_path, 1, 0, &fd, err);
  if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  if (r != 1) {
    lua_settop(L, top);
    if (r == SPOTIFY_FILE_UNTRUSTED)
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0); /* not stored: a miss later */
    else
      spotify_cache_answer_failed(out, err);
    return;
  }
  if (lua_pcall(L, 5, 2, 0) != 0) {
    spotify_file_unlock(fd);
    spotify_cache_answer_failed(
        out, lua_isstring(L, -1) ? lua_tostring(L, -1) : "file cache: cannot encode");
    lua_settop(L, top);
    return;
  }
  size_t len;
  const char *text = lua_tolstring(L, -2, &len);
  r = spotify_file_write(AT_FDCWD, f->path, NULL, 0, text, len, 1, err);
  spotify_file_unlock(fd);
  if (r == SPOTIFY_FILE_UNTRUSTED) {
    met_untrusted(f, err);
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  } else if (r != 0)
    spotify_cache_answer_failed(out, err);
  else if (rq->op == SPOTIFY_CACHE_INCR)
    spotify_cache_answer_number(out, lua_tonumber(L, -1));
  else
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  lua_settop(L, top);
}

static void file_get(lua_State *L, file_cache *f, const char *key, spotify_cache_result *out) {
  int top = lua_gettop(L);
  push_file_object(L, f);
  lua_getfield(L, -1, key);
  spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  if (lua_istable(L, -1) && entry_field(L, "expires", LUA_TNUMBER) &&
      lua_tonumber(L, -1) > spotify_wall_time()) {
    lua_pop(L, 1);
    size_t len;
    if (entry_field(L, "value", LUA_TSTRING)) {
      const char *s = lua_tolstring(L, -1, &len);
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_STRING, s, len);
    }
  }
  lua_settop(L, top);
}

/* ---- answers: a file each in the directory ---- */

/* An answer's file: a head "<expires> <length>\n", then the value. */
#define HEAD_MAX 64

/* The head's length when buf (n bytes of a file of size bytes,
 * NUL-terminated) starts with a whole head whose length matches the file:
 * else 0, a corrupt file (one cut short by a crash, say). */
static size_t parse_head(const char *buf, size_t n, size_t size, double *expires) {
  const char *nl = memchr(buf, '\n', n < HEAD_MAX ? n : HEAD_MAX);
  char *end;
  if (nl == NULL) return 0;
  *expires = strtod(buf, &end);
  if (end == buf || *end != ' ' || end[1] < '0' || end[1] > '9') return 0;
  unsigned long long vlen = strtoull(end + 1, &end, 10);
  size_t head = (size_t)(nl - buf) + 1;
  return end == nl && vlen == size - head ? head : 0;
}

static void entry_get(file_cache *f, const char *key, spotify_cache_result *out) {
  char err[SPOTIFY_FILE_ERRLEN], name[SPOTIFY_DIGEST_HEX];
  spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  int dir = open_dir(f, 0, err);
  if (dir < 0) return; /* no directory yet: nothing stored */
  name_of(key, name);
  char *buf;
  size_t len;
  int r = spotify_file_read(dir, name, &buf, &len, err);
  if (r == SPOTIFY_FILE_UNTRUSTED) met_untrusted(f, err);
  if (r != 0) return;
  double expires;
  size_t head = parse_head(buf, len, len, &expires);
  if (head && expires > spotify_wall_time())
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_STRING, buf + head, len - head);
  free(buf);
}

/* An answer's file that has expired or is corrupt is removed. */
static void sweep_entry(int dir, const char *name, double now) {
  char err[SPOTIFY_FILE_ERRLEN], buf[HEAD_MAX + 1];
  int fd = spotify_file_open(dir, name, err);
  if (fd < 0) return; /* gone, or not ours: left alone */
  struct stat st;
  ssize_t n = fstat(fd, &st) == 0 ? pread(fd, buf, HEAD_MAX, 0) : -1;
  if (n >= 0) {
    double expires = 0;
    buf[n] = '\0';
    if (!parse_head(buf, (size_t)n, (size_t)st.st_size, &expires) || !(expires > now))
      spotify_file_remove(dir, name, fd);
  }
  close(fd);
}

static size_t hex_run(const char *s) {
  size_t n = 0;
  while ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')) n++;
  return n;
}

/* Sweep the directory: expired answers, and temporary files of writers
 * that died. Files not named as the cache names them are left alone. */
static void prune(file_cache *f, int dir, double now) {
  if (now < f->next_prune) return;
  f->next_prune = now + PRUNE_EVERY;
  /* A description of its own: a dup would share the read position with
   * every process the fd was inherited by. */
  int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (d == NULL) {
    if (fd >= 0) close(fd);
    return;
  }
  time_t old = time(NULL) - TMP_AGE; /* the files' own times: the real clock */
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *name = e->d_name, *rest = name + HEX_DIGITS;
    struct stat st;
    if (hex_run(name) != HEX_DIGITS) continue;
    if (*rest == '\0')
      sweep_entry(dir, name, now);
    else if (strncmp(rest, ".tmp.", 5) == 0 && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
             S_ISREG(st.st_mode) && st.st_mtime < old)
      unlinkat(dir, name, 0);
  }
  closedir(d);
}

static void entry_set(file_cache *f, const spotify_cache_req *rq, spotify_cache_result *out) {
  char err[SPOTIFY_FILE_ERRLEN], name[SPOTIFY_DIGEST_HEX], head[HEAD_MAX];
  spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
  if (rq->len > SPOTIFY_FILE_MAX - HEAD_MAX) return; /* could not be read back: not kept */
  int dir = open_dir(f, 1, err);
  if (dir == SPOTIFY_FILE_UNTRUSTED) return; /* not stored: a miss later */
  if (dir < 0) {
    spotify_cache_answer_failed(out, err);
    return;
  }
  double now = spotify_wall_time(), expires = spotify_cache_expiry(now, rq->ttl);
  int n = snprintf(head, sizeof head, "%.17g %zu\n", isinf(expires) ? 1e300 : expires, rq->len);
  name_of(rq->key, name);
  /* No fsync: an answer is worth a request, and one cut short by a crash
   * is corrupt (its head says how long it is), a miss. */
  int r = spotify_file_write(dir, name, head, (size_t)n, rq->value, rq->len, 0, err);
  if (r == SPOTIFY_FILE_UNTRUSTED)
    met_untrusted(f, err);
  else if (r != 0)
    spotify_cache_answer_failed(out, err);
  else
    prune(f, dir, now);
}

/* ---- locks: bytes of one lock file in the directory ---- */

/* What tells keys apart in the lock file: 64 bits of the key's SHA-256. */
static unsigned long long key_hash(const char *key) {
  char hex[SPOTIFY_DIGEST_HEX];
  name_of(key, hex);
  hex[16] = '\0';
  return strtoull(hex, NULL, 16);
}

static held_lock *find_held(file_cache *f, const char *key) {
  for (size_t i = 0; i < f->nheld; i++)
    if (strcmp(f->held[i].key, key) == 0) return &f->held[i];
  return NULL;
}

static void file_lock(file_cache *f, const char *key, double ttl, spotify_cache_result *out) {
  char err[SPOTIFY_FILE_ERRLEN];
  if (find_held(f, key)) { /* held by this very cache: another client of it renews */
    spotify_cache_answer_as(out, SPOTIFY_ANSWER_FALSE, NULL, 0);
    return;
  }
  char *k = strdup(key);
  held_lock *held = realloc(f->held, (f->nheld + 1) * sizeof *held);
  if (held) f->held = held;
  if (k == NULL || held == NULL) {
    free(k);
    spotify_cache_answer_failed(out, "file cache: out of memory");
    return;
  }
  held_lock *h = &f->held[f->nheld];
  int r = open_locks(f, err);
  if (r >= 0) {
    h->fd = dup(r);
    r = h->fd < 0 ? -1 : spotify_file_key_lock(h->fd, key_hash(key), ttl, &h->at, err);
    if (h->fd < 0) snprintf(err, sizeof err, "file cache: cannot lock: %s", strerror(errno));
    if (r != 1 && h->fd >= 0) close(h->fd);
  }
  if (r != 1) {
    free(k);
    if (r == 0)
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_FALSE, NULL, 0);
    else if (r == SPOTIFY_FILE_UNTRUSTED) /* no single flight: fetch without waiting */
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
    else
      spotify_cache_answer_failed(out, err);
    return;
  }
  h->key = k;
  f->nheld++;
  spotify_cache_answer_as(out, SPOTIFY_ANSWER_TRUE, NULL, 0);
}

static void release(held_lock *h) {
  spotify_file_key_unlock(h->fd, h->at);
  close(h->fd);
  free(h->key);
}

static void file_unlock(file_cache *f, const char *key) {
  held_lock *h = find_held(f, key);
  if (h == NULL) return;
  release(h);
  *h = f->held[--f->nheld];
}

static void file_run(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                     spotify_cache_result *out) {
  file_cache *f = c->self;
  int entry = has_prefix(rq->key, SPOTIFY_ANSWER_PREFIX);
  own_process(f);
  switch (rq->op) {
    case SPOTIFY_CACHE_GET:
      if (entry)
        entry_get(f, rq->key, out);
      else
        file_get(L, f, rq->key, out);
      return;
    case SPOTIFY_CACHE_SET:
      if (entry)
        entry_set(f, rq, out);
      else
        file_update(L, f, rq, out);
      return;
    case SPOTIFY_CACHE_INCR: /* answers are not counters */
      if (entry)
        spotify_cache_answer_as(out, SPOTIFY_ANSWER_UNSUPPORTED, NULL, 0);
      else
        file_update(L, f, rq, out);
      return;
    case SPOTIFY_CACHE_LOCK:
      file_lock(f, rq->key, rq->ttl, out);
      return;
    case SPOTIFY_CACHE_UNLOCK:
      file_unlock(f, rq->key);
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_NONE, NULL, 0);
      return;
    default:
      spotify_cache_answer_as(out, SPOTIFY_ANSWER_UNSUPPORTED, NULL, 0);
  }
}

static void file_run_and_tell(lua_State *L, const spotify_cache *c, const spotify_cache_req *rq,
                              spotify_cache_result *out) {
  file_run(L, c, rq, out);
  tell(c->self, out);
}

const spotify_cache_vtable spotify_file_vt = {"file", file_run_and_tell};

int spotify_file_cache_gc(lua_State *L) {
  file_cache *f = luaL_checkudata(L, 1, SPOTIFY_FILE_MT);
  own_process(f);
  for (size_t i = 0; i < f->nheld; i++) release(&f->held[i]);
  free(f->held);
  free(f->path);
  free(f->dir);
  if (f->dirfd >= 0) close(f->dirfd);
  if (f->locks >= 0) close(f->locks);
  memset(f, 0, sizeof *f);
  f->dirfd = f->locks = -1;
  return 0;
}

/* core.file_cache(path) -> cache */
int spotify_file_cache_new(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  file_cache *f = lua_newuserdata(L, sizeof *f);
  memset(f, 0, sizeof *f);
  f->dirfd = f->locks = -1;
  f->pid = getpid();
  luaL_getmetatable(L, SPOTIFY_FILE_MT);
  lua_setmetatable(L, -2);
  f->path = strdup(path);
  f->dir = malloc(len + sizeof DIR_SUFFIX);
  if (f->path == NULL || f->dir == NULL) return luaL_error(L, "spotify.cache.file: out of memory");
  memcpy(f->dir, path, len);
  memcpy(f->dir + len, DIR_SUFFIX, sizeof DIR_SUFFIX);
  return 1;
}
