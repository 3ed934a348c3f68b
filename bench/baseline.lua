--- The hand-written baseline: what a careful LuaJIT programmer writes
-- without this module. LuaJIT FFI straight to libcurl (one reused easy
-- handle; a multi handle with 16 reused easy handles for concurrency),
-- bodies gathered into one growing C buffer, decoded with cjson. No retries,
-- no token renewal, no null handling: the floor for Lua code that does the
-- same exchange.
--
-- usage: luajit baseline.lua MODE API_BASE TOKEN_URL N [CA_FILE]
--   MODE: track | search | multi16 | batch50
-- Prints one line of JSON like bench/module.lua.
local ffi = require "ffi"
local jit = require "jit"
local cjson = require "cjson"

ffi.cdef [[
typedef void CURL;
typedef void CURLM;
struct curl_slist;
typedef struct { int msg; CURL *easy_handle; union { void *whatever; int result; } data; } CURLMsg;
typedef size_t (*bench_write_cb)(char *, size_t, size_t, void *);
int curl_global_init(long flags);
CURL *curl_easy_init(void);
int curl_easy_setopt(CURL *curl, int option, ...);
int curl_easy_perform(CURL *curl);
int curl_easy_getinfo(CURL *curl, int info, ...);
void curl_easy_cleanup(CURL *curl);
const char *curl_easy_strerror(int code);
struct curl_slist *curl_slist_append(struct curl_slist *list, const char *line);
CURLM *curl_multi_init(void);
int curl_multi_setopt(CURLM *m, int option, ...);
int curl_multi_add_handle(CURLM *m, CURL *e);
int curl_multi_remove_handle(CURLM *m, CURL *e);
int curl_multi_perform(CURLM *m, int *running);
int curl_multi_poll(CURLM *m, void *extra, unsigned int n, int timeout_ms, int *numfds);
CURLMsg *curl_multi_info_read(CURLM *m, int *left);
void *realloc(void *p, size_t n);
struct bench_timeval { long sec; long usec; };
struct bench_rusage { struct bench_timeval utime, stime; long rest[14]; };
int getrusage(int who, struct bench_rusage *usage);
struct bench_timespec { long sec; long nsec; };
int clock_gettime(int clock, struct bench_timespec *ts);
]]

local curl = ffi.load "curl"

-- From curl/curl.h (libcurl 7.88).
local OPT = {
  URL = 10002, WRITEFUNCTION = 20011, WRITEDATA = 10001, HTTPHEADER = 10023,
  HTTP_VERSION = 84, CAINFO = 10065, POSTFIELDS = 10015, HTTPGET = 80, NOSIGNAL = 99,
  PIPEWAIT = 237,
}
local INFO_RESPONSE_CODE, INFO_NUM_CONNECTS = 0x200002, 0x20001A
local MOPT_PIPELINING, PIPE_MULTIPLEX, MSG_DONE = 3, 2, 1
local HTTP_VERSION_2TLS = 4

local mode, api_base, token_url, n, ca_file = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
if ca_file == "" then ca_file = nil end
local WARMUP, IN_FLIGHT = 20, 16

local ids = {}
for line in assert(io.lines((assert(os.getenv "BENCH_IDS", "BENCH_IDS is not set")))) do
  if line ~= "" then ids[#ids + 1] = line end
end

local function cpu_seconds()
  local ru = ffi.new "struct bench_rusage"
  ffi.C.getrusage(0, ru)
  return tonumber(ru.utime.sec + ru.stime.sec) + tonumber(ru.utime.usec + ru.stime.usec) / 1e6
end

local function wall_seconds()
  local ts = ffi.new "struct bench_timespec"
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.sec) + tonumber(ts.nsec) / 1e9
end

local function long(v) return ffi.cast("long", v) end

-- One growing buffer per transfer slot; the write callback finds its slot
-- through WRITEDATA (the slot number cast to a pointer).
local buffers = {}
local function new_buffer(slot)
  local b = { cap = 256 * 1024, len = 0 }
  b.ptr = ffi.cast("char *", ffi.C.realloc(nil, b.cap))
  buffers[slot] = b
  return b
end

local on_write = ffi.cast("bench_write_cb", function(data, size, nmemb, ud)
  local b = buffers[tonumber(ffi.cast("intptr_t", ud))]
  local len = size * nmemb
  if b.len + len > b.cap then
    while b.len + len > b.cap do b.cap = b.cap * 2 end
    b.ptr = ffi.cast("char *", ffi.C.realloc(b.ptr, b.cap))
  end
  ffi.copy(b.ptr + b.len, data, len)
  b.len = b.len + len
  return len
end)

local function new_easy(slot, headers)
  local e = curl.curl_easy_init()
  new_buffer(slot)
  curl.curl_easy_setopt(e, OPT.WRITEFUNCTION, on_write)
  curl.curl_easy_setopt(e, OPT.WRITEDATA, ffi.cast("void *", slot))
  curl.curl_easy_setopt(e, OPT.NOSIGNAL, long(1))
  curl.curl_easy_setopt(e, OPT.HTTP_VERSION, long(HTTP_VERSION_2TLS))
  curl.curl_easy_setopt(e, OPT.PIPEWAIT, long(1))
  if ca_file then curl.curl_easy_setopt(e, OPT.CAINFO, ca_file) end
  curl.curl_easy_setopt(e, OPT.HTTPHEADER, headers)
  return e
end

