--- Runs engine calls as coroutines over the libcurl multi handle: plural
-- methods and pages fetch concurrently, and client:start/poll let a game
-- loop or another event loop advance requests without ever blocking.
local core = require "spotify.core"

local create, resume, yield, status = coroutine.create, coroutine.resume, coroutine.yield, coroutine.status
local running = coroutine.running
local unpack = table.unpack or unpack -- luacheck: ignore 113 143

local HTTP, SLEEP, JOIN = 1, 2, 3

local scheduler = {}

--- The io object for code running inside a task (see engine.lua).
scheduler.io = {
  concurrent = true,
  now = core.now,
  http = function(_, method, url, auth, body)
    return yield(HTTP, method, url, auth, body)
  end,
  sleep = function(seconds)
    yield(SLEEP, seconds)
  end,
}

--- The scheduler state of a client, made on first use.
local function state(st)
  local s = st.sched
  if not s then
    s = { by_co = {}, by_tag = {}, sleepers = {}, next_tag = 0, count = 0 }
    st.sched = s
  end
  return s
end

--- Is the running coroutine one of this client's tasks?
function scheduler.inside(st)
  local s = st.sched
  return s ~= nil and s.by_co[running() or false] ~= nil
end

local function finish(s, task, ok, ...)
  s.by_co[task.co] = nil
  s.count = s.count - 1
  task.done = true
  if ok then
    task.results = { n = select("#", ...), ... }
  else
    task.raised = (...)
  end
  local parent = task.parent
  if parent and s.sleepers[parent] then parent.wake = 0 end -- wake a JOIN
end

local step_task

local function handle_yield(st, s, task, op, a, b, c, d)
  if op == HTTP then
    s.next_tag = s.next_tag + 1
    task.tag = s.next_tag
    s.by_tag[task.tag] = task
    core.submit(st.ud, task.tag, a, b, c, d)
  elseif op == SLEEP then
    task.wake = core.now() + a
    s.sleepers[task] = true
  elseif op == JOIN then
    task.wake = math.huge
    s.sleepers[task] = true
  end
end

local function after_resume(st, s, task, ok, ...)
  if not ok or status(task.co) == "dead" then return finish(s, task, ok, ...) end
  return handle_yield(st, s, task, ...)
end

step_task = function(st, s, task, ...)
  return after_resume(st, s, task, resume(task.co, ...))
end

--- Start fn(...) as a task. Returns the task (see scheduler.result).
function scheduler.spawn(st, fn, ...)
  local s = state(st)
  local task = { co = create(fn) }
  s.by_co[task.co] = task
  s.count = s.count + 1
  task.parent = s.by_co[running() or false]
  step_task(st, s, task, ...)
  return task
end

--- Advance every task; wait up to `wait` seconds for progress when no task
-- could move. Returns the number of unfinished tasks.
function scheduler.step(st, wait)
  local s = state(st)
  local due, now = {}, core.now()
  for task in pairs(s.sleepers) do
    if task.wake <= now then due[#due + 1] = task end
  end
  for i = 1, #due do
    s.sleepers[due[i]] = nil
    step_task(st, s, due[i])
  end
  local next_wake = math.huge
  for task in pairs(s.sleepers) do
    if task.wake < next_wake then next_wake = task.wake end
  end
  if #due > 0 then wait = 0 end -- progress was made: report it at once
  wait = math.max(0, math.min(wait or 0, next_wake - core.now()))
  local done, in_flight = core.run(st.ud, wait)
  if #done == 0 and in_flight == 0 and wait > 0 and s.count > 0 then core.sleep(wait) end
  for i = 1, #done do
    local r = done[i]
    local task = s.by_tag[r.tag]
    if task then
      s.by_tag[r.tag] = nil
      if r.status then
        step_task(st, s, task, r.status, r.body, r.retry_after, r.elapsed)
      else
        step_task(st, s, task, nil, r.kind, r.message, r.retry, r.elapsed)
      end
    end
  end
  return s.count
end

--- Drop a task: its transfer is cancelled and it will never finish.
function scheduler.cancel(st, task)
  local s = state(st)
  if task.done then return false end
  if task.tag and s.by_tag[task.tag] == task then
    s.by_tag[task.tag] = nil
    core.cancel(st.ud, task.tag)
  end
  s.sleepers[task] = nil
  s.by_co[task.co] = nil
  s.count = s.count - 1
  task.done, task.cancelled = true, true
  require("spotify.token").abandon(st, task.co)
  return true
end

--- The task's return values; re-raises an error raised inside it.
function scheduler.result(task)
  if task.raised ~= nil then error(task.raised, 0) end
  return unpack(task.results, 1, task.results.n)
end

--- Run fns (a list of functions) with at most `limit` in flight and return
-- their first results in order. Blocks the caller, or, inside a task,
-- parks it until all are done.
function scheduler.gather(st, fns, limit)
  local tasks, nxt = {}, 1
  local inside = scheduler.inside(st)
  local in_flight = {} -- unfinished tasks, at most `limit`: no rescan of all
  local function start_more()
    local kept = 0
    for i = 1, #in_flight do
      local t = in_flight[i]
      in_flight[i] = nil
      if not t.done then
        kept = kept + 1
        in_flight[kept] = t
      end
    end
    while nxt <= #fns and kept < limit do
      local t = scheduler.spawn(st, fns[nxt])
      tasks[nxt] = t
      nxt = nxt + 1
      if not t.done then
        kept = kept + 1
        in_flight[kept] = t
      end
    end
    return kept
  end
  while true do
    local active = start_more()
    if active == 0 and nxt > #fns then break end
    if inside then
      yield(JOIN)
    else
      scheduler.step(st, 1)
    end
  end
  local out = {}
  for i = 1, #tasks do out[i] = tasks[i] end
  return out
end

return scheduler
