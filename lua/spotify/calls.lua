--- How a call's exchanges are driven where it runs. Every driver runs the
-- same exchange machine of the C core; this file only picks one:
--   * a plain call blocks inside C (core.call: the whole exchange at once);
--   * several URLs at once go to the libcurl multi driver in one call
--     (core.gather), with `concurrency` in flight;
--   * a started request (client:start) submits and yields to client:poll;
--   * inside nginx, the Lua driver (spotify.ngx) runs over cosockets.
local core = require "spotify.core"
local tasks = require "spotify.tasks"

local call, core_gather = core.call, core.gather

local calls = {}

calls.in_nginx = type(rawget(_G, "ngx")) == "table" and type(ngx.get_phase) == "function"

local function nginx_driver() return require "spotify.ngx" end


--- GET every URL on the multi driver, at most `concurrency` in flight,
-- and wait for all of them: one core.gather, which hands back early the
-- results of started requests that finish meanwhile; they go to those
-- requests and the gather goes on.
local function gather(self, env, urls, name)
  local base = env.next_tag or 0
  env.next_tag = base + #urls -- tags base + 1 .. base + #urls are this gather's
  local values, errs = {}, {}
  repeat
    local others = core_gather(self, urls, env.concurrency, base, values, errs, name)
    for k = 1, #others do tasks.deliver(env, others[k], self) end
  until #others == 0
  return values, errs
end

--- GET one URL and decode it. `name`: the API method's (the response
-- cache's ttl), or nil. @return value | nil, err
function calls.get(self, env, url, name)
  if env.tasks and tasks.inside(env) then
    local values, errs = tasks.get_all(self, env, { url }, name)
    return values[1], errs[1]
  end
  if calls.in_nginx then return nginx_driver().get(self, url, name) end
  return call(self, "GET", url, name)
end

--- GET every URL concurrently. @return values, errs (by index)
function calls.get_all(self, env, urls, name)
  if #urls == 1 then
    local v, e = calls.get(self, env, urls[1], name)
    return { v }, { e }
  end
  if env.tasks and tasks.inside(env) then return tasks.get_all(self, env, urls, name) end
  if calls.in_nginx then return nginx_driver().get_all(self, urls, env.concurrency, name) end
  return gather(self, env, urls, name)
end

--- Single lookups inside batch windows (batch_window), where callers can
-- be parked: started requests and nginx light threads. A plain call has
-- nothing to wait with and goes out alone.
-- @return one settled waiter per ID ({value | err | single}), or nil
function calls.batch_lookup(self, env, spec, ids, urls)
  if env.tasks and tasks.inside(env) then return tasks.batch_lookup(self, env, spec, ids, urls) end
  if calls.in_nginx then return nginx_driver().batch_lookup(self, env, spec, ids, urls) end
  return nil
end

--- client:access_token() where it runs. @return token, seconds_left | nil, err
function calls.access_token(self)
  if calls.in_nginx then return nginx_driver().access_token(self) end
  return core.access_token(self)
end

return calls
