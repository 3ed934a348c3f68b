--- Started requests (`client:start`/`client:poll`): each is a coroutine
-- running one API method. Its exchanges run on the C core's libcurl multi
-- driver, retries, waits and token renewal included; the coroutine only
-- waits for their results, which `poll` hands over.
local batch = require "spotify.batch"
local core = require "spotify.core"
local errors = require "spotify.errors"

local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local running, status = coroutine.running, coroutine.status
local unpack = table.unpack or unpack -- luacheck: ignore 113 143

local tasks = {}

--- The started-request state of a client (its env), made on first use.
local function state(env)
  local s = env.tasks
  if not s then
    s = { by_co = {}, gathers = {}, count = 0 }
    env.tasks = s
  end
  return s
end

--- Is the running coroutine one of this client's started requests?
function tasks.inside(env)
  local s = env.tasks
  return s ~= nil and s.by_co[running() or false] ~= nil
end

local function finish(s, task, ok, ...)
  if task.done then return end
  s.by_co[task.co] = nil
  if not task.window then s.count = s.count - 1 end
  task.done = true
  if ok then
    task.results = { n = select("#", ...), ... }
  else
    task.raised = (...)
  end
end

local run

-- Let every parked caller of a settled window go on.
local function wake(s, w)
  for _, waiter in ipairs(w.waiters) do
    local t = waiter.task
    if t and not t.done and status(t.co) == "suspended" then run(s, t) end
  end
end

local function after_resume(s, task, ok, ...)
  if not ok or status(task.co) == "dead" then finish(s, task, ok, ...) end
  local w = task.window
  if not ok and w then -- what sending a window raised is raised again in each of its callers
    for _, waiter in ipairs(w.waiters) do
      if not waiter.done then waiter.raised, waiter.done = (...), true end
    end
    wake(s, w)
  end
end

run = function(s, task, ...)
  after_resume(s, task, resume(task.co, ...))
end

--- Start fn(...) as a started request; returns its task.
function tasks.spawn(env, fn, ...)
  local s = state(env)
  local task = { co = create(fn) }
  s.by_co[task.co] = task
  s.count = s.count + 1
  run(s, task, ...)
  return task
end

--- GET every URL on the multi driver, `concurrency` in flight (core.gather
-- decides): the one gather loop of the libcurl paths. A plain call runs
-- the driver until all are in; results of started requests that come
-- meanwhile go to those requests. A started request only submits and
-- parks; each result that poll brings in wakes it to submit more.
-- Returns values and errs, by index.
function tasks.gather(self, env, urls, name)
  local base = env.next_tag or 0
  env.next_tag = base + #urls -- tags base + 1 .. base + #urls are this gather's
  local s = env.tasks
  local task = s and s.by_co[running() or false]
  local g = { task = task, base = base, n = #urls, values = {}, errs = {} }
  if task then s.gathers[g] = true end
  repeat
    local others, left = core.gather(self, urls, env.concurrency, base, g.values, g.errs, name, not task)
    tasks.deliver(env, others)
    if task and left > 0 then yield() end
  until left == 0
  if task then s.gathers[g] = nil end
  return g.values, g.errs
end

-- Send a closed window from a coroutine of its own (its GETs run as a
-- started request's do), then let every parked caller go on. Not counted
-- as a started request: poll's count is the caller's.
local function fire(self, env, w)
  if w.sent then return end
  local s = env.tasks
  local task = { co = create(function()
    batch.send(self, env, { w }, s.get_all)
    wake(s, w)
  end), window = w }
  s.by_co[task.co] = task
  run(s, task)
end

--- Single lookups from inside a started request, parked in their batch
-- windows until every batch is answered. get_all: the caller's driver.
-- @return one settled waiter per ID
function tasks.batch_lookup(self, env, spec, ids, get_all)
  local s = env.tasks
  s.get_all = get_all
  local task, waiters = s.by_co[running()], {}
  for i = 1, #ids do
    local w, waiter = batch.join(env, spec, ids[i])
    waiter.task, waiters[i] = task, waiter
    if w.closed then fire(self, env, w) end
  end
  for i = 1, #waiters do
    while not waiters[i].done do yield() end
    if waiters[i].raised ~= nil then error(waiters[i].raised, 0) end
  end
  return waiters
end

-- The gather of a started request that tag belongs to.
local function gather_of(s, tag)
  for g in pairs(s.gathers) do
    if tag > g.base and tag <= g.base + g.n then return g end
  end
end

--- Hand finished exchanges {tag, value | err} to the requests waiting
-- for them, then let those requests go on (they submit more, or go on once
-- all of their results are in). Every result is in place before any
-- request goes on: a request takes stock of its gather from its tables,
-- and an answer still on its way to them would be asked for again.
function tasks.deliver(env, results)
  local s = env.tasks
  if not s then return end
  local woken, order = {}, {}
  for k = 1, #results do
    local r = results[k]
    local g = gather_of(s, r.tag)
    if g then
      local i = r.tag - g.base
      g.values[i], g.errs[i] = r.value, r.err
      if not woken[g.task] then woken[g.task], order[#order + 1] = true, g.task end
    end
  end
  for _, task in ipairs(order) do
    if not task.done and status(task.co) == "suspended" then run(s, task) end
  end
end

--- Advance every started request; wait at most `wait` seconds.
-- @return the number of unfinished requests
function tasks.poll(self, env, wait)
  local s = env.tasks
  if not s then return 0 end
  if s.count == 0 then -- nothing started: renewals of answers handed out expired go on
    core.run(self, 0)
    return 0
  end
  local due, soonest = batch.due(env)
  for _, w in ipairs(due) do fire(self, env, w) end
  if soonest and soonest < wait then wait = soonest end
  local done, pending = core.run(self, wait)
  -- Only windows open: wait for the first to be due, as asked.
  if #done == 0 and pending == 0 and soonest and wait > 0 then core.sleep(wait) end
  tasks.deliver(env, done)
  return s.count
end

--- Drop a request: its exchanges are cancelled and it never finishes
-- on its own.
function tasks.cancel(self, env, task)
  local s = env.tasks
  if not s or task.done then return false end
  local tags, mine = {}, {}
  for g in pairs(s.gathers) do
    if g.task == task then
      mine[#mine + 1] = g
      for i = 1, g.n do
        if g.values[i] == nil and g.errs[i] == nil then tags[#tags + 1] = g.base + i end
      end
    end
  end
  -- The core refuses (raises) from inside the client's own hook: then
  -- nothing here has changed.
  for _, tag in ipairs(tags) do core.cancel(self, tag) end
  for _, g in ipairs(mine) do s.gathers[g] = nil end
  finish(s, task, true, nil, errors.closed "request was cancelled")
  task.cancelled = true
  return true
end

--- The client closed: every unfinished request finishes with kind closed.
function tasks.close_all(env)
  local s = env.tasks
  if not s then return end
  s.gathers = {}
  env.windows = nil
  for _, task in pairs(s.by_co) do
    finish(s, task, true, nil, errors.closed())
  end
end

--- The task's return values; raises again what was raised inside it.
function tasks.result(task)
  if task.raised ~= nil then error(task.raised, 0) end
  return unpack(task.results, 1, task.results.n)
end

return tasks