local status_out, connects_out = ffi.new "long[1]", ffi.new "long[1]"
local connections = 0

-- Status check and connection count after a transfer; returns the body's JSON.
local function finish(e, slot)
  curl.curl_easy_getinfo(e, INFO_RESPONSE_CODE, status_out)
  curl.curl_easy_getinfo(e, INFO_NUM_CONNECTS, connects_out)
  connections = connections + tonumber(connects_out[0])
  local b = buffers[slot]
  if status_out[0] ~= 200 then error("baseline: HTTP " .. tonumber(status_out[0])) end
  local value = cjson.decode(ffi.string(b.ptr, b.len))
  b.len = 0
  return value
end

-- Callbacks must not run under a JIT-compiled FFI call: keep the calls
-- that drive transfers interpreted.
local function perform(e)
  local rc = curl.curl_easy_perform(e)
  if rc ~= 0 then error("baseline: " .. ffi.string(curl.curl_easy_strerror(rc))) end
end
jit.off(perform)

local function multi_perform(m, running)
  return curl.curl_multi_perform(m, running)
end
jit.off(multi_perform)

local function fetch_token()
  local headers = curl.curl_slist_append(nil, "Authorization: Basic YmVuY2gtY2xpZW50OmJlbmNoLXNlY3JldA==")
  local e = new_easy(0, headers)
  curl.curl_easy_setopt(e, OPT.URL, token_url)
  curl.curl_easy_setopt(e, OPT.POSTFIELDS, "grant_type=client_credentials")
  perform(e)
  local t = finish(e, 0)
  curl.curl_easy_cleanup(e)
  return t.access_token
end

local api_headers = curl.curl_slist_append(nil, "Accept: application/json")
api_headers = curl.curl_slist_append(api_headers, "Authorization: Bearer " .. fetch_token())

local function track_url(i) return api_base .. "/tracks/" .. ids[(i - 1) % #ids + 1] end
local function batch_url(i)
  local list = {}
  for k = 0, 49 do list[#list + 1] = ids[(i + k - 1) % #ids + 1] end
  return api_base .. "/tracks?ids=" .. table.concat(list, "%2C")
end
local function search_url() return api_base .. "/search?q=Muse&type=track%2Cartist%2Calbum" end

local checks = {
  track = function(v) assert(type(v.id) == "string") end,
  search = function(v) assert(#v.tracks.items > 0) end,
  batch50 = function(v) assert(#v.tracks == 50) end,
}
local urls = { track = track_url, search = search_url, batch50 = batch_url }

local function emit(cpu, wall)
  io.write(string.format('{"n": %d, "cpu_us": %.17g, "wall_s": %.17g, "conns": %d}\n',
    n, cpu * 1e6, wall, connections))
end

local function sequential(url_of, check)
  local e = new_easy(1, api_headers)
  local function one(i)
    curl.curl_easy_setopt(e, OPT.URL, url_of(i))
    curl.curl_easy_setopt(e, OPT.HTTPGET, long(1))
    perform(e)
    check(finish(e, 1))
  end
  for i = 1, WARMUP do one(i) end
  local cpu0, wall0 = cpu_seconds(), wall_seconds()
  for i = 1, n do one(i) end
  emit(cpu_seconds() - cpu0, wall_seconds() - wall0)
end

-- N track GETs through the multi handle, IN_FLIGHT at a time, handles
-- reused; like a plural call, it returns every decoded track in one array.
local function multi16()
  local m = curl.curl_multi_init()
  curl.curl_multi_setopt(m, MOPT_PIPELINING, long(PIPE_MULTIPLEX))
  local slot_of, easies = {}, {}
  for slot = 1, IN_FLIGHT do
    easies[slot] = new_easy(slot, api_headers)
    slot_of[tonumber(ffi.cast("intptr_t", easies[slot]))] = slot
  end
  local running, left = ffi.new "int[1]", ffi.new "int[1]"
  local function run(count)
    local started, done, out, index_of = 0, 0, {}, {}
    local function start(slot)
      started = started + 1
      index_of[slot] = started
      curl.curl_easy_setopt(easies[slot], OPT.URL, track_url(started))
      curl.curl_multi_add_handle(m, easies[slot])
    end
    for slot = 1, math.min(IN_FLIGHT, count) do start(slot) end
    while done < count do
      multi_perform(m, running)
      while true do
        local msg = curl.curl_multi_info_read(m, left)
        if msg == nil then break end
        if msg.msg == MSG_DONE then
          local e = msg.easy_handle
          local slot = slot_of[tonumber(ffi.cast("intptr_t", e))]
          if msg.data.result ~= 0 then error("baseline: " .. ffi.string(curl.curl_easy_strerror(msg.data.result))) end
          curl.curl_multi_remove_handle(m, e)
          local track = finish(e, slot)
          checks.track(track)
          out[index_of[slot]] = track
          done = done + 1
          if started < count then start(slot) end
        end
      end
      if done < count then curl.curl_multi_poll(m, nil, 0, 1000, nil) end
    end
    return out
  end
  run(32)
  local cpu0, wall0 = cpu_seconds(), wall_seconds()
  local tracks = run(n)
  local cpu, wall = cpu_seconds() - cpu0, wall_seconds() - wall0
  assert(#tracks == n)
  emit(cpu, wall)
end

if urls[mode] then
  sequential(urls[mode], checks[mode])
elseif mode == "multi16" then
  multi16()
else
  error("baseline: unknown mode " .. tostring(mode))
end
